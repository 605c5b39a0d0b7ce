"""Fast static checks of the systemd units, the udev rule and the installer scripts.

`systemd-analyze verify` must print nothing at all (it only warns, exit 0,
for a misspelt key or a bad value), checked inside a scratch root that has
the installed paths (--root), so it does not depend on this machine having
clockface installed. `systemd-analyze security --offline=true` scores the
hardening; clockface.service must stay at or below 4.0, and so must the kiosk
screen (clockface-kiosk.service), as far as a display client allows: Chromium's
sandbox needs namespaces, cage needs the seat's devices.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SYSTEMD = REPO / "systemd"
UNITS = [
    "clockface.service",
    "clockface-stick@.service",
    "clockface-retention.service",
    "clockface-retention.timer",
    "clockface-kiosk.service",
    "clockface-sync.service",
]
SERVICES = [u for u in UNITS if u.endswith(".service")]
RULE = SYSTEMD / "99-clockface-stick.rules"
MAX_EXPOSURE = 4.0
# Where install-device.sh puts what the units run.
INSTALLED = {
    "/opt/clockface/venv/bin/clockface": "the venv's clockface",
    "/opt/clockface/libexec/clockface-stick": "systemd/clockface-stick",
    # apt's, on a terminal installed with --kiosk (this machine need not have them).
    "/usr/bin/cage": "apt's cage",
    "/usr/bin/python3": "apt's python3 (the kiosk's wait for the page)",
}
KIOSK_DEFAULT_PORT = 8091

analyze = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(analyze is None, reason="systemd-analyze not installed (apt-get install systemd)")


@pytest.fixture(scope="module")
def unit_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch root with the system's unit files, the units under test and stand-ins for installed binaries."""
    root = tmp_path_factory.mktemp("root")
    system_units = next((p for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")) if p.is_dir()), None)
    if system_units is None:
        pytest.skip("no /usr/lib/systemd/system on this machine")
    shutil.copytree(system_units, root / "usr/lib/systemd/system", symlinks=True)
    for path in INSTALLED:
        stub = root / path.lstrip("/")
        stub.parent.mkdir(parents=True, exist_ok=True)
        stub.write_text("#!/bin/sh\n")
        stub.chmod(0o755)
    (root / "bin").mkdir(exist_ok=True)
    shutil.copy(shutil.which("kill") or "/bin/kill", root / "bin/kill")
    etc = root / "etc/systemd/system"
    etc.mkdir(parents=True)
    for unit in UNITS:
        shutil.copy(SYSTEMD / unit, etc / unit)
    return root


def _analyze(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, SYSTEMD_LOG_COLOR="0", SYSTEMD_COLORS="0", SYSTEMD_PAGER="")
    return subprocess.run([analyze, *args], text=True, capture_output=True, env=env, timeout=60)


@needs_analyze
@pytest.mark.parametrize("unit", [*UNITS, "clockface-stick@sda1.service"])
def test_verify_prints_nothing(unit_root: Path, unit: str) -> None:
    p = _analyze("verify", f"--root={unit_root}", str(unit_root / "etc/systemd/system" / unit))
    out = (p.stdout + p.stderr).strip()
    assert p.returncode == 0 and out == "", f"systemd-analyze verify {unit} (exit {p.returncode}):\n{out}"


def _exposure(unit: Path) -> tuple[float, str]:
    p = _analyze("security", "--offline=true", "--no-pager", str(unit))
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", p.stdout + p.stderr)
    assert m, f"no score from systemd-analyze security:\n{p.stdout}{p.stderr}"
    return float(m.group(1)), p.stdout


@needs_analyze
@pytest.mark.parametrize("unit", SERVICES)
def test_security_score(unit: str) -> None:
    score, report = _exposure(SYSTEMD / unit)
    print(f"{unit}: exposure {score}")
    exposed = [ln.strip() for ln in report.splitlines() if ln.lstrip().startswith("✗")]
    assert score <= MAX_EXPOSURE, f"{unit} scores {score} > {MAX_EXPOSURE}; open items:\n" + "\n".join(exposed)


@needs_analyze
def test_security_threshold_flag_agrees() -> None:
    """The documented one-liner: exit 0 at --threshold=40 (4.0 in tenths)."""
    p = _analyze("security", "--offline=true", "--threshold=40", "--no-pager", str(SYSTEMD / "clockface.service"))
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr


def _directives(unit: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in (SYSTEMD / unit).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_service_contract() -> None:
    """What issue 4 promises and the installer relies on, written down once."""
    d = _directives("clockface.service")
    assert d["Type"] == ["notify"]
    assert d["Restart"] == ["on-failure"]
    assert d["StateDirectory"] == ["clockface"]
    assert "WatchdogSec" in d and "NotifyAccess" in d
    assert d["User"] == ["clockface"], "never root"
    assert "video" in d["SupplementaryGroups"][0].split()
    assert any(v.startswith("char-video4linux") for v in d["DeviceAllow"])
    assert d.get("PrivateDevices", ["no"]) == ["no"], "PrivateDevices=yes hides the camera"
    assert d["ExecStart"][0].split()[:2] == ["/opt/clockface/venv/bin/clockface", "run"]
    assert "HUP" in d["ExecReload"][0]


def test_sync_contract() -> None:
    """Issue 13: its own hardened unit, skipped until [central] is set, the password only as a credential."""
    d = _directives("clockface-sync.service")
    assert d["Type"] == ["notify"] and "WatchdogSec" in d
    assert d["User"] == ["clockface"], "never root"
    assert d["ExecCondition"] == ["/opt/clockface/venv/bin/clockface sync --check-configured"]
    assert d["ExecStart"][0].split()[:2] == ["/opt/clockface/venv/bin/clockface", "sync"]
    assert d["LoadCredential"] == ["central.pgpass:/etc/clockface/central.pgpass"]
    assert d["ReadWritePaths"] == ["/var/lib/clockface"]
    assert d["RestrictAddressFamilies"][0].split() == ["AF_UNIX", "AF_INET", "AF_INET6"]
    assert d["PrivateDevices"] == ["yes"], "no camera, no devices"
    installer = (SYSTEMD / "install-device.sh").read_text()
    assert "clockface-sync.service" in installer.split("UNITS=(")[1].split(")")[0]
    assert re.search(r"systemctl enable [^\n]*clockface-sync\.service", installer)


def test_door_outputs_reach_their_devices() -> None:
    """The chime (ALSA) and the door lights (GPIO chips) pass DevicePolicy=closed; no group the OS may lack."""
    d = _directives("clockface.service")
    allowed = {v.split()[0] for v in d["DeviceAllow"]}
    assert {"char-alsa", "char-gpiochip"} <= allowed, allowed
    # Debian has no gpio group, and a unit naming a missing group fails (216/GROUP): the
    # installer adds the user to audio/gpio where they exist instead.
    assert d["SupplementaryGroups"] == ["video"]
    installer = (SYSTEMD / "install-device.sh").read_text()
    assert "for g in audio gpio" in installer and "alsa-utils" in installer


def test_kiosk_contract() -> None:
    """cage + Chromium on tty1 in a logind session, as its own user, on the terminal's loopback page."""
    d = _directives("clockface-kiosk.service")
    assert d["User"] == ["clockface-kiosk"], "neither root nor clockface (no access to the attendance data)"
    assert d["PAMName"] == ["login"] and d["TTYPath"] == ["/dev/tty1"]
    assert d["StandardInput"] == ["tty-fail"]
    assert "getty@tty1.service" in d["Conflicts"]
    argv = shlex.split(d["ExecStart"][0])
    assert argv[0] == "/usr/bin/cage" and "--" in argv
    browser = argv[argv.index("--") + 1 :]
    assert browser[0] == "${CLOCKFACE_KIOSK_BROWSER}" and "--kiosk" in browser and "--noerrdialogs" in browser
    assert browser[-1] == "${CLOCKFACE_KIOSK_URL}"
    env = dict(v.split("=", 1) for v in d["Environment"])
    assert env["CLOCKFACE_KIOSK_URL"] == f"http://127.0.0.1:{KIOSK_DEFAULT_PORT}/"
    assert env["CLOCKFACE_KIOSK_BROWSER"] == "/usr/bin/chromium"
    assert d["IPAddressDeny"] == ["any"] and d["IPAddressAllow"] == ["localhost"], "the browser reaches loopback only"
    assert d["Restart"] == ["always"]


def test_kiosk_url_is_the_kiosk_default_port() -> None:
    """The unit's default URL is where the terminal serves the kiosk page by default ([kiosk] port)."""
    from device.config import SECTIONS, parse_config

    if "kiosk" not in SECTIONS:
        pytest.skip("this build has no [kiosk] section yet")
    port = parse_config({}, env={"HOME": "/h"}).to_toml_dict()["kiosk"]["port"]
    assert port == KIOSK_DEFAULT_PORT
    assert "KIOSK_PORT_DEFAULT=8091" in (SYSTEMD / "install-device.sh").read_text()


def test_setup_passes_device_flags_to_the_installer(tmp_path: Path) -> None:
    """`./setup.sh --device --kiosk` runs the device installer with --kiosk (and the other flags as given)."""
    shutil.copy(REPO / "setup.sh", tmp_path / "setup.sh")
    (tmp_path / "systemd").mkdir()
    fake = tmp_path / "systemd" / "install-device.sh"
    fake.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$@" > "$(dirname "$0")/args"\n')
    for flags in (["--device", "--kiosk"], ["--device"], ["--device", "--uninstall", "--purge-data"]):
        p = subprocess.run(["bash", str(tmp_path / "setup.sh"), *flags], text=True, capture_output=True, timeout=30)
        assert p.returncode == 0, p.stderr
        assert (tmp_path / "systemd" / "args").read_text().split() == flags[1:], flags


def test_exec_commands_exist_in_cli() -> None:
    """Every `clockface ...` command line in the units is a real command with real options."""
    import click

    from device.cli.main import main

    for unit in SERVICES:
        for key in ("ExecCondition", "ExecStart", "ExecStartPre", "ExecStartPost"):
            for value in _directives(unit).get(key, []):
                argv = shlex.split(value.lstrip("+-!@:"))
                if not argv or not argv[0].endswith("/bin/clockface"):
                    continue
                args = [a for a in argv[1:] if "%" not in a]
                cmd: click.Command = main
                ctx = click.Context(main, info_name="clockface")
                words = list(args)
                while isinstance(cmd, click.Group) and words and not words[0].startswith("-"):
                    sub = cmd.get_command(ctx, words[0])
                    assert sub is not None, f"{unit} {key}: `clockface {' '.join(args)}`: no command {words[0]!r}"
                    cmd, words = sub, words[1:]
                known = {o for p in cmd.params for o in getattr(p, "opts", [])}
                for w in words:
                    if w.startswith("-"):
                        assert w.split("=")[0] in known, (
                            f"{unit} {key}: `clockface {' '.join(args)}`: no option {w} (has {sorted(known)})"
                        )


def test_udev_rule_is_well_formed() -> None:
    """Each rule line parses as KEY op "value" pairs; it only asks systemd for a unit (never mounts)."""
    pair = re.compile(r'\s*([A-Z_]+(?:\{[^}]*\})?)\s*(==|!=|\+=|-=|:=|=)\s*"([^"]*)"\s*(,|$)')
    rules = [ln for ln in RULE.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert rules
    for line in rules:
        pos, keys = 0, []
        while pos < len(line):
            m = pair.match(line, pos)
            assert m, f"cannot parse udev rule at column {pos}: {line!r}"
            keys.append((m.group(1), m.group(2), m.group(3)))
            pos = m.end()
        for key, _op, value in keys:
            assert not (key in ("RUN", "PROGRAM") and "mount" in value), (
                "never mount from udev (its own mount namespace)"
            )
    text = RULE.read_text()
    assert 'ENV{SYSTEMD_WANTS}+="clockface-stick@%k.service"' in text
    assert 'TAG+="systemd"' in text
    labels = set(re.findall(r'LABEL="([^"]+)"', text))
    assert set(re.findall(r'GOTO="([^"]+)"', text)) <= labels


def test_rule_names_the_template() -> None:
    assert (SYSTEMD / "clockface-stick@.service").is_file()
    d = _directives("clockface-stick@.service")
    assert "exec systemd-mount " in (SYSTEMD / "clockface-stick").read_text()
    assert d["ExecStartPre"][0].startswith("+/opt/clockface/libexec/clockface-stick mount")
    assert d["ExecStart"][0].split()[:2] == ["/opt/clockface/venv/bin/clockface", "enroll-stick"]
    assert d["User"] == ["clockface"]


@pytest.mark.parametrize("script,shell", [("install-device.sh", "bash"), ("clockface-stick", "sh")])
def test_scripts_parse(script: str, shell: str) -> None:
    p = subprocess.run([shell, "-n", str(SYSTEMD / script)], text=True, capture_output=True)
    assert p.returncode == 0, p.stderr
    assert os.access(SYSTEMD / script, os.X_OK), f"{script} is not executable"
    # shellcheck runs on every script in tests/test_lint.py.


def test_installer_installs_every_unit() -> None:
    text = (SYSTEMD / "install-device.sh").read_text()
    for unit in UNITS:
        assert unit in text, f"install-device.sh does not install {unit}"
    assert "--kiosk) KIOSK=1" in text and "apt_install cage" in text
    assert RULE.name in text
    assert "--system-site-packages" in text
    # The device venv gets the project without extras: no converter, no TensorFlow.
    commands = text.replace("\\\n", " ")  # join continued lines
    installs = re.findall(r"-m pip install [^\n]*", commands)
    assert installs, "install-device.sh installs nothing with pip"
    assert [line for line in installs if re.search(r'"\$SRC"(\s|$)', line)], installs
    assert not [line for line in installs if re.search(r'\$SRC"?\[|\.\[|converter', line)], installs
