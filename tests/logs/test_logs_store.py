"""The store on real SQLite files: round trips, append-only, migrations, one-line failures."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

import pytest
from logs_helpers import event, make_v1_database, utc

from logs.store import SCHEMA_VERSION, AttendanceEvent, AttendanceStore, StoreError, UnknownFaceEvent

REPO = Path(__file__).resolve().parents[2]


def test_record_and_read_back(store: AttendanceStore) -> None:
    first = event("alice", "check-in", utc("2026-03-02 08:00"))
    second = event("alice", "check-out", utc("2026-03-02 17:00"))
    other = event("bob", "seen", utc("2026-03-02 09:00"))
    for e in (first, other, second):
        store.record(e)
    assert store.last_event("alice") == second
    assert store.last_event("nobody") is None
    assert store.events_between(utc("2026-03-02 00:00"), utc("2026-03-03 00:00")) == [first, other, second]
    assert store.events_between(utc("2026-03-02 00:00"), utc("2026-03-02 17:00"), person="alice") == [first]


def test_pragmas_are_durable(store: AttendanceStore) -> None:
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert store.db.execute("PRAGMA busy_timeout").fetchone()[0] > 0
    assert store.schema_version == SCHEMA_VERSION


def test_no_biometric_columns(store: AttendanceStore) -> None:
    columns = {c.name for t in store.db.tables for c in t.columns}
    assert not columns & {"embedding", "image", "jpeg", "snapshot", "face", "chip"}


def test_events_are_append_only(store: AttendanceStore) -> None:
    store.record(event("alice", "check-in", utc("2026-03-02 08:00")))
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        store.db.execute("update events set person = 'mallory'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        store.db.execute("delete from events")
    assert store.db["events"].count == 1


def test_duplicate_id_is_refused_not_overwritten(store: AttendanceStore) -> None:
    e = event("alice", "check-in", utc("2026-03-02 08:00"))
    store.record(e)
    with pytest.raises(StoreError, match="not recorded"):
        store.record(AttendanceEvent("mallory", "check-in", e.timestamp_utc, 0, 0.1, "x", "y", id=e.id))
    assert store.last_event("alice") == e


def test_naive_timestamp_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        AttendanceEvent("alice", "check-in", utc("2026-03-02 08:00").replace(tzinfo=None), 0, 0.3, "camera:0", "t")


def test_erase_and_purge_are_the_audited_exceptions(store: AttendanceStore) -> None:
    store.record(event("alice", "check-in", utc("2026-01-01 08:00")))
    store.record(event("alice", "check-in", utc("2026-03-01 08:00")))
    store.record(event("bob", "check-in", utc("2026-03-01 08:05")))
    store.record_unknown(UnknownFaceEvent(utc("2026-01-01 09:00"), 0, 0.9, "camera:0", "pi"))
    assert store.purge_before(utc("2026-02-01 00:00")) == 2  # one event, one unknown
    assert store.erase_person("bob") == 1
    assert [e.person for e in store.events_between(utc("2025-01-01 00:00"), utc("2027-01-01 00:00"))] == ["alice"]
    actions = [(a["action"], a["rows_affected"]) for a in store.audit_entries()]
    assert actions == [("purge", 2), ("erase", 1)]
    assert store.db["_deletion_permit"].count == 0  # the permit never outlives its transaction
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        store.db.execute("delete from audit_log")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        store.db.execute("update audit_log set rows_affected = 0")
    with pytest.raises(sqlite3.IntegrityError):
        store.db.execute("delete from events")


def test_migrates_from_v1(db_path: Path) -> None:
    make_v1_database(
        db_path,
        [
            ("a1", "alice", "check-in", "2025-12-01T08:00:00Z", 0.31, "camera:0"),
            ("a2", "alice", "check-out", "2025-12-01T16:30:00.250000Z", 0.33, "camera:0"),
        ],
    )
    with AttendanceStore(db_path) as store:
        assert store.schema_version == SCHEMA_VERSION
        rows = store.events_between(utc("2025-12-01 00:00"), utc("2025-12-02 00:00"))
        assert [(r.id, r.utc_offset_minutes, r.terminal_id) for r in rows] == [
            ("a1", 0, "unknown"),
            ("a2", 0, "unknown"),
        ]
        assert rows[1].timestamp_utc == utc("2025-12-01 16:30") + timedelta(milliseconds=250)
        assert store.audit_entries()[0]["action"] == "migrate"
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            store.db.execute("update events set person = 'x'")
        store.record(event("bob", "check-in", utc("2026-01-01 08:00")))
    with AttendanceStore(db_path) as again:  # idempotent
        assert again.schema_version == SCHEMA_VERSION
        assert len(again.audit_entries()) == 1


def test_readonly_store_does_not_migrate(db_path: Path) -> None:
    make_v1_database(db_path, [])
    with pytest.raises(StoreError, match=f"schema v1, expected v{SCHEMA_VERSION}"):
        AttendanceStore(db_path, readonly=True)


def test_readonly_store_refuses_writes(db_path: Path) -> None:
    AttendanceStore(db_path).close()
    with AttendanceStore(db_path, readonly=True) as ro, pytest.raises(StoreError, match="read-only"):
        ro.record(event("alice", "check-in", utc("2026-03-02 08:00")))


def test_newer_schema_refused(db_path: Path) -> None:
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(
        StoreError, match=f"schema version 99; this clockface reads up to {SCHEMA_VERSION}: upgrade clockface"
    ):
        AttendanceStore(db_path)


def test_other_database_refused(db_path: Path) -> None:
    conn = sqlite3.connect(db_path)
    conn.execute("create table embeddings (id integer primary key, vector blob)")
    conn.close()
    with pytest.raises(StoreError, match="not an attendance database"):
        AttendanceStore(db_path)


def _assert_one_line(exc: pytest.ExceptionInfo[StoreError]) -> str:
    text = str(exc.value)
    assert "\n" not in text and text
    return text


def test_corrupt_database_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "attendance.db"
    path.write_bytes(b"this is not sqlite at all" * 200)
    with pytest.raises(StoreError) as exc:
        AttendanceStore(path)
    assert "file is not a database" in _assert_one_line(exc)


def test_missing_folder_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(StoreError) as exc:
        AttendanceStore(tmp_path / "nope" / "attendance.db")
    assert "does not exist" in _assert_one_line(exc)


def test_missing_database_readonly_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(StoreError) as exc:
        AttendanceStore(tmp_path / "attendance.db", readonly=True)
    assert "no attendance database" in _assert_one_line(exc)


def test_disk_full_is_one_line(store: AttendanceStore) -> None:
    store.record(event("alice", "check-in", utc("2026-03-02 08:00")))
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.db.execute(f"PRAGMA max_page_count = {pages}")  # the "disk" is now full
    with pytest.raises(StoreError) as exc:
        for i in range(5000):  # bounded: a page holds a few dozen events
            store.record(event(f"person-{i}", "seen", utc("2026-03-02 09:00")))
    assert "disk full" in _assert_one_line(exc)
    assert store.last_event("alice") is not None  # earlier evidence intact


READONLY_PROBE = """
import os, sys
from pathlib import Path
from logs.store import AttendanceStore, StoreError
if os.geteuid() == 0:  # root ignores permission bits: become 'nobody' after the imports
    os.setgid(65534)
    os.setuid(65534)
try:
    AttendanceStore(Path(sys.argv[1]))
except StoreError as exc:
    print(exc)
    sys.exit(3)
"""


def test_readonly_folder_is_one_line() -> None:
    """A folder the service user cannot write. Root ignores permission bits, so as root the
    probe runs in a child process that switches to 'nobody' once its imports are done."""
    folder = Path(tempfile.mkdtemp(prefix="clockface-ro-"))
    try:
        folder.chmod(0o555)
        if os.geteuid() != 0 and os.access(folder, os.W_OK):  # pragma: no cover - exotic filesystems
            pytest.skip("cannot make a read-only folder here")
        result = subprocess.run(
            [sys.executable, "-c", READONLY_PROBE, str(folder / "attendance.db")],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        assert result.returncode == 3, result.stderr
        line = result.stdout.strip()
        assert "\n" not in line
        assert "cannot open the database file" in line or "read-only" in line
    finally:
        folder.chmod(0o755)
        folder.rmdir()
