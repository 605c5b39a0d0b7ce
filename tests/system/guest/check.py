#!/usr/bin/python3
"""In-guest checks for the QEMU boot test. Runs as clockface-vmtest.service.

Talks to the host only through lines on /dev/ttyS0 that start with "VMTEST":
  VMTEST CHECK <name> PASS|FAIL t=<s since boot> took=<s> <detail>
  VMTEST REQUEST plug-stick | hard-poweroff     (the host acts on these)
  VMTEST ROWS <json>                            (committed attendance rows)
  VMTEST DONE <phase>

Boot 1: READY, USB enrolment, recognition from the video, the fleet sync with
its central server unreachable (the terminal stays READY and logs locally; the
sync unit verifies and scores <= 4.0), watchdog restart, then asks the host for a hard power-off while the service runs.
Boot 2: READY again, integrity and rows after the power cut, clean stop,
the kiosk unit and the kiosk page (loopback only);
then the unit's SuccessAction powers the machine off cleanly.
Standard library only (the guest's system python3).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

SERVICE = "clockface.service"
STATE = Path("/var/lib/clockface-vmtest")
PHASE = STATE / "phase"
ROWS = STATE / "rows.json"
EXPECTED = json.loads(Path("/usr/local/lib/clockface-vmtest/expected.json").read_text())
DATA = Path("/var/lib/clockface")
SERIAL = Path("/dev/ttyS0")  # the host reads VMTEST lines from the guest's serial console
failures: list[str] = []


def now() -> float:
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def say(line: str) -> None:
    line = line.replace("\n", " | ")
    print(line, flush=True)
    if SERIAL.exists():
        with SERIAL.open("w") as tty:
            tty.write(line + "\r\n")


def check(name: str, ok: bool, started: float, detail: str) -> bool:
    say(f"VMTEST CHECK {name} {'PASS' if ok else 'FAIL'} t={now():.1f} took={now() - started:.1f} {detail}")
    if not ok:
        failures.append(name)
    return ok


def sh(*cmd: str, timeout: float = 120) -> str:
    p = subprocess.run(cmd, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    return p.stdout.strip()


def props(unit: str, *names: str) -> dict[str, str]:
    out = sh("systemctl", "show", unit, "-p", ",".join(names))
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def journal(unit: str, since_cursor: str | None = None, lines: int = 400) -> str:
    cmd = ["journalctl", "--no-pager", "-o", "short-monotonic", "-n", str(lines)]
    cmd += ["-u", unit]
    if since_cursor:
        cmd += ["--after-cursor", since_cursor]
    return sh(*cmd)


def cursor() -> str:
    out = sh("journalctl", "--no-pager", "-n", "0", "--show-cursor")
    m = re.search(r"cursor: (\S+)", out)
    return m.group(1) if m else ""


def tail(text: str, n: int = 8) -> str:
    return " | ".join(text.splitlines()[-n:])


def wait_for(pred, timeout: float, interval: float = 1.0):
    deadline = now() + timeout
    while True:
        value = pred()
        if value or now() > deadline:
            return value
        time.sleep(interval)


def wait_running(timeout: float) -> dict[str, str]:
    """Wait until the service is active/running (for Type=notify: READY=1 was received)."""
    keys = (
        "ActiveState",
        "SubState",
        "Result",
        "NRestarts",
        "MainPID",
        "StatusText",
        "Type",
        "ExecMainStartTimestampMonotonic",
        "ActiveEnterTimestampMonotonic",
    )

    def ready():
        p = props(SERVICE, *keys)
        if p.get("ActiveState") == "failed":  # gave up (start limit): no point in waiting
            return p
        return p if (p.get("ActiveState"), p.get("SubState")) == ("active", "running") else None

    return wait_for(ready, timeout) or props(SERVICE, *keys)


def as_clockface_sql(db: Path, query: str) -> list:
    """Query a database as the service user (so no root-owned -wal/-shm files appear)."""
    code = (
        "import json, sqlite3, sys\n"
        "con = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True, timeout=30)\n"
        "print(json.dumps([list(r) for r in con.execute(sys.argv[2]).fetchall()]))\n"
    )
    out = subprocess.run(
        ["runuser", "-u", "clockface", "--", "python3", "-c", code, str(db), query],
        text=True,
        capture_output=True,
        timeout=120,
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}")
    return json.loads(out.stdout)


def norm(name: str) -> str:
    return re.sub(r"[^a-z]", "", name.lower())


def attendance_rows() -> list:
    db = DATA / "attendance.db"
    if not db.exists():
        return []
    return as_clockface_sql(db, "SELECT id, person, event_type, timestamp_utc FROM events ORDER BY timestamp_utc, id")


def fsync_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    fd = os.open(path.parent, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)


# --- boot 1 -----------------------------------------------------------------------


def check_ready(name: str = "ready") -> dict[str, str]:
    t0 = now()
    p = wait_running(EXPECTED["ready_timeout"])
    ok = p.get("ActiveState") == "active" and p.get("SubState") == "running" and p.get("Type") == "notify"
    startup = ""
    with contextlib.suppress(KeyError, ValueError):
        startup = f"{(int(p['ActiveEnterTimestampMonotonic']) - int(p['ExecMainStartTimestampMonotonic'])) / 1e6:.1f}s exec->READY"
    detail = f"{p.get('ActiveState')}/{p.get('SubState')} Type={p.get('Type')} NRestarts={p.get('NRestarts')} {startup} status={p.get('StatusText')!r}"
    if not ok:
        detail += " journal: " + tail(journal(SERVICE), 12)
    check(name, ok, t0, detail)
    return p


def check_watchdog() -> None:
    t0 = now()
    watchdog_usec = props(SERVICE, "WatchdogUSec").get("WatchdogUSec")
    p = props(SERVICE, "ActiveState", "SubState", "MainPID", "NRestarts")
    if p.get("SubState") != "running":
        # The first pass over the video may already have ended: start a new pass.
        sh("systemctl", "reset-failed", SERVICE)
        sh("systemctl", "start", SERVICE, timeout=300)
        p = wait_running(EXPECTED["ready_timeout"])
    pid, restarts = p.get("MainPID", "0"), int(p.get("NRestarts", "0") or 0)
    if pid in ("", "0"):
        check("watchdog", False, t0, f"service not running: {p}")
        return
    cur = cursor()
    os.kill(int(pid), 19)  # SIGSTOP: the loop is frozen, WATCHDOG=1 stops
    frozen = now()

    def restarted():
        q = props(SERVICE, "ActiveState", "SubState", "MainPID", "NRestarts")
        return (
            q
            if int(q.get("NRestarts", "0") or 0) > restarts
            and q.get("SubState") == "running"
            and q.get("MainPID") != pid
            else None
        )

    q = wait_for(restarted, EXPECTED["watchdog_timeout"])
    log = journal(SERVICE, cur)
    # systemd says it twice: "Watchdog timeout (limit 30s)!" and "Failed with result 'watchdog'".
    # Either line is its own word that the watchdog, not a crash, ended the process (a cursor
    # into a journal file that journald rotated under load once missed the first).
    timeout_seen = "Watchdog timeout" in log or "Failed with result 'watchdog'" in log
    ok = bool(q) and timeout_seen
    detail = (
        f"WatchdogSec={watchdog_usec} pid {pid} SIGSTOPped; "
        + (
            f"restarted as pid {q['MainPID']} NRestarts={q['NRestarts']} after {now() - frozen:.1f}s"
            if q
            else "NOT restarted"
        )
        + f"; journal 'Watchdog timeout': {timeout_seen}"
    )
    if not ok:
        detail += " journal: " + tail(log, 12)
    check("watchdog", ok, t0, detail)


def check_usb_enrol() -> None:
    t0 = now()
    cur = cursor()
    say("VMTEST REQUEST plug-stick")
    pattern = re.compile(r"clockface-stick@(\S+)\.service: (Deactivated successfully|Failed with result '[^']*')")

    def finished():
        m = pattern.search(
            sh("journalctl", "--no-pager", "-o", "cat", "--after-cursor", cur, "-u", "clockface-stick@*")
        )
        return m

    m = wait_for(finished, EXPECTED["enrol_timeout"], 2.0)
    log = sh("journalctl", "--no-pager", "-o", "short-monotonic", "--after-cursor", cur, "-u", "clockface-stick@*")
    if not m:
        check(
            "usb-enrol",
            False,
            t0,
            "no clockface-stick@ unit finished; udev/journal: "
            + tail(log, 15)
            + " | "
            + tail(sh("journalctl", "--no-pager", "-n", "30", "--after-cursor", cur), 15),
        )
        return
    kernel_name, result = m.group(1), m.group(2)
    mounted = subprocess.run(["mountpoint", "-q", f"/run/clockface-stick/{kernel_name}"]).returncode == 0
    try:
        people = sorted(r[0] for r in as_clockface_sql(DATA / "gallery.db", "SELECT name FROM people"))
    except Exception as exc:
        people = [f"<gallery unreadable: {exc}>"]
    want = sorted(norm(n) for n in EXPECTED["enrolled"])
    ok = result == "Deactivated successfully" and sorted(norm(p) for p in people) == want and not mounted
    detail = f"clockface-stick@{kernel_name}: {result}; gallery={people}; still mounted={mounted}"
    if not ok:
        detail += " journal: " + tail(log, 20)
    check("usb-enrol", ok, t0, detail)


def check_recognise() -> None:
    """People from the video in camera.source are logged. The gallery was empty before the
    stick, so every row in the log comes from recognition with the enrolled gallery."""
    t0 = now()
    p = props(SERVICE, "ActiveState", "SubState", "StatusText")
    how = "the service was running when enrolment finished"
    if p.get("ActiveState") not in ("active", "activating"):
        # The clip had already ended (a video file ends; a camera does not): a fresh pass.
        how = "a fresh pass over the clip"
        sh("systemctl", "reset-failed", SERVICE)
        sh("systemctl", "start", SERVICE, timeout=300)
    p = wait_running(EXPECTED["ready_timeout"])

    def clip_done():
        q = props(SERVICE, "ActiveState", "SubState", "Result", "ExecMainStatus")
        return q if q.get("ActiveState") != "active" else None

    q = wait_for(clip_done, EXPECTED["video_timeout"], 2.0) or {}
    rows = attendance_rows()
    logged = sorted({r[1] for r in rows})
    required = {norm(n) for n in EXPECTED["must_recognise"]}
    enrolled = {norm(n) for n in EXPECTED["enrolled"]}
    ok = (
        required <= {norm(n) for n in logged} and {norm(n) for n in logged} <= enrolled and q.get("Result") == "success"
    )
    detail = (
        f"{how}; READY status={p.get('StatusText')!r}; clip finished={bool(q)} Result={q.get('Result')} exit={q.get('ExecMainStatus')}; "
        f"rows={len(rows)} people={logged} " + "; ".join(f"{r[1]} {r[2]} {r[3]}" for r in rows)
    )
    summary = [ln for ln in journal(SERVICE, lines=80).splitlines() if "frames from" in ln]
    if summary:
        detail += " | run: " + summary[-1].split("clockface: ", 1)[-1]
    if not ok:
        detail += " journal: " + tail(journal(SERVICE), 15)
    check("recognise", ok, t0, detail)


SYNC = "clockface-sync.service"
SYNC_UNIT = Path("/etc/systemd/system") / SYNC


def clockface_cli(*args: str) -> str:
    """A clockface command as the service user, with the installed config."""
    return sh(
        "runuser",
        "-u",
        "clockface",
        "--",
        "env",
        "CLOCKFACE_CONFIG=/etc/clockface/clockface.toml",
        "/opt/clockface/venv/bin/clockface",
        *args,
    )


def check_central_offline() -> None:
    """[central] points at an unreachable server (the image's TOML, tests/system/vmlib.py):
    the recogniser is still READY with its rows on disk, and the sync agent is up (READY),
    reports the backlog and the error in STATUS=, and keeps every event unconfirmed."""
    t0 = now()
    # The first pass over the video may have ended (the service exits at a clip's end):
    # a new pass, so the terminal is seen READY and logging with the centre away.
    if props(SERVICE, "SubState").get("SubState") != "running":
        sh("systemctl", "reset-failed", SERVICE)
        sh("systemctl", "start", SERVICE, timeout=300)
    wait_running(EXPECTED["ready_timeout"])

    def tried():
        p = props(SYNC, "ActiveState", "SubState", "StatusText", "NRestarts", "Result")
        return p if "error" in p.get("StatusText", "") else None

    sync = wait_for(tried, 240, 2.0) or props(SYNC, "ActiveState", "SubState", "StatusText", "NRestarts", "Result")
    svc = props(SERVICE, "ActiveState", "SubState", "StatusText")

    def counted():
        # Every committed row is still unconfirmed: the live backlog equals the rows (read
        # again until both agree, in case the running pass logs one in between).
        rows, raw = attendance_rows(), clockface_cli("sync", "--status", "--json")
        try:
            backlog = json.loads(raw).get("backlog")
        except ValueError:
            backlog = None
        return (rows, raw, backlog) if rows and backlog == len(rows) else None

    rows, raw, backlog = wait_for(counted, 60, 3.0) or (
        attendance_rows(),
        clockface_cli("sync", "--status", "--json"),
        None,
    )
    m = re.search(r"backlog (\d+)", sync.get("StatusText", ""))
    ok = (
        (svc.get("ActiveState"), svc.get("SubState")) == ("active", "running")
        and bool(rows)
        and (sync.get("ActiveState"), sync.get("SubState")) == ("active", "running")
        and m is not None
        and 1 <= int(m.group(1)) <= len(rows)  # its view at its last attempt (back-off up to 300 s)
        and backlog == len(rows)
    )
    check(
        "central-offline",
        ok,
        t0,
        f"clockface {svc.get('ActiveState')}/{svc.get('SubState')} ({svc.get('StatusText')}); {len(rows)} rows logged; "
        f"sync {sync.get('ActiveState')}/{sync.get('SubState')} restarts={sync.get('NRestarts')} "
        f"STATUS={sync.get('StatusText')!r}; sync --status backlog={backlog}"
        + ("" if ok else " journal: " + tail(journal(SYNC), 8) + " status: " + raw[-300:]),
    )


def check_sync_unit() -> None:
    """The sync unit against this guest's systemd: verify says nothing, exposure <= 4.0."""
    t0 = now()
    verify = sh("systemd-analyze", "verify", "--man=no", str(SYNC_UNIT))
    security = sh("systemd-analyze", "security", "--no-pager", SYNC)
    m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", security)
    score = float(m.group(1)) if m else None
    ok = verify == "" and score is not None and score <= 4.0
    check(
        "sync-unit",
        ok,
        t0,
        f"systemd-analyze verify: {tail(verify, 4) or 'nothing to say'}; security exposure {score}"
        + ("" if m else " " + tail(security, 4)),
    )


def selected(name: str) -> bool:
    return not EXPECTED.get("only") or name in EXPECTED["only"]


def boot1() -> None:
    for name, fn in (
        ("ready", check_ready),
        ("usb-enrol", check_usb_enrol),
        ("recognise", check_recognise),
        ("central-offline", check_central_offline),
        ("sync-unit", check_sync_unit),
        ("watchdog", check_watchdog),
    ):
        if selected(name):
            fn()
    # Committed rows, then a hard power cut while the service runs (and holds the database open).
    t0 = now()
    rows = attendance_rows()
    fsync_write(ROWS, json.dumps(rows))
    fsync_write(PHASE, "2\n")
    say("VMTEST ROWS " + json.dumps(rows))
    sh("systemctl", "reset-failed", SERVICE)
    sh("systemctl", "start", SERVICE, timeout=300)
    p = wait_running(EXPECTED["ready_timeout"])
    check(
        "pre-poweroff",
        p.get("SubState") == "running" and bool(rows),
        t0,
        f"{len(rows)} committed rows saved; service {p.get('ActiveState')}/{p.get('SubState')} pid {p.get('MainPID')}",
    )
    say(f"VMTEST DONE boot1 failures={','.join(failures) or 'none'}")
    say("VMTEST REQUEST hard-poweroff")
    while True:  # the host pulls the plug
        time.sleep(60)


# --- boot 2 -----------------------------------------------------------------------


def boot2() -> None:
    check_ready("ready-after-poweroff")
    t0 = now()
    saved = json.loads(ROWS.read_text()) if ROWS.exists() else None
    results = {}
    for db in ("attendance.db", "gallery.db"):
        try:
            results[db] = as_clockface_sql(DATA / db, "PRAGMA integrity_check")[0][0]
        except Exception as exc:
            results[db] = f"error: {exc}"
    rows = attendance_rows()
    say("VMTEST ROWS " + json.dumps(rows))
    have = {r[0]: r for r in rows}
    lost = [r for r in (saved or []) if have.get(r[0]) != r]
    ok = all(v == "ok" for v in results.values()) and bool(saved) and not lost
    check(
        "integrity-after-poweroff",
        ok,
        t0,
        f"integrity_check {results}; rows before {len(saved or [])} after {len(rows)}; lost/changed {lost}",
    )

    # A clean stop: SIGTERM finishes the frame and closes the databases, exit status 0, no SIGKILL.
    t0 = now()
    cur = cursor()
    start = time.monotonic()
    sh("systemctl", "stop", SERVICE, timeout=300)
    took = time.monotonic() - start
    p = props(SERVICE, "ActiveState", "Result", "ExecMainStatus", "ExecMainCode")
    log = journal(SERVICE, cur)
    killed = "Killing" in log or "SIGKILL" in log
    ok = p.get("ActiveState") == "inactive" and p.get("Result") == "success" and not killed
    check(
        "clean-stop",
        ok,
        t0,
        f"stop took {took:.1f}s Result={p.get('Result')} ExecMainCode={p.get('ExecMainCode')} status={p.get('ExecMainStatus')} killed={killed} "
        + tail(log, 4),
    )
    # The daily retention job runs (and, with no retention_days set, removes nothing).
    t0 = now()
    timer = props("clockface-retention.timer", "ActiveState", "NextElapseUSecRealtime")
    sh("systemctl", "start", "clockface-retention.service", timeout=600)
    r = props("clockface-retention.service", "Result", "ExecMainStatus")
    log = journal("clockface-retention.service", lines=5)
    after = attendance_rows()
    check(
        "retention",
        timer.get("ActiveState") == "active" and r.get("Result") == "success" and len(after) == len(rows),
        t0,
        f"timer {timer.get('ActiveState')} next={timer.get('NextElapseUSecRealtime')}; service Result={r.get('Result')} status={r.get('ExecMainStatus')}; rows {len(rows)}->{len(after)}; "
        + tail(log, 3),
    )
    check_camera()
    check_kiosk_unit()
    check_kiosk_page()
    # Running again, so the system shutdown also stops it (the host checks that in the journal).
    sh("systemctl", "start", SERVICE, timeout=300)
    wait_running(EXPECTED["ready_timeout"])
    fsync_write(PHASE, "3\n")
    say(f"VMTEST DONE boot2 failures={','.join(failures) or 'none'}")


def set_source(source: str) -> str:
    """Point [camera] source at `source`; return the previous file text."""
    config = Path("/etc/clockface/clockface.toml")
    old = config.read_text()
    text, n = re.subn(r"(?m)^source\s*=.*$", f'source = "{source}"', old, count=1)
    config.write_text(text if n else old + f'\n[camera]\nsource = "{source}"\n')
    return old


def check_camera() -> None:
    """A real V4L2 device (the kernel's vivid test camera) read by the unsandboxed-enough service:
    User=clockface, SupplementaryGroups=video, DevicePolicy=closed + DeviceAllow=char-video4linux."""
    t0 = now()
    sh("modprobe", "vivid", "n_devs=1", "node_types=0x1", "input_types=0x0")
    sh("udevadm", "settle", "--timeout=30")
    node = Path("/dev/video0")
    if not node.exists():
        check("camera-v4l2", False, t0, "vivid gave no /dev/video0: " + sh("ls", "-l", "/dev/"))
        return
    owner = sh("stat", "-c", "%U:%G %a", str(node))
    old = set_source(str(node))
    try:
        cur = cursor()
        sh("systemctl", "reset-failed", SERVICE)
        sh("systemctl", "restart", SERVICE, timeout=300)
        p = wait_running(EXPECTED["ready_timeout"])

        def has_fps():
            st = props(SERVICE, "StatusText").get("StatusText", "")
            m = re.search(r"([0-9.]+) fps", st)
            return st if m and float(m.group(1)) > 0 else None

        status = wait_for(has_fps, 120, 2.0)
        log = journal(SERVICE, cur)
        denied = [ln for ln in log.splitlines() if "ermission denied" in ln or "not permitted" in ln]
        ok = bool(status) and p.get("SubState") == "running" and not denied
        check(
            "camera-v4l2",
            ok,
            t0,
            f"{node} {owner}; READY status={p.get('StatusText')!r}; later status={status!r}; denied={denied[:2]}"
            + ("" if ok else " journal: " + tail(log, 10)),
        )
    finally:
        Path("/etc/clockface/clockface.toml").write_text(old)
        sh("systemctl", "stop", SERVICE, timeout=300)


KIOSK_UNIT = Path("/usr/src/clockface/systemd/clockface-kiosk.service")


def check_kiosk_unit() -> None:
    """The kiosk unit against this guest's own systemd and units (getty@tty1, logind, dbus).

    The image is installed without --kiosk (no cage or Chromium in a headless VM), so the
    one thing verify may say is that those two binaries are missing; anything else fails."""
    t0 = now()
    out = sh("systemd-analyze", "verify", "--man=no", str(KIOSK_UNIT))
    missing_ok = re.compile(
        r"Command (/usr/bin/cage|/usr/bin/chromium|\$\{CLOCKFACE_KIOSK_BROWSER\}) is not executable"
    )
    other = [ln for ln in out.splitlines() if ln.strip() and not missing_ok.search(ln)]
    check("kiosk-unit", not other, t0, f"systemd-analyze verify: {tail(out, 6) or 'nothing to say'}")


def listeners(port: int) -> list[str]:
    """Local addresses with a TCP socket listening on *port*, from /proc/net/tcp{,6}
    (no iproute2 in a minbase image)."""
    found = []
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                address, hexport = fields[1].split(":")
                if fields[3] != "0A" or int(hexport, 16) != port or len(address) != width:
                    continue
                raw = bytes.fromhex(address)
                # The kernel prints each 32-bit word in host (little-endian) order.
                words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
                found.append(str(ipaddress.ip_address(words)))
    return found


def kiosk_enabled(toml: str) -> str:
    """*toml* with `enabled = true` in its [kiosk] table (added when the table is missing)."""
    m = re.search(r"(?m)^\[kiosk\]\s*$", toml)
    if m is None:
        return toml + "\n[kiosk]\nenabled = true\n"
    end = re.search(r"(?m)^\[", toml[m.end() :])
    body = toml[m.end() : m.end() + end.start()] if end else toml[m.end() :]
    body, n = re.subn(r"(?m)^#?\s*enabled\s*=.*$", "enabled = true", body, count=1)
    if not n:
        body = "\nenabled = true" + body
    return toml[: m.end()] + body + (toml[m.end() + end.start() :] if end else "")


def check_kiosk_page() -> None:
    """With [kiosk] enabled the terminal serves the page on loopback, and only there."""
    t0 = now()
    port = clockface_cli("config", "show", "--key", "kiosk.port")
    if not port.isdigit():
        check("kiosk-page", False, t0, f"no [kiosk] in this build's config: {port[-200:]}")
        return
    config = Path("/etc/clockface/clockface.toml")
    old = config.read_text()
    text = kiosk_enabled(old)
    config.write_text(text)
    try:
        sh("systemctl", "reset-failed", SERVICE)
        sh("systemctl", "restart", SERVICE, timeout=300)
        p = wait_running(EXPECTED["ready_timeout"])
        url = f"http://127.0.0.1:{port}/"
        served = wait_for(lambda: listeners(int(port)), 60, 1.0) or []
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                status, body = r.status, r.read(2000).decode("utf-8", "replace")
        except OSError as exc:
            status, body = 0, str(exc)
        only_loopback = bool(served) and all(ipaddress.ip_address(a).is_loopback for a in served)
        ok = p.get("SubState") == "running" and status == 200 and "<html" in body.lower() and only_loopback
        check(
            "kiosk-page",
            ok,
            t0,
            f"GET {url}: {status}; listening on {served} (loopback only: {only_loopback})"
            + ("" if ok else " journal: " + tail(journal(SERVICE), 10)),
        )
    finally:
        config.write_text(old)
        sh("systemctl", "stop", SERVICE, timeout=300)


def main() -> int:
    phase = PHASE.read_text().strip() if PHASE.exists() else "1"
    say(f"VMTEST BOOT phase={phase} t={now():.1f}")
    try:
        if phase == "1":
            boot1()
        elif phase == "2":
            boot2()
        else:
            say(f"VMTEST DONE phase={phase} nothing to do")
    except Exception as exc:
        say(f"VMTEST CHECK harness FAIL t={now():.1f} took=0 {type(exc).__name__}: {exc}")
        return 1
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
