"""The kiosk page's parts: the greeting wording (pure), the banners, its config
section, its Server-Sent Events over real HTTP on 127.0.0.1, and the status the
service loop publishes. The page in a real browser is in test_kiosk_browser.py."""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

import device.terminal.service as service
from device.config import ConfigError, parse_config
from device.terminal.door import DoorEvent, DoorKind, DoorSignals, TerminalStatus
from device.terminal.kiosk import UNKNOWN_TEXT, KioskServer, KioskSettings, banners, greeting
from device.terminal.preview import FrameFeed
from tests.device.test_service import FakeCamera, RecordingNotifier, enrolled_config, face_frame  # noqa: F401

LONDON = ZoneInfo("Europe/London")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_check_in_greets_by_time_of_day_in_the_terminal_zone():
    # 07:59 UTC is 08:59 in London in summer time.
    event = DoorEvent(DoorKind.CHECKED_IN, utc("2027-06-01T07:59:30"), "Anna Smith", event_type="check-in")
    words = greeting(event, LONDON)
    assert words.text == "Good morning, Anna Smith — checked in 08:59"
    assert words.tone == "welcome"
    later = DoorEvent(DoorKind.CHECKED_IN, utc("2027-06-01T13:10:00"), "Anna Smith", event_type="check-in")
    assert greeting(later, LONDON).text == "Good afternoon, Anna Smith — checked in 14:10"
    night = DoorEvent(DoorKind.CHECKED_IN, utc("2027-01-05T21:45:00"), "Anna Smith", event_type="check-in")
    assert greeting(night, LONDON).text == "Good evening, Anna Smith — checked in 21:45"


def test_check_out_says_goodbye():
    event = DoorEvent(DoorKind.CHECKED_OUT, utc("2027-01-05T17:31:00"), "Anna Smith", event_type="check-out")
    assert greeting(event, LONDON).text == "Goodbye, Anna Smith — checked out 17:31"


def test_repeat_within_the_cooldown_says_when_they_were_logged():
    event = DoorEvent(DoorKind.REPEAT, utc("2027-01-05T08:40:00"), "Anna Smith", previous_at=utc("2027-01-05T08:02:10"))
    words = greeting(event, LONDON)
    assert words.text == "Good morning, Anna Smith — already checked in at 08:02"
    assert words.tone == "repeat"


def test_unknown_face_is_asked_to_look_at_the_camera():
    words = greeting(DoorEvent(DoorKind.UNKNOWN, utc("2027-01-05T08:40:00")), LONDON)
    assert words.text == UNKNOWN_TEXT == "Not recognised — please look at the camera"
    assert words.tone == "unknown"


def test_not_logged_does_not_pretend_it_was():
    event = DoorEvent(DoorKind.NOT_LOGGED, utc("2027-01-05T08:40:00"), "Anna Smith", reason="clock not synchronised")
    words = greeting(event, LONDON)
    assert "not logged" in words.text and "checked in" not in words.text
    assert words.tone == "problem"


def test_banners_name_each_problem():
    assert banners(TerminalStatus()) == []
    text = banners(TerminalStatus(camera_lost=True, no_gallery=True, clock_unsynchronised=True, disk_full=True))
    assert [line.split(" —")[0] for line in text] == [
        "Camera lost",
        "Clock not synchronised",
        "Disk full",
        "No one enrolled yet",
    ]
    assert "nothing is logged" in text[1]


def test_kiosk_section_in_the_one_config():
    config = parse_config({"kiosk": {"enabled": True, "port": 9000, "greeting_seconds": 3}}, env={})
    assert config.kiosk == KioskSettings(enabled=True, port=9000, greeting_seconds=3)
    assert config.to_toml_dict()["kiosk"]["port"] == 9000
    assert parse_config({}, env={}).kiosk.enabled is False
    with pytest.raises(ConfigError, match=re.escape("kiosk.host = '0.0.0.0' is not a loopback address")):
        parse_config({"kiosk": {"enabled": True, "host": "0.0.0.0"}}, env={})
    with pytest.raises(ConfigError, match=r"kiosk.greeting_seconds = 0 is out of range \(1 <= x <= 60\)"):
        parse_config({"kiosk": {"greeting_seconds": 0}}, env={})


class EventReader:
    """A Server-Sent Events client over a real socket: one (event, data) at a time."""

    def __init__(self, host: str, port: int) -> None:
        self.conn = http.client.HTTPConnection(host, port, timeout=10)
        self.conn.request("GET", "/events")
        self.response = self.conn.getresponse()
        assert self.response.status == 200
        assert self.response.getheader("Content-Type", "").startswith("text/event-stream")

    def next_block(self) -> dict[str, str]:
        fields: dict[str, str] = {}
        while True:
            line = self.response.readline().decode().rstrip("\n")
            if not line:
                if fields:
                    return fields
                continue
            key, _, value = line.partition(": ")
            fields[key] = value

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def kiosk():
    server = KioskServer(KioskSettings(enabled=True, port=0, greeting_seconds=4), FrameFeed(5.0), LONDON)
    yield server
    server.close()


