"""Every device dependency has a wheel for the Pi's architecture, found without booting anything.

Every terminal in the field is an arm64 Raspberry Pi, and the device installer refuses source
builds there (systemd/install-device.sh: `--only-binary=:all:` on aarch64). A pin or a new
dependency without a Linux aarch64 wheel would break every install at once, so this test asks
PyPI with `pip download --only-binary=:all: --platform ...` for the two Raspberry Pi OS bases:

    Debian 12 Bookworm   CPython 3.11   glibc 2.36
    Debian 13 Trixie     CPython 3.13   glibc 2.41

pip takes `--platform` literally: `manylinux_2_28_aarch64` does not imply `manylinux_2_27`
(ai-edge-litert 2.3.0 ships only `manylinux_2_27_aarch64`), so the test passes every
`manylinux_2_N` tag from 2.17 (`manylinux2014`) up to the OS's glibc, which is what pip on
that OS accepts. It needs PyPI: a network failure skips on a developer's machine and fails
in CI (CI=true), where a skip would hide a broken pin.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.conftest import REPO_ROOT, in_ci

CONSTRAINTS = REPO_ROOT / "tests" / "constraints.txt"
# Installed on a device beside the declared runtime: the door lights (the gpio extra;
# apt's python3-gpiozero on a Pi, PyPI's elsewhere) and the PostgreSQL log mirror's driver.
DEVICE_EXTRAS = ("gpiozero>=2.0", "psycopg[binary]>=3.2")


@dataclass(frozen=True)
class Target:
    """One OS a terminal runs on: its Python and the newest glibc its wheels may need."""

    name: str
    python: str  # "3.11"
    glibc_minor: int  # 36 for glibc 2.36

    @property
    def abi(self) -> str:
        return "cp" + self.python.replace(".", "")

    def platform_tags(self) -> list[str]:
        """The aarch64 manylinux tags pip accepts on this OS, newest first (PEP 600)."""
        return [f"manylinux_2_{n}_aarch64" for n in range(self.glibc_minor, 16, -1)] + ["manylinux2014_aarch64"]

    def marker_env(self) -> dict[str, str]:
        return {
            "python_version": self.python,
            "python_full_version": f"{self.python}.0",
            "platform_machine": "aarch64",
            "sys_platform": "linux",
            "platform_system": "Linux",
            "os_name": "posix",
            "implementation_name": "cpython",
            "platform_python_implementation": "CPython",
        }


TARGETS = [
    Target("Debian 12 Bookworm", "3.11", 36),
    Target("Debian 13 Trixie", "3.13", 41),
]


def device_requirements(target: Target, pyproject: Path = REPO_ROOT / "pyproject.toml") -> list[str]:
    """pyproject's runtime dependencies (markers evaluated for the target) plus DEVICE_EXTRAS."""
    declared = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    reqs = [Requirement(r) for r in declared]
    names = {r.name.lower() for r in reqs}
    reqs += [Requirement(r) for r in DEVICE_EXTRAS if Requirement(r).name.lower() not in names]
    env = target.marker_env()
    return [str(_without_marker(r)) for r in reqs if r.marker is None or r.marker.evaluate(env)]


def _without_marker(req: Requirement) -> Requirement:
    req = Requirement(str(req))
    req.marker = None
    return req


@dataclass
class Resolution:
    ok: bool
    output: str


def pip_download(
    reqs: list[str],
    target: Target,
    dest: Path,
    constrained: bool = True,
    deps: bool = True,
    constraints: Path = CONSTRAINTS,
) -> Resolution:
    """`pip download` of *reqs* (and their dependencies) as pip on *target* would see PyPI."""
    cmd = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--disable-pip-version-check"]
    for tag in target.platform_tags():
        cmd += ["--platform", tag]
    cmd += ["--python-version", target.python, "--implementation", "cp", "--abi", target.abi]
    if constrained:
        cmd += ["-c", str(constraints)]
    if not deps:
        cmd += ["--no-deps"]
    cmd += ["-d", str(dest), *reqs]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    return Resolution(p.returncode == 0, p.stdout + p.stderr)


