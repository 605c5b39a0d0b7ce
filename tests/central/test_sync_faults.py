"""The sync agent under faults: a real PostgreSQL (tests/central/pg.py), a real SQLite log of 2,000+ events.

Every fault test ends the same way, checked by UUID: the centre holds exactly
the local log's events, each once (zero duplicates, zero loss), and the local
log says none is waiting. The agent runs in-process (a thread) where the test
needs to watch it, and as a real `clockface sync` subprocess where it must be
killed with SIGKILL.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from device.sync.agent import GalleryNews, SyncAgent
from device.sync.backoff import Backoff
from device.sync.status import read_status, status_path
from logs.central.connect import CentralTarget, connect
from logs.store import AttendanceEvent, AttendanceStore
from tests.central.pg import PgServer, free_port
from tests.central.proxy import CutPlan, CuttingProxy
from tests.conftest import REPO_ROOT

EVENTS = 2_000
START = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
FAST = Backoff(base_s=0.05, cap_s=0.5)  # in-process agents retry quickly; the maths is tested on its own


# --- the local side ----------------------------------------------------------------------------
def make_event(i: int, when: datetime) -> AttendanceEvent:
    kind = ("check-in", "check-out", "seen")[i % 3]
    return AttendanceEvent(f"person-{i % 97}", kind, when, 60, 0.25 + (i % 10) / 100, "camera:0", "front-gate")


def seed_log(path: Path, count: int = EVENTS, when: Callable[[int], datetime] | None = None) -> list[str]:
    """*count* events recorded through the store (each its own transaction), fsync off to keep the tests quick."""
    when = when or (lambda i: START + timedelta(seconds=17 * i))
    ids = []
    with AttendanceStore(path) as store:
        store.db.execute("PRAGMA synchronous=OFF")
        for i in range(count):
            event = make_event(i, when(i))
            store.record(event)
            ids.append(event.id)
    return ids


@pytest.fixture(scope="module")
def seeded_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """One 2,000-event log, built once and copied per test (the centre is emptied per test)."""
    path = tmp_path_factory.mktemp("seed") / "attendance.db"
    return path, seed_log(path)


@pytest.fixture
def log_2000(tmp_path: Path, seeded_template: tuple[Path, list[str]]) -> tuple[Path, list[str]]:
    data = tmp_path / "data"
    data.mkdir()
    path = data / "attendance.db"
    path.write_bytes(seeded_template[0].read_bytes())
    return path, list(seeded_template[1])


def local_ids(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return [row[0] for row in conn.execute("SELECT id FROM events ORDER BY rowid")]
    finally:
        conn.close()


def backlog(path: Path) -> int:
    with AttendanceStore(path) as store:
        return store.backlog()


# --- the central side --------------------------------------------------------------------------
def central_ids(pg: PgServer) -> list[str]:
    with connect(pg.admin_dsn) as conn:
        return [row[0] for row in conn.execute("SELECT id::text FROM clockface.events")]


def central_count(pg: PgServer) -> int:
    with connect(pg.admin_dsn) as conn:
        row = conn.execute("SELECT count(*) FROM clockface.events").fetchone()
        return int(row[0]) if row else 0


def assert_exactly_once(pg: PgServer, log: Path) -> None:
    """Central count == local count, zero duplicates, zero loss, by UUID; nothing left waiting."""
    centre, local = central_ids(pg), local_ids(log)
    assert len(centre) == len(set(centre)), "duplicates at the centre"
    assert set(local) - set(centre) == set(), f"{len(set(local) - set(centre))} events lost"
    assert set(centre) - set(local) == set(), "events at the centre the log does not have"
    assert len(centre) == len(local)
    assert backlog(log) == 0


# --- running the agent -------------------------------------------------------------------------
class AgentThread:
    """An in-process agent running its service loop in a thread, stopped like SIGTERM would."""

    def __init__(self, log: Path, target: CentralTarget, **options: object) -> None:
        self.store = AttendanceStore(log)
        options = {"batch_size": 200, "interval_s": 0.2, "backoff": FAST, "rng": random.Random(7)} | options
        self.agent = SyncAgent(self.store, target, status_path(log.parent), **options)  # type: ignore[arg-type]
        self.thread = threading.Thread(target=self.agent.run, daemon=True)

    def __enter__(self) -> SyncAgent:
        self.thread.start()
        return self.agent

    def __exit__(self, *exc: object) -> None:
        self.agent.stop()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the agent did not stop"
        self.store.close()


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def write_config(data: Path, target: CentralTarget, **central: object) -> Path:
    settings = {
        "host": target.host,
        "port": target.port,
        "user": target.user,
        "passfile": str(target.passfile),
        "sslmode": target.sslmode,
        "interval_s": 1.0,
        "batch_size": 500,
    } | central
    lines = ["[paths]", f'data_dir = "{data}"', "", "[central]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in settings.items()]
    path = data / "clockface.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def cli_env(config: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "CREDENTIALS_DIRECTORY")}
    return env | {"CLOCKFACE_CONFIG": str(config), "PYTHONPATH": str(REPO_ROOT), "HOME": str(config.parent)}


def clockface(config: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "device.cli", *args],
        env=cli_env(config),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO_ROOT,
    )


def spawn(config: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "device.cli", *args],
        env=cli_env(config),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )


# --- the tests ---------------------------------------------------------------------------------
def test_once_pushes_the_whole_backlog_oldest_first(
    terminal: Callable[..., CentralTarget], central: PgServer, log_2000: tuple[Path, list[str]]
) -> None:
    log, ids = log_2000
    config = write_config(log.parent, terminal("front-gate"))
    started = time.monotonic()
    done = clockface(config, "sync", "--once")
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"pushed {EVENTS} events; backlog 0"
    print(f"\nsync --once: {EVENTS} events in {took:.2f} s ({EVENTS / took:.0f} events/s, process start included)")
    assert_exactly_once(central, log)
    with connect(central.admin_dsn) as conn:
        received = [r[0] for r in conn.execute("SELECT id::text FROM clockface.events ORDER BY received_at, id")]
        terminals = {r[0] for r in conn.execute("SELECT DISTINCT terminal FROM clockface.events")}
    assert terminals == {"front-gate"}
    # Batches of 500 go oldest first: each batch's ids arrive before the next batch's.
    assert [set(received[i : i + 500]) for i in range(0, EVENTS, 500)] == [
        set(ids[i : i + 500]) for i in range(0, EVENTS, 500)
    ]
    status = json.loads(clockface(config, "sync", "--status", "--json").stdout)
    assert status["backlog"] == 0 and status["agent"]["last_error"] is None
    assert status["agent"]["last_success_utc"] and status["agent"]["pushed"] == EVENTS
    again = clockface(config, "sync", "--once")
    assert again.stdout.strip() == "pushed 0 events; backlog 0"


@pytest.mark.slow
def test_network_cut_mid_batch_at_random_points(
    terminal: Callable[..., CentralTarget], central: PgServer, log_2000: tuple[Path, list[str]]
) -> None:
    log, _ = log_2000
    # About 300 kB go to the server; budgets of 0.3-40 kB cut logins, batches and COMMIT replies alike.
    plan = CutPlan(seed=13, max_cuts=12, cut_for_s=30.0, min_bytes=300, max_bytes=40_000, cut_probability=1.0)
    with CuttingProxy(central.port, plan) as proxy:
        target = terminal("back-gate", port=proxy.port)
        with AgentThread(log, target, batch_size=100) as agent:
            wait_for(lambda: agent.status.backlog == 0, 60, "the backlog to drain past the cuts")
        print(f"\nproxy: {proxy.cuts} cuts over {proxy.connections} connections")
        assert proxy.cuts >= 5, "the proxy must actually have cut connections"
    assert_exactly_once(central, log)


@pytest.mark.slow
def test_server_restarted_mid_sync(
    terminal: Callable[..., CentralTarget], central: PgServer, log_2000: tuple[Path, list[str]]
) -> None:
    log, _ = log_2000
    with AgentThread(log, terminal("side-door"), batch_size=50) as agent:
        wait_for(lambda: central_count(central) >= 300, 30, "the first batches")
        central.restart()  # fast shutdown: open sessions are terminated mid-conversation
        assert agent.status.backlog > 0
        wait_for(lambda: agent.status.backlog == 0, 60, "the backlog to drain after the restart")
    assert_exactly_once(central, log)


@pytest.mark.slow
def test_sigkill_after_the_server_commit_before_the_local_confirmation(
    terminal: Callable[..., CentralTarget], central: PgServer, log_2000: tuple[Path, list[str]]
) -> None:
    log, ids = log_2000
    config = write_config(log.parent, terminal("front-gate"), batch_size=500)
    # Hold the log's write lock: the agent can read its batch (WAL) and commit it centrally,
    # then blocks in confirm(). That is the gap the kill lands in.
    holder = sqlite3.connect(log, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    agent = spawn(config, "sync", "--once")
    try:
        # Polled every 50 ms: the kill lands well inside confirm()'s 10 s busy_timeout after the commit.
        wait_for(lambda: central_count(central) == 500, 30, "the first batch at the centre")
        time.sleep(0.3)
        assert agent.poll() is None, agent.communicate()
        agent.send_signal(signal.SIGKILL)
        agent.wait(10)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert set(central_ids(central)) == set(ids[:500])
    assert backlog(log) == EVENTS, "nothing was confirmed locally"
    done = clockface(config, "sync", "--once")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"pushed {EVENTS} events; backlog 0"  # the first 500 again, ignored centrally
    assert_exactly_once(central, log)


RECORDER = """
import sys, time
from datetime import UTC, datetime
from logs.store import AttendanceEvent, AttendanceStore
with AttendanceStore(sys.argv[1]) as store:
    i = 0
    while True:
        i += 1
        store.record(AttendanceEvent(f"walker-{i % 13}", "seen", datetime.now(UTC), 60, 0.3, "camera:0", "front-gate"))
        time.sleep(0.002)
