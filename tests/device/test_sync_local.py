"""The sync agent's local parts, without a server: back-off maths, the status file, [central], the offline CLI."""

from __future__ import annotations

import json
import random
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from device.cli.main import main
from device.config import ConfigError, parse_config
from device.sync.backoff import Backoff, ceiling, full_jitter
from device.sync.settings import CentralSettings
from device.sync.status import SyncStatus, read_status, status_path, write_status
from logs.store import AttendanceEvent, AttendanceStore

ENV = {"HOME": "/home/someone"}
NOW = datetime(2026, 12, 1, 8, 30, tzinfo=UTC)


# --- back-off -------------------------------------------------------------------------------------
def test_ceiling_doubles_from_the_base_and_stops_at_the_cap() -> None:
    assert [ceiling(n, 1.0, 300.0) for n in range(10)] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]
    assert ceiling(10_000, 1.0, 300.0) == 300.0  # no float overflow after a long outage
    with pytest.raises(ValueError):
        ceiling(-1, 1.0, 300.0)


def test_full_jitter_spreads_over_the_whole_range_and_is_reproducible_when_seeded() -> None:
    assert full_jitter(3, 1.0, 300.0, 0.0) == 0.0 and full_jitter(3, 1.0, 300.0, 0.5) == 4.0
    backoff = Backoff(base_s=1.0, cap_s=60.0)
    draws = [backoff.delay(20, random.Random(seed)) for seed in range(200)]
    assert all(0 <= d <= 60.0 for d in draws)
    assert min(draws) < 6 and max(draws) > 54, "full jitter: fifty terminals must not retry in step"
    assert backoff.delay(4, random.Random(1)) == backoff.delay(4, random.Random(1))
    with pytest.raises(ValueError):
        Backoff(base_s=10, cap_s=1)


# --- the status file --------------------------------------------------------------------------------
def test_status_round_trips_and_is_replaced_whole(tmp_path: Path) -> None:
    path = status_path(tmp_path)
    assert read_status(path) is None
    status = SyncStatus(NOW, backlog=12, last_error="central server x: unreachable", central_gallery_version=3)
    write_status(path, status)
    assert read_status(path) == status
    assert [p.name for p in tmp_path.iterdir()] == ["sync-status.json"], "no temp file left behind"
    assert status.line() == "backlog 12; error: central server x: unreachable; no push yet; gallery v3"
    done = SyncStatus(NOW, backlog=0, last_success_utc=NOW, pushed=40)
    write_status(path, done)
    assert read_status(path) == done and done.line() == "backlog 0; last push 2026-12-01T08:30:00Z"
    path.write_text("{half a file")
    assert read_status(path) is None


# --- [central] ----------------------------------------------------------------------------------------
def test_central_is_off_by_default_and_needs_a_user_when_on() -> None:
    assert parse_config({}, ENV).central == CentralSettings() and not CentralSettings().enabled
    on = parse_config({"central": {"host": "db.example.org", "user": "clockface_t_gate"}}, ENV).central
    assert on.enabled and on.sslmode == "verify-full" and on.batch_size == 500
    with pytest.raises(ConfigError, match=r"central.user = '' is needed when central.host is set"):
        parse_config({"central": {"host": "db.example.org"}}, ENV)
    with pytest.raises(ConfigError, match=r"central.batch_size = 0 is out of range \(1 <= x <= 10000\)"):
        parse_config({"central": {"batch_size": 0}}, ENV)
    with pytest.raises(ConfigError, match=r"central.sslmode = 'on' is not one of"):
        parse_config({"central": {"sslmode": "on"}}, ENV)
    with pytest.raises(ConfigError, match=r"central.password = 'x' is not a known key"):
        parse_config({"central": {"password": "x"}}, ENV)


def test_the_systemd_credential_wins_over_the_passfile(tmp_path: Path) -> None:
    settings = CentralSettings(host="h", user="u", passfile=tmp_path / "central.pgpass")
    assert settings.credentials_file({"CREDENTIALS_DIRECTORY": str(tmp_path / "creds")}) == tmp_path / "central.pgpass"
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds" / "central.pgpass").write_text("h:5432:clockface:u:secret\n")
    assert settings.credentials_file({"CREDENTIALS_DIRECTORY": str(tmp_path / "creds")}) == (
        tmp_path / "creds" / "central.pgpass"
    )


# --- the CLI without a network ------------------------------------------------------------------
def _config(tmp_path: Path, central: str = "") -> Path:
    path = tmp_path / "clockface.toml"
    path.write_text(f'[paths]\ndata_dir = "{tmp_path}"\n{central}')
    return path


def test_check_configured_and_status_never_touch_the_network(tmp_path: Path) -> None:
    runner = CliRunner()
    off = _config(tmp_path)
    assert runner.invoke(main, ["--config", str(off), "sync", "--check-configured"]).exit_code == 1
    refused = runner.invoke(main, ["--config", str(off), "sync", "--once"])
    assert refused.exit_code == 1 and "[central] host is not set" in refused.output
    with AttendanceStore(tmp_path / "attendance.db") as store:
        for person in ("ann", "bob", "cy"):
            store.record(AttendanceEvent(person, "check-in", NOW, 60, 0.3, "camera:0", "gate"))
    # A host nobody could reach: --status must not try.
    on = _config(tmp_path, '[central]\nhost = "192.0.2.1"\nuser = "clockface_t_gate"\n')
    assert runner.invoke(main, ["--config", str(on), "sync", "--check-configured"]).exit_code == 0
    shown = runner.invoke(main, ["--config", str(on), "sync", "--status", "--json"])
    assert shown.exit_code == 0, shown.output
    doc = json.loads(shown.output)
    assert doc["configured"] and doc["backlog"] == 3 and doc["agent"] is None
    write_status(status_path(tmp_path), SyncStatus(NOW, backlog=3, last_error="central server x: unreachable"))
    text = runner.invoke(main, ["--config", str(on), "sync", "--status"]).output
    assert "backlog:  3" in text and "error: central server x: unreachable" in text


def test_the_agent_stops_between_waits_on_monotonic_time(tmp_path: Path) -> None:
    """The wait is measured on the monotonic clock handed in, not the wall clock, and stop() cuts it short."""
    from device.sync.agent import SyncAgent

    ticks = iter([100.0, 130.0])  # the monotonic clock moved on 30 s: the 5 s wait is over
    with AttendanceStore(tmp_path / "attendance.db") as store:
        agent = SyncAgent(store, None, tmp_path / "s.json", monotonic=lambda: next(ticks))  # type: ignore[arg-type]
        started = time.monotonic()
        agent._wait(5.0)
        assert time.monotonic() - started < 1.0
        stopper = threading.Timer(0.1, agent.stop)
        stopper.start()
        agent.monotonic = lambda: 0.0  # a clock that never advances: only stop() ends this wait
        agent._wait(3600)
        assert agent.stopping
