"""From decisions to attendance rows, on a real SQLite store with a controlled clock."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from device.terminal.recorder import Recorder, event_type_for
from logs.store import AttendanceStore, StoreError

LONDON = ZoneInfo("Europe/London")


class Clock:
    def __init__(self, start):
        self.now = start

    def __call__(self):
        return self.now


@pytest.fixture
def store(tmp_path):
    with AttendanceStore(tmp_path / "attendance.db") as s:
        yield s


def recorder(store, clock, **kw):
    return Recorder(store, LONDON, "door-1", "camera:0", timedelta(minutes=30), clock=clock, **kw)


def test_first_sighting_checks_in_then_cooldown_then_seen(store):
    clock = Clock(datetime(2026, 12, 1, 8, 55, tzinfo=UTC))
    rec = recorder(store, clock)
    first = rec.record("Ann Lee", 0.41)
    assert first.reason == "logged" and first.event.event_type == "check-in"
    clock.now += timedelta(minutes=10)
    assert rec.record("Ann Lee", 0.4).reason == "cooldown"
    clock.now += timedelta(minutes=30)
    assert rec.record("Ann Lee", 0.4).event.event_type == "seen"
    rows = store.events_between(datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 2, tzinfo=UTC))
    assert [e.event_type for e in rows] == ["check-in", "seen"]
    assert rows[0].terminal_id == "door-1" and rows[0].source == "camera:0" and rows[0].distance == 0.41


def test_local_offset_is_stored_with_utc_time(store):
    summer = Clock(datetime(2027, 7, 1, 8, 0, tzinfo=UTC))
    event = recorder(store, summer).record("Ann Lee", 0.3).event
    assert event.utc_offset_minutes == 60 and event.timestamp_utc.tzinfo is not None


def test_a_new_local_day_checks_in_again(store):
    clock = Clock(datetime(2026, 12, 1, 23, 50, tzinfo=UTC))
    rec = recorder(store, clock)
    rec.record("Ann Lee", 0.3)
    clock.now += timedelta(minutes=40)  # 00:30 next day in London (UTC+0 in December)
    assert rec.record("Ann Lee", 0.3).event.event_type == "check-in"


@pytest.mark.parametrize(
    "mode, first, later",
    [("none", "check-in", "seen"), ("last-sighting", "check-in", "check-out"), ("exit", "check-out", "check-out")],
)
def test_checkout_modes(mode, first, later):
    assert event_type_for(True, mode) == first and event_type_for(False, mode) == later


def test_unsynchronised_clock_refuses_to_log_then_recovers(store):
    clock = Clock(datetime(1970, 1, 1, 0, 1, tzinfo=UTC))  # a Pi 4 before NTP
    rec = recorder(store, clock)
    refused = rec.record("Ann Lee", 0.3)
    assert refused.event is None and "clock not synchronised" in refused.reason
    clock.now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    assert rec.record("Ann Lee", 0.3).reason == "logged"
    assert len(store.events_between(datetime(1960, 1, 1, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC))) == 1


def test_events_wait_in_memory_while_the_database_fails(store, monkeypatch):
    clock = Clock(datetime(2026, 12, 1, 9, 0, tzinfo=UTC))
    rec = recorder(store, clock)
    real_record = store.record

    def failing(event):
        raise StoreError("attendance.db: database or disk is full")

    monkeypatch.setattr(store, "record", failing)
    result = rec.record("Ann Lee", 0.3)
    assert result.reason.startswith("pending: ") and "disk is full" in result.reason
    clock.now += timedelta(minutes=1)
    assert rec.record("Ann Lee", 0.3).reason == "cooldown"  # known in memory: not queued twice
    assert rec.record("Bob Roe", 0.3).reason.startswith("pending")
    monkeypatch.setattr(store, "record", real_record)
    written = rec.flush()
    assert [e.person for e in written] == ["Ann Lee", "Bob Roe"] and rec.pending == []
    assert store.last_event("Ann Lee").id == result.event.id


def test_unknown_faces_are_recorded_only_as_time_and_place(store, tmp_path):
    import sqlite3

    clock = Clock(datetime(2026, 12, 1, 9, 0, tzinfo=UTC))
    event = recorder(store, clock).record_unknown(0.71)
    assert event is not None and event.nearest_distance == 0.71
    columns = {
        row[1]: row[2]
        for row in sqlite3.connect(tmp_path / "attendance.db").execute("PRAGMA table_info(unknown_events)")
    }
    assert "BLOB" not in columns.values() and not any("image" in c or "embedding" in c for c in columns)
    assert set(columns) >= {"timestamp_utc", "utc_offset_minutes", "nearest_distance", "source", "terminal_id"}


def test_unknown_faces_are_not_logged_unless_configured():
    from device.config import parse_config

    assert parse_config({}, {}).recognition.log_unknown is False
    assert parse_config({"recognition": {"log_unknown": True}}, {}).recognition.log_unknown is True


def test_door_event_for_each_outcome():
    """One decision, one thing said at the door: check-in, check-out, repeat, unknown, not logged."""
    from datetime import UTC, datetime, timedelta

    from device.terminal.door import DoorKind
    from device.terminal.recorder import RecordResult
    from device.terminal.service import door_event
    from logs.store import AttendanceEvent

    now = datetime(2026, 12, 1, 8, 59, tzinfo=UTC)

    def event(kind: str, at: datetime) -> AttendanceEvent:
        return AttendanceEvent(
            person="Anna Smith",
            event_type=kind,
            timestamp_utc=at,
            utc_offset_minutes=0,
            distance=0.3,
            source="test",
            terminal_id="t1",
        )

    assert door_event(None, None, now).kind is DoorKind.UNKNOWN
    checked_in = door_event("Anna Smith", RecordResult(event("check-in", now), "logged"), now)
    assert (checked_in.kind, checked_in.person, checked_in.at) == (DoorKind.CHECKED_IN, "Anna Smith", now)
    assert door_event("Anna Smith", RecordResult(event("check-out", now), "logged"), now).kind is DoorKind.CHECKED_OUT
    pending = door_event("Anna Smith", RecordResult(event("check-in", now), "pending: disk full"), now)
    assert pending.kind is DoorKind.CHECKED_IN  # kept in memory and retried: the person was logged
    earlier = now - timedelta(minutes=3)
    repeat = door_event("Anna Smith", RecordResult(None, "cooldown", previous=event("check-in", earlier)), now)
    assert (repeat.kind, repeat.previous_at) == (DoorKind.REPEAT, earlier)
    clock = door_event("Anna Smith", RecordResult(None, "clock not synchronised (...)"), now)
    assert clock.kind is DoorKind.NOT_LOGGED and clock.reason.startswith("clock")
