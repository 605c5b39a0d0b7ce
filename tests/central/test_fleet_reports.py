"""Fleet reports on a real PostgreSQL server: every terminal's events, the local report's maths and formats.

Events reach the central store the way a terminal sends them (its own role,
the contract's INSERT, the `terminal` column filled by the server), and the
reports are read with the administrator's DSN, as `clockface logs ... --central`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from device.cli.logs import logs
from logs import reports
from logs.central import reports as central_reports
from logs.central.connect import CentralTarget, connect
from logs.settings import LogsSettings
from logs.store import AttendanceEvent, AttendanceStore
from tests.central.pg import PgServer

pytestmark = pytest.mark.usefixtures("central")

LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")

INSERT = (
    "INSERT INTO clockface.events (id, person, event_type, timestamp_utc, utc_offset_minutes, distance, source)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING"
)


def local(text: str, zone: ZoneInfo = LONDON) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=zone).astimezone(UTC)


def make_event(person: str, kind: str, when: datetime, terminal: str, zone: ZoneInfo = LONDON) -> AttendanceEvent:
    offset = int(when.astimezone(zone).utcoffset().total_seconds() // 60)  # type: ignore[union-attr]
    return AttendanceEvent(person, kind, when, offset, 0.31, "camera:0", terminal)


def push(target: CentralTarget, events: Iterable[AttendanceEvent]) -> None:
    """What a terminal's sync agent does: its own role, one batch, then COMMIT."""
    with connect(target) as conn, conn.cursor() as cur:
        cur.executemany(
            INSERT,
            [
                (
                    uuid.UUID(e.id),
                    e.person,
                    e.event_type,
                    e.timestamp_utc,
                    e.utc_offset_minutes,
                    e.distance,
                    e.source,
                )
                for e in events
            ],
        )


def run(args: list[str], obj: object = None):
    return CliRunner().invoke(logs, args, obj=obj, catch_exceptions=False)


def config(db: Path, **settings: object) -> SimpleNamespace:
    return SimpleNamespace(paths=SimpleNamespace(attendance_db=db), logs=LogsSettings(**settings))  # type: ignore[arg-type]


@pytest.fixture
def gates(terminal: Callable[..., CentralTarget]) -> tuple[CentralTarget, CentralTarget]:
    return terminal("front-gate"), terminal("back-gate")


# Alice in at the front gate and out at the back gate; Bob both at the front; Carol
# in at the back at night and out at the front next morning.
DAY = [
    ("Alice Smith", "check-in", "2026-03-30 08:52", "front-gate"),
    ("Alice Smith", "seen", "2026-03-30 12:10", "back-gate"),
    ("Alice Smith", "check-out", "2026-03-30 17:05", "back-gate"),
    ("Bob Jones", "check-in", "2026-03-30 09:14", "front-gate"),
    ("Bob Jones", "check-out", "2026-03-30 16:30", "front-gate"),
    ("Carol Night", "check-in", "2026-03-30 22:00", "back-gate"),
    ("Carol Night", "check-out", "2026-03-31 06:00", "front-gate"),
]


@pytest.fixture
def day_events(gates: tuple[CentralTarget, CentralTarget]) -> list[AttendanceEvent]:
    by_name = {"front-gate": gates[0], "back-gate": gates[1]}
    events = [make_event(p, k, local(t), gate) for p, k, t, gate in DAY]
    for name, target in by_name.items():
        push(target, [e for e in events if e.terminal_id == name])
    return events


def test_in_at_one_gate_out_at_another_is_one_day(central: PgServer, day_events: list[AttendanceEvent]) -> None:
    result = run(
        [
            "report",
            "--central",
            "--dsn",
            central.admin_dsn,
            "--from",
            "2026-03-30",
            "--json",
            "--timezone",
            "Europe/London",
        ]
    )
    assert result.exit_code == 0, result.output
    import json

    rows = {r["person"]: r for r in json.loads(result.output)}
    assert rows["Alice Smith"]["first_in"] == "2026-03-30T08:52:00+01:00"  # front gate
    assert rows["Alice Smith"]["last_out"] == "2026-03-30T17:05:00+01:00"  # back gate
    assert rows["Alice Smith"]["hours"] == 8.22 and rows["Alice Smith"]["shifts"] == 1
    assert not rows["Alice Smith"]["open"]
    assert rows["Carol Night"]["hours"] == 8.0  # back gate at night, front gate next morning: one shift
    assert len(rows) == 3