"""


@pytest.mark.slow
def test_power_cut_kills_the_recorder_and_the_agent_with_a_backlog(
    terminal: Callable[..., CentralTarget], central: PgServer, log_2000: tuple[Path, list[str]]
) -> None:
    log, _ = log_2000
    config = write_config(log.parent, terminal("front-gate"), batch_size=100, interval_s=1.0)
    env = cli_env(config)
    recorder = subprocess.Popen([sys.executable, "-c", RECORDER, str(log)], env=env, cwd=REPO_ROOT)
    agent = spawn(config, "sync")
    try:
        wait_for(lambda: central_count(central) > 0 and len(local_ids(log)) > EVENTS + 100, 30, "both at work")
    finally:
        for process in (recorder, agent):  # the power goes: no SIGTERM, no clean-up, mid-write
            process.send_signal(signal.SIGKILL)
        for process in (recorder, agent):
            process.wait(10)
    assert backlog(log) > 0, "the cut must leave a backlog"
    done = clockface(config, "sync", "--once")
    assert done.returncode == 0, done.stderr
    assert_exactly_once(central, log)
    with AttendanceStore(log) as store:
        assert store.verify().ok


def test_clock_jumps_on_the_terminal_all_land(
    terminal: Callable[..., CentralTarget], central: PgServer, tmp_path: Path
) -> None:
    """Event times go back an hour, then on a day; the agent's own wall clock jumps too. All land, unchanged."""

    def when(i: int) -> datetime:
        step = START + timedelta(seconds=30 * i)
        return step - timedelta(hours=1) if 300 <= i < 700 else step + timedelta(days=1) if i >= 700 else step

    log = tmp_path / "attendance.db"
    ids = seed_log(log, 1_000, when)
    jumps = iter([START, START - timedelta(hours=1), START + timedelta(days=1)] * 1000)
    with AttendanceStore(log) as store:
        agent = SyncAgent(
            store, terminal("front-gate"), tmp_path / "status.json", batch_size=100, wall=lambda: next(jumps)
        )
        assert agent.push_once() == 1_000
    assert_exactly_once(central, log)
    with connect(central.admin_dsn) as conn:
        at_centre = dict(conn.execute("SELECT id::text, timestamp_utc FROM clockface.events").fetchall())
    assert [at_centre[i] for i in ids] == [when(i) for i in range(1_000)]


