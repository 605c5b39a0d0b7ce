"""`clockface web` as a real server process, driven over HTTP with httpx on 127.0.0.1.

What only a running server shows: a password changed with `set-password`
while it runs, sessions of the old password, login throttling, cookie flags,
what reaches the server's log, and the CSV bytes a spreadsheet would open.
"""

from __future__ import annotations

import csv
import io
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from logs_helpers import LONDON, event, local

from logs.store import AttendanceStore

httpx = pytest.importorskip("httpx", reason="httpx is not installed (pip install httpx)")
pytest.importorskip("datasette", reason="datasette is not installed")
pytestmark = pytest.mark.slow  # each server process takes a few seconds to start

REPO = Path(__file__).resolve().parents[2]
OLD_PASSWORD = "correct horse battery"
NEW_PASSWORD = "tr0ub4dor and three"
FORMULA = "=cmd|'/c calc'!A1"
COMMAND = [sys.executable, "-m", "device.cli"]


@dataclass
class Server:
    base: str
    db: Path
    log: Path

    def set_password(self, password: str) -> str:
        return clockface("web", "--db", str(self.db), "set-password", "--password", password)

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def clockface(*args: str) -> str:
    result = subprocess.run(
        [*COMMAND, *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(tmp_path: Path) -> Iterator[Server]:
    db = tmp_path / "attendance.db"
    today = datetime.now(UTC).astimezone(LONDON).date().isoformat()
    with AttendanceStore(db) as store:
        store.record(event("Alice Smith", "check-in", local(f"{today} 08:52")))
        store.record(event(FORMULA, "check-in", local(f"{today} 09:14")))
        store.record(event("@SUM(A1)", "check-out", local(f"{today} 17:00")))
    log = tmp_path / "web.log"
    started = Server("", db, log)
    started.set_password(OLD_PASSWORD)
    port = free_port()
    with log.open("w") as err:
        proc = subprocess.Popen(
            [
                *COMMAND,
                "web",
                "--db",
                str(db),
                "--timezone",
                "Europe/London",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=err,
            stderr=subprocess.STDOUT,  # what the journal gets: rich prints tracebacks on stdout
        )
    started.base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(started.base + "/-/login", timeout=2)
            break
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"clockface web did not start: {started.output()}")
            time.sleep(0.2)
    try:
        yield started
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """A server of its own, for tests that change its state (password, throttle)."""
    yield from start_server(tmp_path)


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the tests that only read."""
    yield from start_server(tmp_path_factory.mktemp("web"))


def login(base: str, password: str) -> httpx.Response:
    return httpx.post(base + "/-/login", data={"username": "admin", "password": password}, timeout=30)


def session(response: httpx.Response) -> httpx.Cookies:
    assert response.status_code == 302, response.text[:300]
    cookies = httpx.Cookies()
    cookies.set("ds_actor", response.cookies["ds_actor"], domain="127.0.0.1")
    return cookies


def get(server: Server, path: str, cookies: httpx.Cookies | None = None, **kw) -> httpx.Response:
    return httpx.get(server.base + path, cookies=cookies, timeout=30, **kw)


def test_set_password_takes_effect_on_a_running_server(server: Server) -> None:
    old_session = session(login(server.base, OLD_PASSWORD))
    assert get(server, "/attendance/events.json", old_session).status_code == 200

    output = server.set_password(NEW_PASSWORD)
    assert "uses it at once" in output

    stale = get(server, "/attendance/events.json", old_session)
    assert stale.status_code == 401  # the old session is logged out...
    assert 'ds_actor=""' in stale.headers["set-cookie"] and "Max-Age=0" in stale.headers["set-cookie"]
    page = get(server, "/attendance", old_session, headers={"accept": "text/html"})
    assert page.status_code == 302 and page.headers["location"] == "/-/login"

    refused = login(server.base, OLD_PASSWORD)  # ...the old password refused...
    assert refused.status_code == 200 and "Invalid username or password" in refused.text
    assert "ds_actor" not in refused.cookies
    assert get(server, "/attendance/events.json", auth=("admin", OLD_PASSWORD)).status_code == 401

    new_session = session(login(server.base, NEW_PASSWORD))  # ...and the new one works without a restart.
    assert get(server, "/attendance/events.json", new_session).status_code == 200
    assert get(server, "/attendance/events.json", auth=("admin", NEW_PASSWORD)).status_code == 200


def test_session_cookie_is_httponly_with_a_lifetime(shared_server: Server) -> None:
    response = login(shared_server.base, OLD_PASSWORD)
    assert response.status_code == 302
    [set_cookie] = response.headers.get_list("set-cookie")
    attributes = {part.strip().split("=")[0].lower() for part in set_cookie.split(";")[1:]}
    assert {"httponly", "max-age", "path", "samesite"} <= attributes
    assert "Max-Age=43200" in set_cookie


def test_repeated_wrong_logins_get_429(server: Server) -> None:
    for attempt in range(5):
        response = login(server.base, f"wrong guess {attempt}")
        assert response.status_code == 200 and "Invalid username or password" in response.text
    blocked = login(server.base, "wrong guess 5")
    assert blocked.status_code == 429
    assert 1 <= int(blocked.headers["retry-after"]) <= 300
    assert login(server.base, OLD_PASSWORD).status_code == 429  # even the right password must wait
    guessing = get(server, "/attendance/events.json", auth=("admin", "another guess"))
    assert guessing.status_code == 429


def test_logged_in_404_leaves_no_traceback_in_the_log(shared_server: Server) -> None:
    cookies = session(login(shared_server.base, OLD_PASSWORD))
    for path in ("/attendance/no_such_table", "/no-such-database", "/attendance/events/999999"):
        response = get(shared_server, path, cookies, headers={"accept": "text/html"})
        assert response.status_code == 404, path
    time.sleep(0.5)  # let the server flush its stderr
    assert "Traceback" not in shared_server.output()


def test_csv_downloads_quote_formula_cells(shared_server: Server) -> None:
    auth = ("admin", OLD_PASSWORD)
    today = datetime.now(UTC).astimezone(LONDON).date().isoformat()
    for path in (
        "/attendance/events.csv?_dl=1",
        "/attendance/events.csv?_stream=1&_sort=timestamp_utc",
        f"/attendance/report.csv?from_date={today}&to_date={today}&person=",
        "/attendance.csv?sql=select+person,+-60+as+shift,+-0.5+as+half+from+events",
    ):
        response = get(shared_server, path, auth=auth)
        assert response.status_code == 200, path
        rows = list(csv.DictReader(io.StringIO(response.text)))
        assert {r["person"] for r in rows} == {"Alice Smith", "'" + FORMULA, "'@SUM(A1)"}, path
        for row in rows:  # numbers stay numbers, negative ones included
            assert not any(v.startswith("'") for k, v in row.items() if k != "person"), row
    shifted = list(csv.DictReader(io.StringIO(get(shared_server, path, auth=auth).text)))
    assert {(r["shift"], r["half"]) for r in shifted} == {("-60", "-0.5")}
