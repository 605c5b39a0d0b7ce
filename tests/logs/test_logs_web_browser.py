"""End to end: `clockface web` in a subprocess, driven by headless Chromium.

Uses Debian's ``chromium`` through Playwright's Python package (the
``chromium`` fixture in tests/conftest.py, shared with the kiosk page's test).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
from logs_helpers import LONDON, event, local

from logs.store import AttendanceStore
from tests.conftest import CHROMIUM_FLAGS

REPO = Path(__file__).resolve().parents[2]
DOCS_SCREENSHOT = REPO / "docs" / "web-view.png"
PASSWORD = "correct horse battery"

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def python_m_logs(*args: str, **kwargs) -> list[str]:
    return [sys.executable, "-m", "device.cli", *args]


@pytest.fixture
def server(tmp_path: Path):
    db = tmp_path / "attendance.db"
    today = datetime.now(UTC).astimezone(LONDON).date().isoformat()
    with AttendanceStore(db) as store:
        store.record(event("Alice Smith", "check-in", local(f"{today} 08:52")))
        store.record(event("Alice Smith", "check-out", local(f"{today} 17:05")))
        store.record(event("Bob Jones", "check-in", local(f"{today} 09:14")))
        store.record(event("Bob Jones", "check-out", local(f"{today} 16:41")))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run(
        python_m_logs("web", "--db", str(db), "set-password", "--password", PASSWORD),
        check=True,
        cwd=REPO,
        env=env,
        capture_output=True,
        timeout=60,
    )
    port = free_port()
    log_file = (tmp_path / "web.log").open("w")
    proc = subprocess.Popen(
        python_m_logs(
            "web", "--db", str(db), "--timezone", "Europe/London", "--host", "127.0.0.1", "--port", str(port)
        ),
        cwd=REPO,
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{base}/-/login", timeout=2).close()
            break
        except (urllib.error.URLError, ConnectionError):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"clockface web did not start: {(tmp_path / 'web.log').read_text()}")
            time.sleep(0.2)
    try:
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log_file.close()


def test_login_today_csv_and_refusal(chromium: str, server: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    # Unauthenticated HTTP is refused, JSON and introspection included.
    for path in ("/attendance/today.json", "/attendance/today.csv", "/-/versions.json"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(server + path, timeout=5)
        assert refused.value.code == 401, path

    profile = tmp_path / "chromium-profile"
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile),
            executable_path=chromium,
            headless=True,
            args=CHROMIUM_FLAGS,
            accept_downloads=True,
            viewport={"width": 1100, "height": 700},
        )
        try:
            page = context.new_page()
            page.goto(server + "/attendance/today")
            assert page.url.endswith("/-/login")  # redirected, not shown
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", PASSWORD)
            page.click("input[type=submit], button[type=submit]")
            page.wait_for_url(server + "/")

            page.goto(server + "/attendance/today")
            body = page.inner_text("body")
            assert "Alice Smith" in body and "Bob Jones" in body
            assert "08:52" in body and "17:05" in body

            shot = tmp_path / "web-view.png"
            page.screenshot(path=str(shot), full_page=True)
            DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
            shutil.copyfile(shot, DOCS_SCREENSHOT)

            href = page.locator("a[href*='.csv']").first.get_attribute("href")
            assert href
            csv_url = server + href + ("&" if "?" in href else "?") + "_dl=1"
            with page.expect_download() as download_info:
                page.evaluate(
                    "url => { const a = document.createElement('a'); a.href = url; a.download = 'today.csv';"
                    " document.body.appendChild(a); a.click(); }",
                    csv_url,
                )
            target = tmp_path / "today.csv"
            download_info.value.save_as(target)
            csv_text = target.read_text(encoding="utf-8")
            assert csv_text.startswith("person,first_in,last_out,hours,late_minutes,last_seen,events")
            assert "Alice Smith,08:52,17:05,8.22" in csv_text and "Bob Jones,09:14,16:41" in csv_text

            # The browser's session is what let it in: a fresh context is refused.
            anonymous = p.request.new_context()
            assert anonymous.get(server + "/attendance/today.json").status == 401
            anonymous.dispose()
        finally:
            context.close()
