"""Attendance schema v4: the central store's confirmations live beside the events, never on them."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from logs_helpers import event, make_v1_database, utc

from logs.store import AttendanceStore

AT = utc("2026-03-03 12:00")


def _record(store: AttendanceStore, count: int, start: str = "2026-03-02 08:00") -> list[str]:
    ids = []
    for i in range(count):
        e = event(f"p{i % 3}", "check-in", utc(start) + timedelta(minutes=i))
        store.record(e)
        ids.append(e.id)
    return ids


def test_unconfirmed_is_oldest_first_by_insertion_and_confirm_shrinks_the_backlog(store: AttendanceStore) -> None:
    # The clock went back an hour after the first event: insertion order still wins.
    late = event("alice", "check-in", utc("2026-03-02 09:00"))
    early = event("bob", "check-in", utc("2026-03-02 08:00"))
    store.record(late)
    store.record(early)
    ids = [late.id, early.id, *_record(store, 3)]
    assert store.backlog() == 5
    assert [e.id for e in store.unconfirmed(2)] == ids[:2]
    assert store.unconfirmed(10)[1] == early
    assert store.confirm(ids[:2], AT) == 2
    assert store.confirm(ids[:2], AT) == 0  # twice is harmless
    assert store.confirm(["not-an-event"], AT) == 0  # only events this log holds
    assert store.backlog() == 3
    assert [e.id for e in store.unconfirmed(10)] == ids[2:]
    store.confirm(ids, AT)
    assert store.backlog() == 0 and store.unconfirmed(10) == []


def test_events_are_never_updated_and_confirmations_are_append_only(store: AttendanceStore, db_path: Path) -> None:
    ids = _record(store, 2)
    before = sqlite3.connect(db_path).execute("SELECT * FROM events ORDER BY rowid").fetchall()
    store.confirm(ids, AT)
    after = sqlite3.connect(db_path).execute("SELECT * FROM events ORDER BY rowid").fetchall()
    assert before == after
    conn = sqlite3.connect(db_path, isolation_level=None)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE central_confirmations SET confirmed_at_utc = 'x'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM central_confirmations")
    conn.close()
    assert store.verify().ok


def test_purge_and_erase_remove_the_confirmations_of_what_they_delete(store: AttendanceStore, db_path: Path) -> None:
    old = _record(store, 4, start="2026-01-01 08:00")
    new = _record(store, 4, start="2026-03-02 08:00")
    store.confirm(old + new, AT)
    assert store.purge_before(utc("2026-02-01 00:00")) == 4
    assert store.audit_entries()[-1]["detail"].count('"confirmations": 4') == 1
    erased = [e.id for e in store.events_between(utc("2026-03-01 00:00"), utc("2026-03-03 00:00"), person="p0")]
    store.erase_person("p0")
    left = {r[0] for r in sqlite3.connect(db_path).execute("SELECT event_id FROM central_confirmations")}
    assert left == set(new) - set(erased) and erased
    assert store.backlog() == 0
    report = store.verify()
    assert report.ok, report.problems


def test_verify_notices_a_dropped_confirmation_trigger(store: AttendanceStore, db_path: Path) -> None:
    _record(store, 1)
    sqlite3.connect(db_path, isolation_level=None).execute("DROP TRIGGER central_confirmations_append_only_delete")
    kinds = [p.kind for p in store.verify().problems]
    assert kinds == ["trigger missing"]


def test_an_old_log_migrates_with_everything_unconfirmed(db_path: Path) -> None:
    make_v1_database(db_path, [("a1", "alice", "check-in", "2025-12-01T08:00:00Z", 0.31, "camera:0")])
    with AttendanceStore(db_path) as store:
        assert store.schema_version == 4
        assert [e.id for e in store.unconfirmed(5)] == ["a1"] and store.backlog() == 1
        assert store.verify().ok
