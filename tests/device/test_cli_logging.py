"""Logging at the CLI entry: `log.info` lines of the stores reach stderr, or the journal under systemd."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from logs.store import AttendanceEvent, AttendanceStore
from tests.conftest import REPO_ROOT

# A stand-in for python3-systemd's module (the system edge: the real one is an
# apt package on the device): it records what JournalHandler is given.
FAKE_JOURNAL = """
import json, logging, os

class JournalHandler(logging.Handler):
    def __init__(self, **fields):
        super().__init__()
        self.fields = fields

    def emit(self, record):
        with open(os.environ["FAKE_JOURNAL_FILE"], "a") as fh:
            fh.write(json.dumps({"message": record.getMessage(), "level": record.levelname, **self.fields}) + "\\n")
"""


def seeded_db(tmp_path: Path) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    db = tmp_path / "attendance.db"
    with AttendanceStore(db) as store:
        store.record(AttendanceEvent("Ann Lee", "check-in", datetime(2020, 1, 2, 9, tzinfo=UTC), 0, 0.3, "test", "t1"))
    return db


def purge(tmp_path: Path, db: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k not in ("INVOCATION_ID", "JOURNAL_STREAM", "CLOCKFACE_DEBUG")}
    environ["PYTHONPATH"] = os.pathsep.join([*env.pop("EXTRA_PATH", "").split(os.pathsep), str(REPO_ROOT)]).strip(
        os.pathsep
    )
    config = tmp_path / "clockface.toml"
    config.write_text(f'[paths]\ndata_dir = "{tmp_path}"\n')
    environ["CLOCKFACE_CONFIG"] = str(config)
    args = [sys.executable, "-m", "device.cli", "logs", "purge", "--db", str(db), "--before", "2021-01-01", "--yes"]
    return subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, env={**environ, **env}, timeout=60)


def test_info_lines_go_to_stderr_at_a_shell(tmp_path):
    done = purge(tmp_path, seeded_db(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "clockface: purged 1 attendance rows" in done.stderr
    assert "Removed 1 events" in done.stdout


def test_under_systemd_without_python3_systemd_they_still_reach_stderr(tmp_path):
    done = purge(tmp_path, seeded_db(tmp_path), INVOCATION_ID="0123456789abcdef")
    assert done.returncode == 0, done.stderr
    assert "clockface: purged 1 attendance rows" in done.stderr


def test_under_systemd_they_go_to_the_journal_handler(tmp_path):
    (tmp_path / "site" / "systemd").mkdir(parents=True)
    (tmp_path / "site" / "systemd" / "__init__.py").write_text("")
    (tmp_path / "site" / "systemd" / "journal.py").write_text(FAKE_JOURNAL)
    journal = tmp_path / "journal.jsonl"
    common = {"EXTRA_PATH": str(tmp_path / "site"), "FAKE_JOURNAL_FILE": str(journal)}
    done = purge(tmp_path, seeded_db(tmp_path), JOURNAL_STREAM="8:12345", **common)
    assert done.returncode == 0, done.stderr
    assert "purged" not in done.stderr
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    purged = [r for r in records if r["message"].startswith("purged 1 attendance rows")]
    assert purged and purged[0]["level"] == "INFO" and purged[0]["SYSLOG_IDENTIFIER"] == "clockface"
    # At a shell the same module is not used, even when it is installed.
    journal.unlink()
    again = purge(tmp_path, seeded_db(tmp_path / "again"), **common)
    assert "clockface: purged 1 attendance rows" in again.stderr and not journal.exists()
