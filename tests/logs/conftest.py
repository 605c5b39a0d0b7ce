"""Fixtures for the attendance-log tests: real SQLite files in tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from logs.store import AttendanceStore


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "attendance.db"


@pytest.fixture
def store(db_path: Path):
    with AttendanceStore(db_path) as s:
        yield s
