"""Erasure reaches every terminal's own log: a real PostgreSQL, real SQLite logs, the real agent and CLI.

The story each test tells: a terminal has pushed some events and holds a backlog
with more, some of them of the person to erase; it is offline while the centre
runs `clockface central remove NAME [--with-logs]`; then it reconnects. Checked
by UUID on both sides.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from device.cli import main
from device.sync.agent import SyncAgent
from device.sync.erasures import read_state, state_path
from device.sync.status import read_status, status_path
from gallery.central import publish_version
from gallery.store import ModelBinding, Template
from logs.central.connect import CentralTarget, connect
from logs.store import AttendanceEvent, AttendanceStore
from tests.central.pg import PgServer

ERASED = "Anna Smith"
OTHERS = ("Bob Jones", "Chen Wei", "Dara Okafor")
START = datetime(2026, 12, 1, 7, 0, tzinfo=UTC)
MODEL = ModelBinding("test-model", "ab" * 32, 2)


def event(person: str, i: int) -> AttendanceEvent:
    kind = ("check-in", "check-out")[i % 2]
    return AttendanceEvent(person, kind, START + timedelta(minutes=7 * i), 60, 0.3, "camera:0", "front-gate")


def record(log: Path, people: list[str], offset: int = 0) -> list[AttendanceEvent]:
    events = [event(p, offset + i) for i, p in enumerate(people)]
    with AttendanceStore(log) as store:
        for e in events:
            store.record(e)
    return events


def mix(rounds: int, erased: str = ERASED) -> list[str]:
    """Each round: the erased person (in the spelling given) and every other person once."""
    return [p for _ in range(rounds) for p in (erased, *OTHERS)]


def sync_once(log: Path, target: CentralTarget) -> int:
    with AttendanceStore(log) as store:
        return SyncAgent(store, target, status_path(log.parent), batch_size=7).push_once()


def central_remove(server: PgServer, *args: str) -> None:
    result = CliRunner().invoke(
        main, ["central", "remove", *args, "--yes"], env={"CLOCKFACE_CENTRAL_DSN": server.admin_dsn}
    )
    assert result.exit_code == 0, (result.stdout, result.stderr)


def local_rows(log: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(log)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def local_people(log: Path) -> dict[str, str]:
    """event id -> person, of every event in the local log."""
    return dict(local_rows(log, "SELECT id, person FROM events"))


def confirmed_ids(log: Path) -> set[str]:
    return {r[0] for r in local_rows(log, "SELECT event_id FROM central_confirmations")}


def central_people(server: PgServer) -> list[tuple[str, str]]:
    """(id, person) of every central event, duplicates kept (the id is the primary key, but say so)."""
    with connect(server.admin_dsn) as conn:
        return [(r[0], r[1]) for r in conn.execute("SELECT id::text, person FROM clockface.events")]


@pytest.fixture
def gate(terminal: Callable[..., CentralTarget], tmp_path: Path) -> tuple[Path, CentralTarget]:
    """front-gate's log (in its data dir) and target; it has pushed two rounds, and holds three more unsent."""
    data = tmp_path / "front-gate"
    data.mkdir()
    log = data / "attendance.db"
    target = terminal("front-gate")
    record(log, mix(2))
    assert sync_once(log, target) == 2 * (1 + len(OTHERS))
    # The backlog: the erased person's events in another spelling too (names match like a gallery's).
    record(log, mix(2) + mix(1, erased="anna  SMITH"), offset=100)
    return log, target


