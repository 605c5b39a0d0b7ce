"""The `logs` commands through click's CliRunner against a real database file."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, time
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from logs_helpers import event, local

from device.cli.logs import logs
from logs.settings import LogsSettings
from logs.store import AttendanceStore


@pytest.fixture
def seeded(db_path: Path) -> Path:
    with AttendanceStore(db_path) as store:
        for e in [
            event("Alice Smith", "check-in", local("2026-03-30 08:52")),
            event("Alice Smith", "check-out", local("2026-03-30 17:05")),
            event("Bob Jones", "check-in", local("2026-03-30 09:14")),
            event("Bob Jones", "check-out", local("2026-03-30 16:30")),
            event("Alice Smith", "check-in", local("2026-03-31 08:58")),
            event("Alice Smith", "check-out", local("2026-03-31 17:00")),
            event("Carol Night", "check-in", local("2026-03-30 22:00")),
            event("Carol Night", "check-out", local("2026-03-31 06:00")),
        ]:
            store.record(e)
    return db_path


def config(db: Path, **logs_settings) -> SimpleNamespace:
    """What the root CLI puts in ctx.obj."""
    return SimpleNamespace(paths=SimpleNamespace(attendance_db=db), logs=LogsSettings(**logs_settings))


def run(args: list[str], obj=None, input: str | None = None):
    return CliRunner().invoke(logs, args, obj=obj, input=input, catch_exceptions=False)


def test_today_table_uses_configured_zone(seeded: Path) -> None:
    result = run(
        ["today", "--date", "2026-03-30"], obj=config(seeded, timezone="Europe/London", expected_start=time(9))
    )
    assert result.exit_code == 0, result.output
    assert "2026-03-30 (Europe/London), expected start 09:00: 3 present, 2 late" in result.output
    lines = result.output.splitlines()
    alice = next(line for line in lines if line.startswith("Alice Smith"))
    assert alice.split()[2:5] == ["08:52", "17:05", "8.22"]
    bob = next(line for line in lines if line.startswith("Bob Jones"))
    assert "+14 min" in bob
    carol = next(line for line in lines if line.startswith("Carol Night"))
    assert "06:00 (+1)" in carol and "8.00" in carol


def test_today_db_flag_without_config_defaults_to_utc(seeded: Path) -> None:
    result = run(["today", "--db", str(seeded), "--date", "2026-03-30", "--json"])
    rows = json.loads(result.output)
    assert rows[0]["first_in"] == "2026-03-30T07:52:00+00:00"  # UTC: no config, no --timezone


def test_report_json(seeded: Path) -> None:
    result = run(
        ["report", "--from", "2026-03-30", "--to", "2026-03-31", "--json"],
        obj=config(seeded, timezone="Europe/London", expected_start=time(9)),
    )
    rows = json.loads(result.output)
    assert [(r["date"], r["person"], r["hours"], r["late"]) for r in rows] == [
        ("2026-03-30", "Alice Smith", 8.22, False),
        ("2026-03-30", "Bob Jones", 7.27, True),
        ("2026-03-30", "Carol Night", 8.0, True),  # one expected start for everyone: 22:00 is late
        ("2026-03-31", "Alice Smith", 8.03, False),
    ]
    assert rows[1]["first_in"] == "2026-03-30T09:14:00+01:00"
    assert rows[1]["late_minutes"] == 14


def test_report_csv_file_and_person(seeded: Path, tmp_path: Path) -> None:
    out = tmp_path / "alice.csv"
    result = run(
        [
            "report",
            "--db",
            str(seeded),
            "--timezone",
            "Europe/London",
            "--from",
            "2026-03-30",
            "--to",
            "2026-03-31",
            "--person",
            "Alice Smith",
            "--csv",
            str(out),
        ],
    )
    assert result.exit_code == 0
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [(r["date"], r["first_in"], r["last_out"], r["hours"], r["open"]) for r in rows] == [
        ("2026-03-30", "2026-03-30T08:52:00+01:00", "2026-03-30T17:05:00+01:00", "8.22", "false"),
        ("2026-03-31", "2026-03-31T08:58:00+01:00", "2026-03-31T17:00:00+01:00", "8.03", "false"),
    ]


def test_report_totals_csv_stdout(seeded: Path) -> None:
    result = run(
        ["report", "--from", "2026-03-30", "--to", "2026-03-31", "--totals", "--csv", "-"],
        obj=config(seeded, timezone="Europe/London"),
    )
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert {r["person"]: (r["days"], r["hours"]) for r in rows} == {
        "Alice Smith": ("2", "16.25"),
        "Bob Jones": ("1", "7.27"),
        "Carol Night": ("1", "8.0"),
    }


def test_report_human_has_totals(seeded: Path) -> None:
    result = run(["report", "--from", "2026-03-30", "--to", "2026-03-31"], obj=config(seeded, timezone="Europe/London"))
    assert "Totals 2026-03-30 to 2026-03-31 (Europe/London)" in result.output
    assert "16.25" in result.output


def test_tail(seeded: Path) -> None:
    result = run(["tail", "-n", "2", "--json"], obj=config(seeded, timezone="Europe/London"))
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [(r["person"], r["event_type"]) for r in lines] == [
        ("Carol Night", "check-in"),
        ("Carol Night", "check-out"),
    ]
    assert lines[-1]["local_time"] == "2026-03-31T06:00:00+01:00"
    human = run(["tail", "-n", "1"], obj=config(seeded, timezone="Europe/London"))
    assert "2026-03-31 06:00:00 BST  check-out" in human.output


def test_purge_asks_then_purges(seeded: Path) -> None:
    obj = config(seeded, timezone="Europe/London")
    aborted = CliRunner().invoke(logs, ["purge", "--before", "2026-03-31"], obj=obj, input="n\n")
    assert aborted.exit_code == 1 and "Remove 5 events recorded before 2026-03-31" in aborted.output
    result = run(["purge", "--before", "2026-03-31", "--yes", "--json"], obj=obj)
    assert json.loads(result.output)["removed"] == 5
    with AttendanceStore(seeded, readonly=True) as store:
        remaining = store.events_between(datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
        assert [(e.person, e.event_type) for e in remaining] == [
            ("Carol Night", "check-out"),
            ("Alice Smith", "check-in"),
            ("Alice Smith", "check-out"),
        ]
        assert store.audit_entries()[-1]["action"] == "purge"


def test_errors_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "attendance.db"
    bad.write_bytes(b"garbage" * 1000)
    result = CliRunner().invoke(logs, ["today", "--db", str(bad)])
    assert result.exit_code == 1
    assert result.output.strip().count("\n") == 0
    assert result.output.startswith("Error: ") and "file is not a database" in result.output
    missing = CliRunner().invoke(logs, ["report", "--db", str(tmp_path / "none.db"), "--from", "2026-01-01"])
    assert missing.exit_code == 1 and "no attendance database here yet" in missing.output


def test_bad_timezone_flag(seeded: Path) -> None:
    result = CliRunner().invoke(logs, ["today", "--db", str(seeded), "--timezone", "Mars/Olympus"])
    assert result.exit_code == 2 and "not an IANA time zone" in result.output
