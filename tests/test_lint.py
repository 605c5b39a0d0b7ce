"""Lint and types are part of the one test command (`.venv/bin/python -m pytest`), so
CI fails on a ruff finding, an unformatted file or a mypy error like on any test.

Each tool runs as a subprocess from the repository root with the configuration in
pyproject.toml, and a failure shows the tool's own output. The tools come from the
`test` extra; they are found beside the running interpreter (the venv's bin/).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT


def _tool(name: str) -> str:
    path = Path(sys.executable).parent / name
    assert path.exists(), f"{name} is not installed beside {sys.executable}: pip install -e '.[test]'"
    return str(path)


# Not the project's: the venv, caches, VM build output.
SKIP_DIRS = {".git", ".venv", ".mypy_cache", ".ruff_cache", ".pytest_cache", "__pycache__", "build", "var"}


def shell_scripts() -> list[Path]:
    """Every shell script in the repository: *.sh files and files with a sh/bash shebang."""
    found = []
    for dirpath, dirnames, filenames in os.walk(REPO_ROOT):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.endswith(".egg-info"))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            with path.open("rb") as fh:
                first = fh.readline(200)
            if name.endswith(".sh") or (first.startswith(b"#!") and first.rstrip().endswith((b"sh", b"bash"))):
                found.append(path)
    return found


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


def test_shell_scripts_are_found() -> None:
    names = {p.relative_to(REPO_ROOT).as_posix() for p in shell_scripts()}
    assert {"setup.sh", "systemd/install-device.sh", "systemd/clockface-stick", ".ci/run"} <= names, names


@pytest.mark.parametrize("script", shell_scripts(), ids=lambda p: p.relative_to(REPO_ROOT).as_posix())
def test_shellcheck(script: Path) -> None:
    """CI runs as root on Debian, where ./setup.sh installs shellcheck: there a missing
    shellcheck is a failure, not a skip that nobody reads."""
    if shutil.which("shellcheck") is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("shellcheck is not installed (./setup.sh installs it as root; or apt-get install shellcheck)")
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    done = _run("shellcheck", "--external-sources", str(script))
    assert done.returncode == 0, f"shellcheck {script.relative_to(REPO_ROOT)}:\n{done.stdout}{done.stderr}"