def test_an_offline_terminal_erases_the_persons_events_before_it_pushes_anything(
    central: PgServer, gate: tuple[Path, CentralTarget]
) -> None:
    log, target = gate
    before = local_people(log)
    theirs = {i for i, p in before.items() if p.casefold().split() == ERASED.casefold().split()}
    assert len(theirs) == 5 and theirs & confirmed_ids(log), "some of theirs were confirmed, some wait"

    central_remove(central, ERASED, "--with-logs")  # the terminal is offline meanwhile
    sync_once(log, target)  # it reconnects

    after = local_people(log)
    assert set(after) == set(before) - theirs, "their events are gone from the terminal's log, no one else's"
    assert confirmed_ids(log) == set(after), "their confirmations went with them; everyone else's is confirmed"
    centre = central_people(central)
    assert not {i for i, _ in centre} & theirs, "none of their events reached the centre"
    assert sorted(i for i, _ in centre) == sorted(after), "everyone else's events landed, each exactly once"
    erase_entries = local_rows(log, "SELECT detail FROM audit_log WHERE action = 'erase'")
    assert sorted(json.loads(d)["person"] for (d,) in erase_entries) == ["Anna Smith", "anna  SMITH"]
    status = read_status(status_path(log.parent))
    assert status is not None and status.erasures_applied == 1 and "1 erasure applied" in status.line()


def test_without_with_logs_the_terminals_events_stay_and_are_pushed(
    central: PgServer, gate: tuple[Path, CentralTarget]
) -> None:
    log, target = gate
    with connect(central.admin_dsn) as conn:  # the person must be enrolled for a plain remove
        publish_version(conn, MODEL, [Template(ERASED, "a.jpg", np.array([1.0, 0.0], dtype=np.float32))])
    before = local_people(log)

    central_remove(central, ERASED)
    sync_once(log, target)

    assert local_people(log) == before, "a plain remove leaves the attendance log alone"
    centre = central_people(central)
    assert sorted(i for i, _ in centre) == sorted(before)
    assert read_state(state_path(log.parent)).applied == 1, "the request was still seen and noted"


def test_an_erasure_applied_twice_is_harmless(central: PgServer, gate: tuple[Path, CentralTarget]) -> None:
    """A crash between the local erase and the state file's rename: the request is applied again."""
    log, target = gate
    central_remove(central, ERASED, "--with-logs")
    sync_once(log, target)
    state = state_path(log.parent)
    assert read_state(state).last_applied_id > 0
    audit_before = local_rows(log, "SELECT id, action FROM audit_log")
    state.unlink()  # as if the agent died before the rename
    record(log, list(OTHERS), offset=200)  # life went on meanwhile

    sync_once(log, target)

    assert read_state(state).last_applied_id > 0, "noted again"
    assert local_rows(log, "SELECT id, action FROM audit_log") == audit_before, "nothing erased, nothing written"
    after = local_people(log)
    assert len(after) == 5 * len(OTHERS) + len(OTHERS), "five rounds of the others, and the three new events"
    centre = central_people(central)
    assert sorted(i for i, _ in centre) == sorted(after), "everyone else's events, each exactly once"


def test_an_event_already_on_its_way_does_not_bring_them_back(
    central: PgServer, terminal: Callable[..., CentralTarget]
) -> None:
    """An older agent (or a batch in flight) pushes the person's event after the request: the centre skips it."""
    front = terminal("front-gate")
    with connect(front) as conn:
        conn.execute(
            "INSERT INTO clockface.events (id, person, event_type, timestamp_utc, utc_offset_minutes, distance, source)"
            " VALUES (%s, %s, 'check-in', now() - interval '1 hour', 60, 0.3, 'camera:0')",
            (uuid.uuid4(), ERASED),
        )
        conn.commit()
    central_remove(central, ERASED, "--with-logs")
    stale, fresh, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    push = (
        "INSERT INTO clockface.events (id, person, event_type, timestamp_utc, utc_offset_minutes, distance, source)"
        " VALUES (%s, %s, 'check-in', %s, 60, 0.3, 'camera:0') ON CONFLICT (id) DO NOTHING"
    )
    now = datetime.now(UTC)
    with connect(front) as conn:
        conn.execute(push, (stale, " anna smith ", now - timedelta(minutes=30)))  # recorded before the request
        conn.execute(push, (other, OTHERS[0], now - timedelta(minutes=30)))
        conn.execute(push, (fresh, ERASED, now + timedelta(minutes=5)))  # re-enrolled and seen after it
        conn.commit()
    assert sorted(central_people(central)) == sorted([(str(other), OTHERS[0]), (str(fresh), ERASED)])
