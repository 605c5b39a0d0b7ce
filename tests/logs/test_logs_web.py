"""The Datasette view in-process: login required everywhere, canned queries in local time."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

import pytest
from logs_helpers import LONDON, event, local

from logs.datasette_plugin import make_functions
from logs.settings import LogsSettings
from logs.store import AttendanceStore
from logs.web import build_datasette, hash_password, write_password_file
from logs.web_auth import PasswordSource

PASSWORD = "correct horse battery"


def seed_today(db_path: Path, zone=LONDON) -> str:
    """Events on the current local day, so the 'today' canned query has something to show."""
    today = datetime.now(UTC).astimezone(zone).date().isoformat()
    with AttendanceStore(db_path) as store:
        store.record(event("Alice Smith", "check-in", local(f"{today} 08:52")))
        store.record(event("Alice Smith", "check-out", local(f"{today} 17:05")))
        store.record(event("Bob Jones", "check-in", local(f"{today} 09:14")))
    return today


@pytest.fixture(scope="module")
def password_hash() -> str:
    return hash_password(PASSWORD)


@pytest.fixture
def ds(db_path: Path, password_hash: str) -> Any:
    seed_today(db_path)
    settings = LogsSettings(timezone="Europe/London", expected_start=time(9))
    write_password_file(db_path.parent / "web-password", password_hash)
    return build_datasette(db_path, settings, PasswordSource(path=db_path.parent / "web-password"))


def get(ds: Any, path: str, auth: bool = False, accept: str = "application/json") -> Any:
    headers = {"accept": accept}
    if auth:
        headers["authorization"] = "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
    return asyncio.run(ds.client.get(path, headers=headers))


@pytest.mark.parametrize(
    "path",
    [
        "/attendance/today.json",
        "/attendance/events.csv",
        "/-/versions.json",
        "/-/plugins.json",
        "/-/databases.json",
        "/attendance.db",
    ],
)
def test_anonymous_requests_are_refused(ds: Any, path: str) -> None:
    assert get(ds, path).status_code == 401


def test_anonymous_page_redirects_to_login(ds: Any) -> None:
    response = get(ds, "/attendance", accept="text/html")
    assert response.status_code == 302 and response.headers["location"] == "/-/login"
    assert get(ds, "/-/login", accept="text/html").status_code == 200


def test_today_canned_query(ds: Any) -> None:
    response = get(ds, "/attendance/today.json?_shape=array", auth=True)
    assert response.status_code == 200
    rows = {r["person"]: r for r in response.json()}
    assert (rows["Alice Smith"]["first_in"], rows["Alice Smith"]["last_out"], rows["Alice Smith"]["hours"]) == (
        "08:52",
        "17:05",
        8.22,
    )
    assert rows["Bob Jones"]["late_minutes"] == 14


def test_report_csv_and_history(ds: Any) -> None:
    today = datetime.now(UTC).astimezone(LONDON).date().isoformat()
    csv_text = get(ds, f"/attendance/report.csv?from_date={today}&to_date={today}&person=", auth=True).text
    assert csv_text.splitlines()[0] == "date,person,first_in,last_out,hours,late_minutes,events"
    assert f"{today},Alice Smith,08:52,17:05,8.22,,2" in csv_text
    history = get(ds, "/attendance/history.json?person=Bob+Jones&_shape=array", auth=True).json()
    assert [h["event_type"] for h in history] == ["check-in"]


def test_only_the_attendance_database(ds: Any) -> None:
    names = [d["name"] for d in get(ds, "/-/databases.json", auth=True).json()]
    assert names == ["attendance"]


def test_metadata_never_shows_the_password_hash(ds: Any, password_hash: str) -> None:
    """Datasette's secret configuration: the metadata names the file, the plugin reads the hash from it."""
    salt_and_digest = password_hash.split("$", 2)[2]
    for path in ("/-/metadata.json", "/-/metadata"):
        response = get(ds, path, auth=True, accept="text/html")
        assert response.status_code == 200 and "clockface attendance" in response.text
        assert salt_and_digest not in response.text
    assert salt_and_digest not in str(ds.metadata())
    assert ds.plugin_config("datasette-auth-passwords")["admin_password_hash"].strip() == password_hash


def test_hash_from_the_config_goes_through_the_environment(db_path: Path, password_hash: str, monkeypatch) -> None:
    monkeypatch.delenv("CLOCKFACE_TEST_HASH", raising=False)
    seed_today(db_path)
    ds = build_datasette(
        db_path, LogsSettings(), PasswordSource.from_hash(password_hash, env_var="CLOCKFACE_TEST_HASH")
    )
    monkeypatch.setenv("CLOCKFACE_TEST_HASH", password_hash)  # undone after the test
    assert password_hash.split("$", 2)[2] not in str(ds.metadata())
    assert get(ds, "/attendance/events.json?_shape=array", auth=True).status_code == 200
    assert get(ds, "/-/metadata.json", auth=True).status_code == 200


def test_view_is_read_only(ds: Any) -> None:
    response = get(ds, "/attendance.json?sql=delete+from+events&_shape=array", auth=True)
    assert response.status_code == 400
    assert get(ds, "/attendance/events.json?_shape=array", auth=True).json()


def test_sql_functions_handle_dst_and_blanks() -> None:
    fns = make_functions(LONDON, time(8, 0), now=lambda: datetime(2026, 10, 25, 12, tzinfo=UTC))
    assert fns["clockface_today"]() == "2026-10-25"
    assert fns["clockface_day_start"]("2026-10-25") == "2026-10-24T23:00:00.000000Z"
    assert fns["clockface_day_start"]("") is None
    assert fns["clockface_local"]("2026-10-24T23:30:00.000000Z") == "2026-10-25 00:30:00"
    assert fns["clockface_late_minutes"]("2026-03-29T07:10:00.000000Z") == 10  # 08:10 BST
    assert fns["clockface_late_minutes"]("2026-03-29T06:50:00.000000Z") is None