# pip's words for "PyPI was not reached", as opposed to "PyPI has no such wheel".
NETWORK_ERRORS = re.compile(
    r"NewConnectionError|Max retries exceeded|Temporary failure in name resolution|Name or service not known"
    r"|Network is unreachable|ProxyError|SSLError|ConnectTimeoutError|ReadTimeoutError|Connection refused"
)


def network_failure(output: str) -> bool:
    return bool(NETWORK_ERRORS.search(output))


def unreachable(output: str) -> None:
    """Skip on a developer's machine (offline is not a broken pin); fail in CI, where it would hide one."""
    line = next((ln.strip() for ln in output.splitlines() if NETWORK_ERRORS.search(ln)), _tail(output))
    reason = f"PyPI not reachable, the aarch64 wheels are unchecked: {line}"
    if in_ci():
        pytest.fail(f"{reason} (CI=true: CI must check them)")
    pytest.skip(reason)


def missing_names(output: str) -> list[str]:
    """The distributions pip found no usable wheel for, from its error output.

    Two forms: "No matching distribution found for NAME[spec]" (nothing at all), and a
    ResolutionImpossible whose "no matching distributions available for your environment:"
    list names them (a version exists, but not one the constraints allow with a wheel).
    """
    names = [Requirement(m).name for m in re.findall(r"No matching distribution found for (\S+)", output)]
    block = re.search(r"no matching distributions available for your environment:\n((?:[ \t]+\S+\n?)+)", output)
    if block:
        names += block.group(1).split()
    return sorted({n.lower(): n for n in names}.values(), key=str.lower)


@dataclass
class Missing:
    """A distribution pip found no wheel for, the requirements that pulled it in, and why."""

    name: str
    needed_by: list[str]
    why: str

    def describe(self) -> str:
        return f"{self.name} (needed by {', '.join(self.needed_by)}): {self.why}"


def pinned_version(name: str) -> str | None:
    """NAME's version in tests/constraints.txt, if it is pinned there."""
    canon = _canonical(name)
    for line in CONSTRAINTS.read_text().splitlines():
        m = re.match(r"([A-Za-z0-9_.-]+)==(\S+)", line.strip())
        if m and _canonical(m.group(1)) == canon:
            return m.group(2)
    return None


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def why_missing(name: str, target: Target, dest: Path, resolution: Resolution) -> str:
    """Tell a pin without a wheel for this Python from a package without any aarch64 wheel
    (and from a pin that only conflicts with another package's requirement)."""
    where = f"{target.abi} Linux aarch64 wheel"
    any_release = pip_download([name], target, dest, constrained=False, deps=False).ok
    pin = pinned_version(name)
    if pin is None:
        if not any_release:
            return f"no release has a {where}"
        return f"no release allowed by the requirements has a {where}: {_conflict(resolution.output)}"
    if not pip_download([f"{name}=={pin}"], target, dest, constrained=False, deps=False).ok:
        if any_release:
            return (
                f"the pin {name}=={pin} in tests/constraints.txt has no {where}, a newer release has one: "
                f"the pin is wrong for Python {target.python}"
            )
        return f"no release has a {where} (pinned {name}=={pin} in tests/constraints.txt)"
    return f"the pin {name}=={pin} in tests/constraints.txt has a wheel but conflicts: {_conflict(resolution.output)}"


def _conflict(output: str) -> str:
    """pip's "The conflict is caused by:" lines, on one line."""
    m = re.search(r"The conflict is caused by:\n((?:[ \t]+.+\n?)+)", output)
    return "; ".join(line.strip() for line in m.group(1).splitlines()) if m else _tail(output)


def find_missing(reqs: list[str], target: Target, dest: Path) -> list[Missing]:
    """Each requirement on its own, so every package without a wheel is named, not only pip's first."""
    found: dict[str, Missing] = {}
    for req in reqs:
        alone = pip_download([req], target, dest)
        if alone.ok:
            continue
        if network_failure(alone.output):
            unreachable(alone.output)
        for name in missing_names(alone.output) or [Requirement(req).name]:
            key = _canonical(name)
            if key in found:
                found[key].needed_by.append(req)
            else:
                found[key] = Missing(name, [req], why_missing(name, target, dest, alone))
    return list(found.values())


def _tail(text: str, n: int = 3) -> str:
    return " | ".join(text.strip().splitlines()[-n:])


