"""Lint and types are part of the one test command (`.venv/bin/python -m pytest`), so
CI fails on a ruff finding, an unformatted file or a mypy error like on any test.

Each tool runs as a subprocess from the repository root with the configuration in
pyproject.toml, and a failure shows the tool's own output. The tools come from the
`test` extra; they are found beside the running interpreter (the venv's bin/).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT


def _tool(name: str) -> str:
    path = Path(sys.executable).parent / name
    assert path.exists(), f"{name} is not installed beside {sys.executable}: pip install -e '.[test]'"
    return str(path)


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    "args",
    [("ruff", "check", "."), ("ruff", "format", "--check", "."), ("mypy",)],
    ids=["ruff-check", "ruff-format", "mypy"],
)
def test_tool_is_clean(args: tuple[str, ...]) -> None:
    done = _run(_tool(args[0]), *args[1:])
    assert done.returncode == 0, f"`{' '.join(args)}` failed:\n{done.stdout}{done.stderr}"
