"""Helpers for the attendance-log tests (a uniquely named module: several conftest.py files exist)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from logs.store import MIGRATIONS, AttendanceEvent

LONDON = ZoneInfo("Europe/London")


def utc(text: str) -> datetime:
    """'2026-03-29 07:00' -> aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def local(text: str, zone: ZoneInfo = LONDON) -> datetime:
    """'2026-03-29 07:00' as wall time in *zone* -> aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=zone).astimezone(UTC)


def event(person: str, event_type: str, when: datetime, terminal: str = "pi-test") -> AttendanceEvent:
    offset = int(when.astimezone(LONDON).utcoffset().total_seconds() // 60)
    return AttendanceEvent(person, event_type, when, offset, 0.3, "camera:0", terminal)


def make_v1_database(path: Path, rows: list[tuple[str, str, str, str, float, str]]) -> None:
    """The previous schema exactly as v1 shipped it, with rows, written with plain sqlite3."""
    conn = sqlite3.connect(path)
    conn.executescript(MIGRATIONS[1])
    conn.executemany(
        "insert into events (id, person, event_type, timestamp_utc, distance, source) values (?, ?, ?, ?, ?, ?)", rows
    )
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