def test_no_network_keeps_the_backlog_and_says_why(
    terminal: Callable[..., CentralTarget], central: PgServer, log_2000: tuple[Path, list[str]]
) -> None:
    log, _ = log_2000
    nowhere = replace(terminal("front-gate"), port=free_port())  # nothing listens there
    config = write_config(log.parent, nowhere)
    done = clockface(config, "sync", "--once")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "unreachable" in done.stderr, done.stderr
    assert backlog(log) == EVENTS
    # The service loop keeps trying, and says so, without losing anything.
    with AgentThread(log, nowhere) as agent:
        wait_for(lambda: agent.status.last_error is not None, 10, "an error in the status")
    saved = read_status(status_path(log.parent))
    assert saved is not None and saved.backlog == EVENTS and "unreachable" in (saved.last_error or "")
    shown = json.loads(clockface(config, "sync", "--status", "--json").stdout)
    assert shown["backlog"] == EVENTS and "unreachable" in shown["agent"]["last_error"]
    assert central_count(central) == 0


def test_wrong_password_is_one_line_and_the_backlog_stays(
    terminal: Callable[..., CentralTarget], central: PgServer, log_2000: tuple[Path, list[str]]
) -> None:
    log, _ = log_2000
    target = terminal("front-gate")
    assert target.passfile is not None
    host, port, db, user, password = target.passfile.read_text().strip().split(":")
    target.passfile.write_text(f"{host}:{port}:{db}:{user}:not-{password}\n")
    config = write_config(log.parent, target)
    done = clockface(config, "sync", "--once")
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("clockface: error: ") and "wrong password" in lines[0], lines
    assert password not in done.stderr
    assert backlog(log) == EVENTS and central_count(central) == 0


