"""systemd/pip-wheels.sh: wheels only on aarch64, and the one line naming a package without one.

The failing pip is real: `--no-index` with an empty `--find-links` folder gives pip's own
"No matching distribution" output without the network, as PyPI would for an sdist-only
package under `--only-binary=:all:`.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT

LIB = REPO_ROOT / "systemd" / "pip-wheels.sh"
INSTALLER = REPO_ROOT / "systemd" / "install-device.sh"

# pip 26's ResolutionImpossible when the constraints allow only a release without a wheel
# for the platform (ai-edge-litert 2.3.0 offered with manylinux_2_28 but not _2_27 tags).
CONFLICT_LOG = """\
ERROR: Cannot install ai-edge-litert>=2.3 because these package versions have conflicting dependencies.

The conflict is caused by:
    The user requested ai-edge-litert>=2.3
    The user requested (constraint) ai-edge-litert==2.3.0

Additionally, some packages in these conflicts have no matching distributions available for your environment:
    ai-edge-litert

To fix this you could try to:
1. loosen the range of package versions you've specified
"""


def bash(script: str) -> str:
    p = subprocess.run(["bash", "-c", f". {LIB}\n{script}"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def failed_pip_log(tmp_path: Path, *reqs: str) -> Path:
    empty = tmp_path / "wheels"
    empty.mkdir()
    log = tmp_path / "pip.log"
    cmd = [sys.executable, "-m", "pip", "install", "--isolated", "--dry-run", "--only-binary=:all:", "--no-index"]
    p = subprocess.run([*cmd, "--find-links", str(empty), *reqs], capture_output=True, text=True, timeout=120)
    assert p.returncode != 0, p.stdout
    log.write_text(p.stdout + p.stderr)
    return log


def test_wheels_only_on_aarch64() -> None:
    assert bash("wheel_flags aarch64") == "--only-binary=:all:"
    assert bash("wheel_flags x86_64") == ""
    assert bash("wheel_flags armv7l") == ""


def test_a_missing_wheel_is_one_line_naming_the_package(tmp_path: Path) -> None:
    log = failed_pip_log(tmp_path, "docopt==0.6.2")
    line = bash(f"pip_error_line aarch64 3.11 {log}")
    assert line.startswith("no Linux aarch64 wheel on PyPI for docopt (Python 3.11): "), line
    assert "\n" not in line and str(log) in line


def test_the_conflict_form_names_the_package(tmp_path: Path) -> None:
    log = tmp_path / "pip.log"
    log.write_text(CONFLICT_LOG)
    assert bash(f"missing_distributions {log}") == "ai-edge-litert"
    assert "for ai-edge-litert (Python 3.13)" in bash(f"pip_error_line aarch64 3.13 {log}")


def test_other_pip_failures_give_no_line(tmp_path: Path) -> None:
    """A failure that is not a missing wheel (disk full, a bad build) is left to pip's own output."""
    log = tmp_path / "pip.log"
    log.write_text("ERROR: Could not install packages due to an OSError: [Errno 28] No space left on device\n")
    assert bash(f"pip_error_line aarch64 3.11 {log}") == ""


def test_the_installer_uses_them() -> None:
    text = INSTALLER.read_text()
    assert '. "$HERE/pip-wheels.sh"' in text
    assert 'wheel_flags "$arch"' in text and 'pip_error_line "$arch"' in text
    pip = re.search(r'-m pip install -q "\$\{only_binary\[@\]\}"', text)
    assert pip, "the device's pip install does not get the wheel flags"
    assert re.search(r'say "install took \$\{SECONDS\}s.*du -sh', text), "install time and venv size are reported"
