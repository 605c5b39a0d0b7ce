"""[logs]/[web] settings validation and the retention policy."""

from __future__ import annotations

import tomllib
from datetime import UTC, date, time
from pathlib import Path

import pytest
from logs_helpers import LONDON, event, local, utc

from device.config import ConfigError, parse_config
from logs.retention import apply_retention, purge_before, retention_cutoff
from logs.settings import LogsSettings, SettingsError, WebSettings
from logs.store import AttendanceStore

EXAMPLE = """
[logs]
timezone = "Europe/London"
expected_start = 08:30:00
retention_days = 90
terminal_id = "front-door"

[web]
port = 8080
allow_lan = true
host = "0.0.0.0"
"""


def logs_of(doc: dict) -> LogsSettings:
    """[logs] and [web] through the one config loader (logs/ itself parses nothing)."""
    return parse_config(doc, {"HOME": "/home/someone"}).logs


def test_from_toml_document() -> None:
    settings = logs_of(tomllib.loads(EXAMPLE))
    assert settings == LogsSettings(
        timezone="Europe/London",
        expected_start=time(8, 30),
        retention_days=90,
        terminal_id="front-door",
        web=WebSettings(host="0.0.0.0", port=8080, allow_lan=True),
    )


def test_defaults_and_time_spellings() -> None:
    assert logs_of({}) == LogsSettings()
    assert LogsSettings().web == WebSettings("127.0.0.1", 8001, None, False)
    assert logs_of({"logs": {"expected_start": "09:00"}}).expected_start == time(9)
    assert logs_of({"logs": {"expected_start": "", "retention_days": ""}}) == LogsSettings()


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"logs": {"timezone": "Europe/Londn"}}, "logs.timezone = 'Europe/Londn' is not an IANA time zone"),
        ({"logs": {"retention_day": 30}}, "logs.retention_day = 30 is not a known key"),
        ({"logs": {"web": {"port": 1}}}, "logs.web = {'port': 1} is not a known key"),
        ({"logs": {"retention_days": 0}}, "logs.retention_days = 0 is out of range (1 <= x <= 36500)"),
        ({"logs": {"retention_days": "30"}}, "logs.retention_days = '30' is not an integer"),
        (
            {"logs": {"expected_start": "half past eight"}},
            "logs.expected_start = 'half past eight' is not a time like 08:30",
        ),
        ({"logs": {"terminal_id": "front door"}}, "logs.terminal_id = 'front door' is not valid (1-64 letters"),
        ({"web": {"host": "0.0.0.0"}}, "set web.allow_lan = true"),
        ({"web": {"port": 70000}}, "web.port = 70000 is out of range (1 <= x <= 65535)"),
        ({"web": {"allow_lan": 1}}, "web.allow_lan = 1 is not true or false"),
        ({"web": {"password_hash": "plaintext"}}, "web.password_hash = 'plaintext' is not valid (output of"),
    ],
)
def test_one_line_errors(doc: dict, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        logs_of(doc)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_direct_construction_keeps_the_checks_a_type_cannot_express() -> None:
    with pytest.raises(SettingsError, match=r"logs\.timezone = 'Mars' is not an IANA time zone"):
        LogsSettings(timezone="Mars")
    with pytest.raises(SettingsError, match=r"web\.host = '10.0.0.5' would serve"):
        WebSettings(host="10.0.0.5")


def test_retention_cutoff_is_local_midnight(db_path: Path) -> None:
    assert retention_cutoff(date(2026, 4, 10), 10) == date(2026, 4, 1)
    with AttendanceStore(db_path) as store:
        store.record(event("old", "check-in", local("2026-03-31 23:59")))  # BST: 22:59 UTC
        store.record(event("kept", "check-in", local("2026-04-01 00:10")))  # BST: 23:10 UTC on 31 March
        result = purge_before(store, date(2026, 4, 1), LONDON)
        assert result.cutoff_utc == utc("2026-03-31 23:00") and result.removed == 1
        assert store.last_event("kept") is not None and store.last_event("old") is None


def test_apply_retention(db_path: Path) -> None:
    with AttendanceStore(db_path) as store:
        store.record(event("a", "check-in", local("2026-01-01 09:00")))
        store.record(event("b", "check-in", local("2026-04-05 09:00")))
        forever = LogsSettings(timezone="Europe/London")
        assert apply_retention(store, forever, now=utc("2026-04-10 12:00")) is None
        keep_30 = LogsSettings(timezone="Europe/London", retention_days=30)
        result = apply_retention(store, keep_30, now=utc("2026-04-10 12:00"))
        assert result is not None and result.removed == 1 and result.before_day == date(2026, 3, 12)
        [entry] = store.audit_entries()
        assert entry["action"] == "purge" and '"reason": "retention"' in entry["detail"]


def test_retain_command_applies_configured_retention(tmp_path):
    """`clockface logs retain` (the daily timer's command) keeps exactly retention_days local days."""
    from datetime import datetime, timedelta

    from click.testing import CliRunner

    from device.cli.main import main
    from logs.store import AttendanceEvent, AttendanceStore

    db = tmp_path / "attendance.db"
    now = datetime.now(UTC)
    with AttendanceStore(db) as store:
        for days_ago in (0, 1, 5, 40):
            store.record(
                AttendanceEvent("Ann Lee", "check-in", now - timedelta(days=days_ago), 0, 0.3, "camera:0", "t")
            )
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[paths]\ndata_dir = "{tmp_path}"\n[logs]\nretention_days = 7\n')
    result = CliRunner().invoke(main, ["--config", str(cfg), "logs", "retain", "--json"])
    assert result.exit_code == 0, result.output
    assert '"removed": 1' in result.output
    with AttendanceStore(db, readonly=True) as store:
        assert len(store.events_between(now - timedelta(days=100), now + timedelta(days=1))) == 3
    unset = tmp_path / "u.toml"
    unset.write_text(f'[paths]\ndata_dir = "{tmp_path}"\n')
    assert "kept forever" in CliRunner().invoke(main, ["--config", str(unset), "logs", "retain"]).output