def test_central_formats_equal_the_local_report(
    central: PgServer, day_events: list[AttendanceEvent], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One log holding the same events gives byte-identical --json and --csv (DSN from the environment)."""
    db = tmp_path / "attendance.db"
    with AttendanceStore(db) as store:
        for e in day_events:
            store.record(e)
    obj = config(db, timezone="Europe/London", expected_start=time(9))
    monkeypatch.setenv("CLOCKFACE_CENTRAL_DSN", central.admin_dsn)
    for command in (["report", "--from", "2026-03-30", "--to", "2026-03-31"], ["today", "--date", "2026-03-30"]):
        for form in (["--json"], ["--csv", "-"]):
            here = run([*command, *form], obj=obj)
            fleet = run([*command, *form, "--central"], obj=obj)
            assert fleet.exit_code == 0, fleet.output
            assert fleet.output == here.output and here.output.count("\n") >= 4, (command, form)
    totals_here = run(["report", "--from", "2026-03-30", "--to", "2026-03-31", "--totals", "--csv", "-"], obj=obj)
    totals_fleet = run(
        ["report", "--from", "2026-03-30", "--to", "2026-03-31", "--totals", "--csv", "-", "--central"], obj=obj
    )
    assert totals_fleet.output == totals_here.output


def test_a_day_boundary_in_a_non_utc_zone(central: PgServer, terminal: Callable[..., CentralTarget]) -> None:
    """New York: 23:30 and 00:30 local are two days though both are 2026-03-09 in UTC; the DST day is 23 h."""
    gate = terminal("north")
    events = [
        make_event("Dana", "check-in", local("2026-03-07 23:30", NEW_YORK), "north", NEW_YORK),
        make_event("Dana", "seen", local("2026-03-08 00:30", NEW_YORK), "north", NEW_YORK),
        make_event("Dana", "seen", local("2026-03-08 23:59", NEW_YORK), "north", NEW_YORK),
        make_event("Eve", "seen", local("2026-03-08 00:10", NEW_YORK), "north", NEW_YORK),
        make_event("Eve", "seen", local("2026-03-08 03:10", NEW_YORK), "north", NEW_YORK),  # after the jump
        make_event("Eve", "seen", local("2026-03-09 00:00", NEW_YORK), "north", NEW_YORK),
    ]
    push(gate, events)
    with connect(central.admin_dsn) as conn:
        rows = central_reports.daily_rows(conn, NEW_YORK, date(2026, 3, 8), date(2026, 3, 9))
    got = [(r.day.isoformat(), r.person, r.first_in and r.first_in.strftime("%H:%M"), r.basis, r.hours) for r in rows]
    assert got == [
        ("2026-03-08", "Dana", "00:30", "seen", 22.48),  # 23:59 - 00:30 on a 23-hour day
        ("2026-03-08", "Eve", "00:10", "seen", 2.0),
        ("2026-03-09", "Eve", "00:00", "seen", 0.0),
    ]
    # Dana's check-in was on the 7th: it belongs to that day, open, outside this report.


def random_fleet_events(seed: int, zone: ZoneInfo, first: date, days: int) -> list[AttendanceEvent]:
    """Many people, three gates, every kind of event, clustered around midnights and a DST change."""
    import random

    rng = random.Random(seed)
    start = datetime.combine(first, time(0), tzinfo=zone).astimezone(UTC) - timedelta(hours=20)
    span = (days + 2) * 86400
    events = []
    for _ in range(1500):
        moment = start + timedelta(seconds=rng.uniform(0, span))
        if rng.random() < 0.3:  # near a local midnight
            day = first + timedelta(days=rng.randrange(-1, days + 1))
            moment = local(f"{day} 00:00", zone) + timedelta(minutes=rng.uniform(-40, 40))
        person = rng.randrange(25)  # P15..P24 are only ever seen (a terminal logging sightings)
        kind = "seen" if person >= 15 else rng.choice(["check-in", "check-out", "seen", "seen"])
        events.append(make_event(f"P{person}", kind, moment, rng.choice(["a", "b", "c"]), zone))
    return events


@pytest.mark.parametrize("zone", [NEW_YORK, LONDON, ZoneInfo("Asia/Kolkata")], ids=str)
def test_server_computed_rows_equal_the_python_rules(
    central: PgServer, terminal: Callable[..., CentralTarget], zone: ZoneInfo
) -> None:
    """logs/central/day_sql.py against logs/reports.py on every event: duplicates, stale and orphan
    shifts, night shifts, sightings-only days, midnights and New York's DST change on the 8th."""
    first, days = date(2026, 3, 7), 3
    events = random_fleet_events(13, zone, first, days)
    for name in "abc":
        push(terminal(name), [e for e in events if e.terminal_id == name])
    last = first + timedelta(days=days - 1)
    with connect(central.admin_dsn) as conn:
        start, end = reports.fetch_window_utc(first, last, zone)
        everything = central_reports.events_between(conn, start, end)
        fleet = central_reports.daily_rows(conn, zone, first, last, time(9))
        one = central_reports.daily_rows(conn, zone, first, last, time(9), person="P3")
    assert {(e.id, e.terminal_id) for e in everything} == {
        (e.id, e.terminal_id) for e in events if start <= e.timestamp_utc < end
    }
    expected = reports.daily_rows(events, zone, first, last, time(9))
    assert sum(1 for r in expected if r.basis == "seen") > 10 and sum(1 for r in expected if r.open) > 3
    assert sum(1 for r in expected if r.first_in is None) >= 2  # days of check-outs with no check-in
    assert fleet == expected
    assert one == [r for r in expected if r.person == "P3"] and one


def test_tail_shows_the_terminal_that_pushed_each_event(central: PgServer, day_events: list[AttendanceEvent]) -> None:
    import json

    result = run(["tail", "--central", "--dsn", central.admin_dsn, "-n", "3", "--json"])
    assert result.exit_code == 0, result.output
    shown = [json.loads(line) for line in result.output.splitlines()]
    # The back gate pushed after the front gate: its events were received last.
    assert [(r["person"], r["terminal_id"]) for r in shown] == [
        ("Alice Smith", "back-gate"),
        ("Alice Smith", "back-gate"),
        ("Carol Night", "back-gate"),
    ]
    text = run(["tail", "--central", "--dsn", central.admin_dsn, "-n", "1"]).output
    assert text.rstrip().endswith("camera:0  back-gate")


def test_follow_prints_a_batch_that_committed_after_a_later_one(
    central: PgServer, gates: tuple[CentralTarget, CentralTarget]
) -> None:
    """received_at is stamped at INSERT, visible at COMMIT: a slow batch lands behind rows already shown."""
    front, back = gates
    slow, quick = (make_event(p, "check-in", local("2026-03-30 08:00"), "x") for p in ("Slow", "Quick"))
    with connect(central.admin_dsn) as reader:
        follower = central_reports.CentralFollower(reader)
        assert follower.start(10) == []
        with connect(front) as slow_conn:
            slow_conn.execute(INSERT, (uuid.UUID(slow.id), "Slow", "check-in", slow.timestamp_utc, 60, 0.3, "camera:0"))
            push(back, [quick])  # inserted later, committed first
            assert [e.person for e in follower.poll()] == ["Quick"]
        # slow_conn committed on leaving the block
        assert [(e.person, e.terminal_id) for e in follower.poll()] == [("Slow", "front-gate")]
        assert follower.poll() == []


def test_central_without_a_dsn_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLOCKFACE_CENTRAL_DSN", raising=False)
    result = CliRunner().invoke(logs, ["today", "--central"])
    assert result.exit_code == 2
    assert "--central needs --dsn DSN or CLOCKFACE_CENTRAL_DSN" in result.output


def test_a_wrong_password_is_one_line_without_the_password(central: PgServer) -> None:
    secret = "not-the-password-4711"
    result = CliRunner().invoke(
        logs,
        ["report", "--central", "--dsn", central.dsn(password=secret, user="clockface_admin"), "--from", "2026-03-30"],
    )
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [
        "clockface: error: central server clockface_admin@127.0.0.1:"
        f"{central.port}/clockface: wrong password for this user (check the passfile;"
        " a terminal's is reissued by `clockface central add-terminal --rotate`)"
    ]
    assert secret not in result.output


def test_a_terminals_login_cannot_report_and_is_told_why(
    day_events: list[AttendanceEvent], gates: tuple[CentralTarget, CentralTarget]
) -> None:
    front = gates[0]
    dsn = f"host={front.host} port={front.port} dbname=clockface user={front.user} passfile={front.passfile} sslmode=disable"
    for command in (["report", "--from", "2026-03-30"], ["tail"]):
        result = CliRunner().invoke(logs, [*command, "--central", "--dsn", dsn])
        assert result.exit_code == 1, result.output
        assert result.output.strip() == (
            f"clockface: error: central server {front.user}@{front.host}:{front.port}/clockface: this login may not"
            " read the events (a terminal's role only adds its own; report with the administrator's or a reporting login)"
        )