def check_wheels(reqs: list[str], target: Target, dest: Path) -> None:
    """Fail naming each package without a wheel, or skip/fail (CI) when PyPI is not reached."""
    whole = pip_download(reqs, target, dest)
    if whole.ok:
        return
    if network_failure(whole.output):
        unreachable(whole.output)
    missing = find_missing(reqs, target, dest)
    if not missing:  # only together: a conflict between requirements, not a missing wheel
        pytest.fail(f"{target.name} ({target.abi}, aarch64): pip cannot resolve the set:\n{_tail(whole.output, 15)}")
    lines = [m.describe() for m in missing]
    pytest.fail(
        f"{target.name} ({target.abi}, Linux aarch64): {len(missing)} package(s) without a usable wheel, "
        "so `setup.sh --device` would fail on a Pi:\n  " + "\n  ".join(lines)
    )


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.abi)
def test_device_dependencies_have_aarch64_wheels(target: Target, tmp_path: Path) -> None:
    check_wheels(device_requirements(target), target, tmp_path)


def numpy1_constraints(dest: Path) -> Path:
    """The constraints install-device.sh uses beside apt's numpy 1.x (systemd/pip-wheels.sh)."""
    script = f'. "{REPO_ROOT}/systemd/pip-wheels.sh"; numpy1_constraints "{CONSTRAINTS}" "{dest}"'
    subprocess.run(["bash", "-c", script], check=True)
    return dest


def test_raspberry_pi_os_12_with_apt_numpy1_resolves(tmp_path: Path) -> None:
    """Raspberry Pi OS 12 with apt's picamera2: the venv keeps numpy 1.x, so every pin must admit it.

    The tested pins alone cannot (OpenCV 4.12+ declares numpy>=2), which is why the installer
    rewrites them; this resolves exactly what it would install there, wheels only."""
    target = TARGETS[0]
    constraints = numpy1_constraints(tmp_path / "constraints-numpy1.txt")
    reqs = [*device_requirements(target), "numpy<2"]
    got = pip_download(reqs, target, tmp_path / "wheels", constraints=constraints)
    if not got.ok and network_failure(got.output):
        unreachable(got.output)
    assert got.ok, f"Raspberry Pi OS 12 + apt numpy 1.x (aarch64, cp311): pip cannot resolve:\n{_tail(got.output, 15)}"
    wheels = sorted(p.name for p in (tmp_path / "wheels").glob("*.whl"))
    numpy = [w for w in wheels if w.startswith("numpy-")]
    assert numpy and numpy[0].startswith("numpy-1."), f"numpy 1.x expected beside apt's picamera2, got {numpy}"


def test_a_package_without_a_wheel_is_named(tmp_path: Path) -> None:
    """The check itself: docopt 0.6.2 is an sdist only, six has a universal wheel."""
    target = TARGETS[0]
    with pytest.raises(pytest.fail.Exception) as failed:
        check_wheels(["six", "docopt==0.6.2"], target, tmp_path)
    message = str(failed.value)
    assert "docopt (needed by docopt==0.6.2): no release has a cp311 Linux aarch64 wheel" in message, message
    assert "six" not in message, message


def test_platform_tags_reach_down_to_manylinux2014() -> None:
    """pip does not expand manylinux_2_28 to older glibc tags: each one must be listed."""
    tags = TARGETS[0].platform_tags()
    assert tags[0] == "manylinux_2_36_aarch64" and tags[-1] == "manylinux2014_aarch64"
    assert {"manylinux_2_17_aarch64", "manylinux_2_27_aarch64", "manylinux_2_28_aarch64"} <= set(tags)
    assert "manylinux_2_41_aarch64" in TARGETS[1].platform_tags()


def test_missing_names_reads_both_pip_errors() -> None:
    plain = "ERROR: Could not find a version that satisfies the requirement docopt==0.6.2 (from versions: none)\nERROR: No matching distribution found for docopt==0.6.2\n"
    conflict = (
        "ERROR: Cannot install ai-edge-litert>=2.3 because these package versions have conflicting dependencies.\n"
        "Additionally, some packages in these conflicts have no matching distributions available for your environment:\n"
        "    ai-edge-litert\n    numpy\n\nTo fix this you could try to:\n"
    )
    assert missing_names(plain) == ["docopt"]
    assert missing_names(conflict) == ["ai-edge-litert", "numpy"]