def test_events_stream_says_retry_then_status_then_each_greeting_at_once(kiosk):
    door = DoorSignals()
    door.subscribe(kiosk.show)
    door.subscribe_status(kiosk.status)
    door.set_status(TerminalStatus(no_gallery=True))
    reader = EventReader(*kiosk.address)
    try:
        assert reader.next_block() == {"retry": "1000"}  # so the page comes back after a restart
        status = reader.next_block()
        assert status["event"] == "status"
        assert json.loads(status["data"])["banners"] == ["No one enrolled yet — enrol people to start"]
        at = datetime.now(UTC)
        door.publish(DoorEvent(DoorKind.CHECKED_IN, at, "Anna Smith", event_type="check-in"))
        block = reader.next_block()
        arrived = time.time()
        assert block["event"] == "greeting"
        data = json.loads(block["data"])
        assert data["text"].endswith(f"Anna Smith — checked in {at.astimezone(LONDON):%H:%M}")
        assert data["kind"] == "check-in" and data["seconds"] == 4
        assert data["at"] == round(at.timestamp() * 1000)
        assert arrived - at.timestamp() < 0.5
        door.set_status(TerminalStatus(camera_lost=True))
        assert json.loads(reader.next_block()["data"])["banners"][0].startswith("Camera lost")
    finally:
        reader.close()


def test_a_page_that_connects_later_is_not_told_earlier_greetings(kiosk):
    kiosk.show(DoorEvent(DoorKind.CHECKED_IN, datetime.now(UTC), "Anna Smith", event_type="check-in"))
    reader = EventReader(*kiosk.address)
    try:
        assert reader.next_block() == {"retry": "1000"}
        assert reader.next_block()["event"] == "status"
        kiosk.show(DoorEvent(DoorKind.UNKNOWN, datetime.now(UTC)))
        assert json.loads(reader.next_block()["data"])["text"] == UNKNOWN_TEXT  # not Anna's
    finally:
        reader.close()


def test_page_is_served(kiosk):
    conn = http.client.HTTPConnection(*kiosk.address, timeout=5)
    conn.request("GET", "/")
    body = conn.getresponse().read().decode()
    assert 'new EventSource("/events")' in body and "/stream" in body
    conn.close()


def test_loop_publishes_camera_lost_and_back(enrolled_config, face_frame, monkeypatch):  # noqa: F811
    """The reconnect loop is where a lost camera is known: the banner follows it."""
    cams = [FakeCamera([face_frame] * 5), FakeCamera([face_frame] * 400)]
    opened = iter(cams)
    monkeypatch.setattr(service, "open_source", lambda *a, **k: next(opened))
    monkeypatch.setattr(service, "RECONNECT_BACKOFF", (0.2,))
    door = DoorSignals()
    seen: list[TerminalStatus] = []
    door.subscribe_status(seen.append)
    stop = threading.Event()
    runner = threading.Thread(
        target=lambda: service.run_terminal(
            enrolled_config, "camera:0", RecordingNotifier(), stop, threading.Event(), door=door
        )
    )
    runner.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(s.camera_lost for s in seen):
            time.sleep(0.05)
        assert any(s.camera_lost for s in seen), seen
        lost_at = next(i for i, s in enumerate(seen) if s.camera_lost)
        while time.monotonic() < deadline and seen[-1].camera_lost:
            time.sleep(0.05)
        assert not seen[-1].camera_lost and lost_at < len(seen) - 1  # back after the reconnect
        assert not any(s.no_gallery or s.clock_unsynchronised or s.disk_full for s in seen)
    finally:
        stop.set()
        runner.join(10)


def test_loop_publishes_no_gallery_and_a_refused_clock(terminal_config, face_frame, monkeypatch):  # noqa: F811
    cam = FakeCamera([face_frame] * 50)
    monkeypatch.setattr(service, "open_source", lambda *a, **k: cam)
    real_recorder = service.make_recorder

    def recorder_with_stopped_clock(*args):
        recorder = real_recorder(*args)
        recorder.clock = lambda: datetime(2020, 1, 1, tzinfo=UTC)  # a Pi booted without NTP
        return recorder

    monkeypatch.setattr(service, "make_recorder", recorder_with_stopped_clock)
    door = DoorSignals()
    seen: list[TerminalStatus] = []
    door.subscribe_status(seen.append)
    service.run_terminal(
        terminal_config, "camera:0", RecordingNotifier(), threading.Event(), threading.Event(), door=door, max_frames=3
    )
    assert seen[-1].no_gallery and seen[-1].clock_unsynchronised
