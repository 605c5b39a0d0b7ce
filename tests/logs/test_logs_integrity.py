"""The tamper-evident attendance log: real SQLite files edited as an attacker with sqlite3 would.

Each attack uses only what someone with shell access and the `sqlite3` tool
has: the file and plain SQL. `clockface logs verify` must name the first
broken link and exit 1; an untouched or legitimately purged/erased log exits 0.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from logs_helpers import event, local, make_v1_database, utc

from device.cli.logs import logs
from logs import chain
from logs.settings import LogsSettings
from logs.store import SCHEMA_VERSION, AttendanceStore, StoreError

DAYS = ["2026-03-02", "2026-03-03", "2026-03-04", "2026-03-05"]


@pytest.fixture
def seeded(db_path: Path) -> Path:
    """Four days of Alice and Bob, recorded through the store."""
    with AttendanceStore(db_path) as store:
        for day in DAYS:
            for person, hour in (("Alice Smith", "08:50"), ("Bob Jones", "09:10")):
                store.record(event(person, "check-in", local(f"{day} {hour}")))
            for person, hour in (("Alice Smith", "17:00"), ("Bob Jones", "16:30")):
                store.record(event(person, "check-out", local(f"{day} {hour}")))
    return db_path


def verify(db: Path, *extra: str):
    return CliRunner().invoke(logs, ["verify", "--db", str(db), *extra], catch_exceptions=False)


def verify_json(db: Path, *extra: str) -> tuple[int, dict]:
    result = verify(db, "--json", *extra)
    return result.exit_code, json.loads(result.output)


def attacker(db: Path) -> sqlite3.Connection:
    """Plain sqlite3, autocommit: what `sqlite3 attendance.db` gives someone at a shell."""
    return sqlite3.connect(db, isolation_level=None)


def nth_event(db: Path, n: int) -> tuple[str, str]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT id, timestamp_utc FROM events ORDER BY rowid LIMIT 1 OFFSET ?", [n]).fetchone()
    finally:
        conn.close()


def test_untouched_log_verifies(seeded: Path) -> None:
    result = verify(seeded)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("OK: 16 events")
    code, report = verify_json(seeded)
    assert code == 0 and report["ok"] is True and report["problems"] == [] and report["events"] == 16


def test_delete_through_the_permit_table_is_named(seeded: Path) -> None:
    """The attack triggers alone did not stop: open the permit, delete, close it again."""
    victim_id, _ = nth_event(seeded, 5)
    next_id, next_time = nth_event(seeded, 6)
    conn = attacker(seeded)
    conn.execute("INSERT INTO _deletion_permit (reason) VALUES ('x')")
    conn.execute("DELETE FROM events WHERE id = ?", [victim_id])
    conn.execute("DELETE FROM _deletion_permit")
    conn.close()

    result = verify(seeded)
    assert result.exit_code == 1
    assert "row missing" in result.output and next_id in result.output and next_time in result.output
    code, report = verify_json(seeded)
    assert code == 1 and report["ok"] is False
    first = report["first_broken"]
    assert (first["kind"], first["event_id"], first["timestamp_utc"]) == ("row missing", next_id, next_time)
    assert len(report["problems"]) == 1  # resynchronised: one deletion, one report


def test_changed_time_after_dropping_the_trigger_is_named(seeded: Path) -> None:
    victim_id, _ = nth_event(seeded, 3)
    conn = attacker(seeded)
    conn.execute("DROP TRIGGER events_append_only_update")
    conn.execute("UPDATE events SET timestamp_utc = '2026-03-02T07:59:00.000000Z' WHERE id = ?", [victim_id])
    conn.close()

    code, report = verify_json(seeded)
    assert code == 1
    kinds = [p["kind"] for p in report["problems"]]
    assert report["first_broken"]["kind"] == "content changed"
    assert report["first_broken"]["event_id"] == victim_id
    assert report["first_broken"]["timestamp_utc"] == "2026-03-02T07:59:00.000000Z"
    assert "trigger missing" in kinds
    assert any("events_append_only_update" in p["detail"] for p in report["problems"])


def test_restored_trigger_does_not_hide_the_edit(seeded: Path) -> None:
    """Drop the trigger, edit, put an identical trigger back: the hash still shows the edit."""
    victim_id, _ = nth_event(seeded, 0)
    conn = attacker(seeded)
    sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'events_append_only_update'").fetchone()[0]
    conn.execute("DROP TRIGGER events_append_only_update")
    conn.execute("UPDATE events SET person = 'Mallory' WHERE id = ?", [victim_id])
    conn.execute(sql)
    conn.close()
    code, report = verify_json(seeded)
    assert code == 1
    assert [p["kind"] for p in report["problems"]] == ["content changed"]
    assert report["first_broken"]["event_id"] == victim_id


def test_dropped_delete_trigger_alone_is_reported(seeded: Path) -> None:
    conn = attacker(seeded)
    conn.execute("DROP TRIGGER events_append_only_delete")
    conn.close()
    result = verify(seeded)
    assert result.exit_code == 1
    assert "trigger missing" in result.output and "events_append_only_delete" in result.output


def test_left_open_permit_and_forged_row_are_reported(seeded: Path) -> None:
    conn = attacker(seeded)
    conn.execute(
        "INSERT INTO events (id, person, event_type, timestamp_utc, distance, source, utc_offset_minutes, terminal_id)"
        " VALUES ('forged', 'Mallory', 'check-in', '2026-03-05T08:00:00.000000Z', 0.1, 'camera:0', 0, 'pi-test')"
    )
    conn.execute("INSERT INTO _deletion_permit (reason) VALUES ('x')")
    conn.close()
    code, report = verify_json(seeded)
    assert code == 1
    assert report["first_broken"]["event_id"] == "forged"
    assert {p["kind"] for p in report["problems"]} == {"hash missing", "permit open"}


def test_legitimate_purge_and_erase_verify(seeded: Path) -> None:
    obj = SimpleNamespace(paths=SimpleNamespace(attendance_db=seeded), logs=LogsSettings(timezone="Europe/London"))
    runner = CliRunner()
    purged = runner.invoke(logs, ["purge", "--before", "2026-03-04", "--yes"], obj=obj, catch_exceptions=False)
    assert purged.exit_code == 0 and "Removed 8 events" in purged.output
    assert verify(seeded).exit_code == 0
    erased = runner.invoke(logs, ["erase", "Alice Smith", "--yes"], obj=obj, catch_exceptions=False)
    assert erased.exit_code == 0 and "Removed 4 events" in erased.output
    result = verify(seeded)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("OK: 4 events")
    with AttendanceStore(seeded) as store:
        details = [json.loads(a["detail"]) for a in store.audit_entries()]
    assert [len(d["chain_cuts"]) for d in details] == [
        1,
        4,
    ]  # a prefix; each of Alice's 4 rows sits between two of Bob's
    # New events after the cuts still chain.
    with AttendanceStore(seeded) as store:
        store.record(event("Bob Jones", "check-in", local("2026-03-06 09:00")))
    assert verify(seeded).exit_code == 0


def test_purging_everything_then_recording_continues_the_chain(seeded: Path) -> None:
    with AttendanceStore(seeded) as store:
        store.purge_before(utc("2026-04-01 00:00"))
        head = store.chain_head()
        assert head != chain.GENESIS and store.verify().ok
        store.record(event("Bob Jones", "check-in", local("2026-04-02 09:00")))
    conn = sqlite3.connect(seeded)
    assert conn.execute("SELECT prev_hash FROM events").fetchone()[0] == head
    conn.close()
    assert verify(seeded).exit_code == 0


def test_head_prints_the_newest_hash_and_expect_head_catches_a_rewritten_tail(seeded: Path) -> None:
    written_down = verify(seeded, "--head").output.strip()
    conn = sqlite3.connect(seeded)
    assert written_down == conn.execute("SELECT chain_hash FROM events ORDER BY rowid DESC LIMIT 1").fetchone()[0]
    conn.close()
    with AttendanceStore(seeded) as store:
        store.record(event("Bob Jones", "check-in", local("2026-03-06 09:00")))
    assert verify(seeded, "--expect-head", written_down).exit_code == 0  # still in the chain
    # Deleting the newest rows leaves no later row to complain; only the written-down head shows it.
    conn = attacker(seeded)
    conn.execute("INSERT INTO _deletion_permit (reason) VALUES ('x')")
    conn.execute("DELETE FROM events WHERE rowid >= (SELECT max(rowid) - 1 FROM events)")
    conn.execute("DELETE FROM _deletion_permit")
    conn.close()
    assert verify(seeded).exit_code == 0
    code, report = verify_json(seeded, "--expect-head", written_down)
    assert code == 1 and report["first_broken"]["kind"] == "head not found"


def test_v2_database_is_back_filled_in_rowid_order(db_path: Path) -> None:
    make_v1_database(
        db_path,
        [
            ("b", "bob", "check-in", "2026-03-02T09:00:00Z", 0.4, "camera:0"),
            ("a", "alice", "check-in", "2026-03-02T08:00:00Z", 0.3, "camera:0"),
        ],
    )
    with AttendanceStore(db_path) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert store.verify().ok
        store.record(event("carol", "check-in", utc("2026-03-02 10:00")))
    conn = sqlite3.connect(db_path)
    rows = conn.execute("SELECT id, prev_hash, chain_hash FROM events ORDER BY rowid").fetchall()
    conn.close()
    assert [r[0] for r in rows[:2]] == ["b", "a"]
    assert rows[0][1] == chain.GENESIS and rows[1][1] == rows[0][2] and rows[2][1] == rows[1][2]
    assert verify(db_path).exit_code == 0


def test_retention_refuses_a_broken_chain_and_deletes_nothing(seeded: Path) -> None:
    from logs.retention import apply_retention

    conn = attacker(seeded)
    conn.execute("DROP TRIGGER events_append_only_update")
    conn.execute("UPDATE events SET distance = 0.01 WHERE rowid = 2")
    conn.close()
    with AttendanceStore(seeded) as store:
        with pytest.raises(StoreError, match="retention refused") as refused:
            apply_retention(store, LogsSettings(retention_days=1), now=datetime(2026, 4, 1, tzinfo=UTC))
        assert "\n" not in str(refused.value) and "content changed" in str(refused.value)
        assert store.max_rowid() == 16 and store.audit_entries() == []


def test_retain_command_refuses_in_one_line(seeded: Path) -> None:
    conn = attacker(seeded)
    conn.execute("INSERT INTO _deletion_permit (reason) VALUES ('x')")
    conn.execute("DELETE FROM events WHERE rowid = 3")
    conn.execute("DELETE FROM _deletion_permit")
    conn.close()
    obj = SimpleNamespace(paths=SimpleNamespace(attendance_db=seeded), logs=LogsSettings(retention_days=1))
    result = CliRunner().invoke(logs, ["retain"], obj=obj)
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "retention refused" in lines[0] and "row missing" in lines[0]


def test_verify_does_not_write(seeded: Path) -> None:
    before = seeded.read_bytes()
    assert verify(seeded).exit_code == 0
    assert seeded.read_bytes() == before


def test_two_writer_processes_do_not_fork_the_chain(db_path: Path) -> None:
    """Each insert reads the tip inside its own write lock, so concurrent writers extend one chain."""
    from test_logs_concurrency import WRITER, _spawn

    AttendanceStore(db_path).close()
    writers = [_spawn(WRITER, str(db_path), name, "100") for name in ("writer-a", "writer-b")]
    for proc in writers:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert json.loads(out)["errors"] == []
    conn = sqlite3.connect(db_path)
    prevs = [r[0] for r in conn.execute("SELECT prev_hash FROM events")]
    conn.close()
    assert len(prevs) == 200 and len(set(prevs)) == 200
    code, report = verify_json(db_path)
    assert code == 0 and report["events"] == 200
