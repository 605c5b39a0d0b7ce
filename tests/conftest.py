"""Shared pytest helpers.

`../shared` (beside the repository root) holds real photos and dlib reference
data that are too large or too sensitive for the repository. Tests that need it
call `shared_path(...)`, which skips with a reason when it is absent.
CLOCKFACE_SHARED points elsewhere (a git worktree is not beside ../shared).
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, NoReturn

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("CLOCKFACE_SHARED") or REPO_ROOT.parent / "shared")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def skip_unless_ci(reason: str) -> NoReturn:
    """Skip on a developer's machine; fail in CI, where ./setup.sh installed every
    extra and a skip would hide that a dependency went missing."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: every extra is installed there, so this is a failure)")
    pytest.skip(reason)


def require(module: str, hint: str) -> Any:
    """pytest.importorskip for the optional extras (converter, test), failing in CI."""
    try:
        return importlib.import_module(module)
    except ImportError:
        skip_unless_ci(f"{module} is not installed ({hint})")


def shared_path(*parts: str) -> Path:
    """A path under ../shared, or pytest.skip (with the path) when it is not on this machine."""
    path = SHARED_DIR.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not found: {path} (expected ../shared beside the repository)")
    return path


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return shared_path()


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder holding the converted MTCNN (every pipeline needs it: stills, and frame landmarks)."""
    require("tensorflow", "converting the test models needs pip install '.[converter]'")
    from click.testing import CliRunner

    from converter.cli import convert

    out = tmp_path_factory.mktemp("models")
    result = CliRunner().invoke(convert, ["mtcnn", "--output", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="session")
def mtcnn_detector(models_dir: Path):
    from device.vision.mtcnn import MtcnnDetector

    return MtcnnDetector.from_models_dir(models_dir)


@pytest.fixture(scope="session")
def dlib_model(models_dir: Path) -> Path:
    """The real dlib face model, converted once per test session: a .tflite with its sidecar, beside MTCNN."""
    from click.testing import CliRunner

    from converter.cli import convert

    result = CliRunner().invoke(convert, ["dlib-resnet-v1", "--output", str(models_dir)])
    if result.exit_code != 0 and "not found in an installed" in result.output:
        skip_unless_ci(f"dlib model source not installed: {result.output.strip()}")
    assert result.exit_code == 0, result.output
    return models_dir / "dlib-resnet-v1.tflite"


# Debian's chromium driven by Playwright with executable_path (`playwright install` is never needed).
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium; installed with apt-get as root under CI=true, else the test is skipped."""
    require("playwright.sync_api", "pip install -e '.[test]'")
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.geteuid() == 0 and os.environ.get("CI") == "true":
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update"], check=True, env=env, capture_output=True, timeout=600)
        subprocess.run(["apt-get", "install", "-y", "chromium"], check=True, env=env, capture_output=True, timeout=1200)
        found = shutil.which("chromium")
        if found:
            return found
        pytest.fail("apt-get installed chromium but no chromium binary is on PATH")
    skip_unless_ci(
        "Debian's chromium is not installed (apt-get install chromium; installed automatically as root with CI=true)"
    )


def make_config(data_dir: Path, model: Path, **sections: dict):
    """A real Config for tests: data under `data_dir`, the given model, extra TOML tables."""
    from device.config import parse_config

    data_dir.mkdir(parents=True, exist_ok=True)
    doc = {"paths": {"data_dir": str(data_dir), "model": str(model)}, **sections}
    return parse_config(doc, env={})


@pytest.fixture
def terminal_config(tmp_path: Path, dlib_model: Path):
    return make_config(tmp_path / "data", dlib_model)


def _mount_tmpfs(path: Path, options: str) -> None:
    import subprocess

    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here ({done.stderr.strip() or 'not root'}): needed for a real read-only/full disk"
        )


def _umount(path: Path) -> None:
    import subprocess

    subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _tmpfs_fixture(name: str, options: str, doc: str):
    @pytest.fixture
    def fixture(tmp_path: Path):
        path = tmp_path / name
        _mount_tmpfs(path, options)
        yield path
        _umount(path)

    fixture.__doc__ = doc
    return fixture


readonly_dir = _tmpfs_fixture(
    "readonly", "ro,size=1m", "A real read-only file system (root can write anywhere else, so chmod proves nothing)."
)
tiny_disk = _tmpfs_fixture("tiny", "size=256k", "A 256 KiB file system that fills up quickly: a real ENOSPC.")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The booted-VM system test takes ~15 minutes: CI (CI=true) runs it, a
    developer's default run skips it unless it is asked for with `-m vm`."""
    if in_ci() or "vm" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="boots a VM (~15 min): runs in CI, or locally with `pytest -m vm`")
    for item in items:
        if "vm" in item.keywords:
            item.add_marker(skip)
