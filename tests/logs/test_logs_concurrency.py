"""The recogniser (a writer process) and reports/web (reader processes) on one file at once.

Every loop is bounded, and each process reports its errors instead of
hanging; the assertion is that nobody ever saw "database is locked" and that
every committed event is there afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from logs.store import AttendanceStore

REPO = Path(__file__).resolve().parents[2]
EVENTS_PER_WRITER = 150

WRITER = """
import json, sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from logs.store import AttendanceEvent, AttendanceStore, StoreError
path, name, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
errors = []
start = datetime(2026, 3, 30, 8, 0, tzinfo=timezone.utc)
with AttendanceStore(path) as store:
    for i in range(count):
        try:
            store.record(AttendanceEvent(name, "seen", start + timedelta(seconds=i), 60, 0.3, "camera:0", "pi"))
        except StoreError as exc:
            errors.append(str(exc))
print(json.dumps({"errors": errors}))
"""

READER = """
import json, sqlite3, sys, time
from datetime import datetime, timezone
from pathlib import Path
from logs.store import AttendanceStore, StoreError
path, deadline = Path(sys.argv[1]), time.monotonic() + 60
errors, reads, seen = [], 0, 0
lo, hi = datetime(2026, 1, 1, tzinfo=timezone.utc), datetime(2027, 1, 1, tzinfo=timezone.utc)
while time.monotonic() < deadline and reads < 400:
    try:
        with AttendanceStore(path, readonly=True) as store:   # like `logs report`
            seen = max(seen, len(store.events_between(lo, hi)))
            store.last_event("writer-a")
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)  # like Datasette
        conn.execute("select person, count(*) from events group by person").fetchall()
        conn.close()
        reads += 1
    except (StoreError, sqlite3.Error) as exc:
        errors.append(str(exc))
    if seen >= int(sys.argv[2]):
        break
print(json.dumps({"errors": errors, "reads": reads}))
"""


def _spawn(script: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def test_writers_and_readers_never_see_locked(db_path: Path) -> None:
    AttendanceStore(db_path).close()  # created and migrated before the race starts
    total = 2 * EVENTS_PER_WRITER
    procs = [
        _spawn(WRITER, str(db_path), "writer-a", str(EVENTS_PER_WRITER)),
        _spawn(WRITER, str(db_path), "writer-b", str(EVENTS_PER_WRITER)),  # e.g. a second terminal or a purge
        *[_spawn(READER, str(db_path), str(total)) for _ in range(3)],
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    errors = [e for r in results for e in r["errors"]]
    assert not errors, errors[:3]
    assert all(r["reads"] > 0 for r in results[2:])
    with AttendanceStore(db_path, readonly=True) as store:
        assert store.db["events"].count == total


def test_fresh_database_opened_by_many_processes_at_once(db_path: Path) -> None:
    """Two services starting together must not both migrate (or fail)."""
    procs = [_spawn(WRITER, str(db_path), f"w{i}", "3") for i in range(4)]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert json.loads(out.strip().splitlines()[-1])["errors"] == []
    with AttendanceStore(db_path, readonly=True) as store:
        assert store.db["events"].count == 12
        assert store.audit_entries() == []  # created at v2 once, not "migrated"