def test_a_bad_certificate_is_one_line_and_the_backlog_stays(
    terminal: Callable[..., CentralTarget], central: PgServer, log_2000: tuple[Path, list[str]]
) -> None:
    """verify-full against a CA that did not sign the server's certificate: nothing is sent,
    the error names the certificate, and with the right CA the whole backlog lands once."""
    log, ids = log_2000
    tls = central.tls
    target = terminal("front-gate", host=tls.hostname, sslmode="verify-full")
    wrong = write_config(log.parent, target, sslrootcert=str(tls.other_ca_cert))
    done = clockface(wrong, "sync", "--once")
    assert done.returncode == 1 and done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("clockface: error: ") and "bad certificate" in lines[0], lines
    assert backlog(log) == EVENTS and central_count(central) == 0
    right = write_config(log.parent, target, sslrootcert=str(tls.ca_cert))
    done = clockface(right, "sync", "--once")
    assert done.returncode == 0, done.stderr
    assert backlog(log) == 0 and sorted(central_ids(central)) == sorted(ids)


def test_sigterm_stops_between_batches(
    terminal: Callable[..., CentralTarget], central: PgServer, log_2000: tuple[Path, list[str]]
) -> None:
    log, _ = log_2000
    # One event a batch: 2,000 transactions take seconds, so the signal lands mid-backlog.
    config = write_config(log.parent, terminal("front-gate"), batch_size=1)
    agent = spawn(config, "sync")
    wait_for(lambda: central_count(central) >= 50, 30, "some batches")
    agent.send_signal(signal.SIGTERM)
    assert agent.wait(20) == 0, agent.communicate()
    confirmed = EVENTS - backlog(log)
    assert confirmed == central_count(central), "a batch at the centre but not confirmed: not stopped between batches"
    assert 0 < confirmed < EVENTS


def test_the_gallery_is_pulled_before_the_push_on_the_same_connection(
    terminal: Callable[..., CentralTarget], central: PgServer, log_2000: tuple[Path, list[str]]
) -> None:
    """The one hook for gallery.central: called before the backlog goes (an erased person stops matching
    as early as possible), with the agent's live connection."""
    log, _ = log_2000
    seen: list[tuple[int, int | None]] = []

    def pull(conn: Any) -> GalleryNews:
        row = conn.execute("SELECT max(version_id) FROM clockface.current_gallery_version").fetchone()
        seen.append((backlog(log), row[0] if row else None))
        return GalleryNews(version=row[0] if row else None, refused="another model (test)")

    with AttendanceStore(log) as store:
        agent = SyncAgent(store, terminal("front-gate"), status_path(log.parent), pull=pull)
        assert agent.push_once() == EVENTS
    assert seen == [(EVENTS, None)], "one pull, before any event was pushed"
    saved = read_status(status_path(log.parent))
    assert saved is not None and saved.gallery_refused == "another model (test)" and saved.backlog == 0
    assert_exactly_once(central, log)


def test_the_service_is_ready_and_says_why_while_the_centre_is_unreachable(
    terminal: Callable[..., CentralTarget], central: PgServer, log_2000: tuple[Path, list[str]]
) -> None:
    """sd_notify over a real datagram socket: READY at once, STATUS with the backlog and the error, WATCHDOG pings."""
    log, _ = log_2000
    config = write_config(log.parent, replace(terminal("front-gate"), port=free_port()))
    folder = Path(tempfile.mkdtemp(prefix="nfy", dir="/tmp"))  # AF_UNIX paths are short
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(folder / "notify"))
    listener.settimeout(0.2)
    env = cli_env(config) | {"NOTIFY_SOCKET": str(folder / "notify"), "WATCHDOG_USEC": "1000000"}
    agent = subprocess.Popen([sys.executable, "-m", "device.cli", "sync"], env=env, cwd=REPO_ROOT, text=True)
    messages: list[str] = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (
            any("unreachable" in m for m in messages) and sum("WATCHDOG=1" in m for m in messages) >= 2
        ):
            with contextlib.suppress(TimeoutError):
                messages.append(listener.recv(4096).decode())
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(20) == 0
        with contextlib.suppress(TimeoutError):
            while True:  # what was queued before the exit
                messages.append(listener.recv(4096).decode())
    finally:
        if agent.poll() is None:
            agent.kill()
        listener.close()
        shutil.rmtree(folder, ignore_errors=True)
    assert messages[0].startswith("READY=1") and f"STATUS=backlog {EVENTS}" in messages[0], messages[:3]
    errors = [m for m in messages if m.startswith("STATUS=") and "unreachable" in m]
    assert errors and errors[0].startswith(f"STATUS=backlog {EVENTS}; error: central server"), errors[:1]
    assert any(m == "WATCHDOG=1" for m in messages) and messages[-1] == "STOPPING=1"
    assert backlog(log) == EVENTS
