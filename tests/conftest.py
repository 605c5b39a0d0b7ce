"""Shared pytest helpers.

`../shared` (beside the repository root) holds real photos and dlib reference
data that are too large or too sensitive for the repository. Tests that need it
call `shared_path(...)`, which skips with a reason when it is absent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"


def shared_path(*parts: str) -> Path:
    """A path under ../shared, or pytest.skip (with the path) when it is not on this machine."""
    path = SHARED_DIR.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not found: {path} (expected ../shared beside the repository)")
    return path


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return shared_path()
