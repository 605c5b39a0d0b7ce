"""The kiosk page: a full-screen screen at the door, served by the running terminal.

http://127.0.0.1:8091/ (off by default, loopback only) shows the live view
with the face box of the person being recognised (the preview's
:class:`~device.terminal.preview.FrameFeed`, so the camera has one reader and
frames are encoded only while the page is open), a clock, the greeting for
the decision just made, and banners for what staff must know.

Decisions reach the page by Server-Sent Events the moment the loop publishes
them on the :class:`~device.terminal.door.DoorSignals` hub; the stream starts
with ``retry:`` so the browser's EventSource reconnects by itself after the
terminal restarts. Privacy: the page is told one greeting at a time and
removes it after ``greeting_seconds``; nothing is replayed to a page that
connects later, there is no list of who is in, and no image is stored.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from msgspec import Meta

from device.terminal.door import DoorEvent, DoorKind, DoorSignals, TerminalStatus
from device.terminal.preview import FrameFeed, LoopbackHttp, PreviewServer, PreviewSettings
from logs.settings import SettingsError

PAGE_FILE = Path(__file__).with_name("kiosk.html")
RETRY_MS = 1000  # how soon a page retries after the terminal went away
KEEPALIVE_SECONDS = 15.0  # a comment line this often finds browsers that left without closing
UNKNOWN_TEXT = "Not recognised — please look at the camera"

Tone = Literal["welcome", "repeat", "unknown", "problem"]


@dataclass(frozen=True)
class KioskSettings:
    enabled: bool = False
    host: str = "127.0.0.1"
    port: Annotated[int, Meta(ge=1, le=65535)] = 8091
    greeting_seconds: Annotated[float, Meta(ge=1, le=60)] = 5.0

    def __post_init__(self) -> None:
        if self.enabled and self.host not in ("127.0.0.1", "localhost", "::1"):
            # The page shows the camera and names: it is for the screen on this device.
            raise SettingsError.about("kiosk.host", self.host, "is not a loopback address (the screen is local)")


@dataclass(frozen=True)
class Greeting:
    """What the screen says for one decision, and how it looks."""

    text: str
    tone: Tone


def salutation(local: datetime) -> str:
    """By the local time of day: morning until noon, afternoon until six, evening after."""
    if 5 <= local.hour < 12:
        return "Good morning"
    if 12 <= local.hour < 18:
        return "Good afternoon"
    return "Good evening"


def greeting(event: DoorEvent, zone: ZoneInfo) -> Greeting:
    """The words for one door event, in the terminal's time zone (pure)."""
    if event.kind is DoorKind.UNKNOWN or event.person is None:
        return Greeting(UNKNOWN_TEXT, "unknown")
    local = event.at.astimezone(zone)
    hello = f"{salutation(local)}, {event.person}"
    if event.kind is DoorKind.CHECKED_IN:
        done = "checked in" if event.event_type in (None, "check-in") else "seen"
        return Greeting(f"{hello} — {done} {local:%H:%M}", "welcome")
    if event.kind is DoorKind.CHECKED_OUT:
        return Greeting(f"Goodbye, {event.person} — checked out {local:%H:%M}", "welcome")
    if event.kind is DoorKind.REPEAT and event.previous_at is not None:
        return Greeting(f"{hello} — already checked in at {event.previous_at.astimezone(zone):%H:%M}", "repeat")
    return Greeting(f"{event.person}: recognised, but not logged — please tell the office", "problem")


def banners(status: TerminalStatus) -> list[str]:
    """One line per problem staff must fix, most urgent first (pure)."""
    out = []
    if status.camera_lost:
        out.append("Camera lost — reconnecting; nobody is being recognised")
    if status.clock_unsynchronised:
        out.append("Clock not synchronised — nothing is logged")
    if status.disk_full:
        out.append("Disk full — attendance cannot be saved")
    if status.no_gallery:
        out.append("No one enrolled yet — enrol people to start")
    return out


def sse(kind: str, data: dict) -> bytes:
    """One Server-Sent Event: a named event with a JSON payload on one data line."""
    return f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


class KioskServer:
    """The page, its event stream and the live view, on one loopback port.

    :meth:`show` and :meth:`status` are the DoorSignals subscriptions; they
    only queue bytes for each connected page, so the loop never waits for a browser.
    """

    def __init__(self, settings: KioskSettings, feed: FrameFeed, zone: ZoneInfo) -> None:
        self.settings = settings
        self.feed = feed
        self.zone = zone
        self._page = PAGE_FILE.read_bytes()
        self._lock = threading.Lock()
        self._clients: list[queue.SimpleQueue[bytes | None]] = []
        self._status = sse("status", {"banners": []})
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet: the journal is for attendance
                pass

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/":
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(server._page)))
                    self.send_header("Cache-Control", "no-store")
                    self.end_headers()
                    self.wfile.write(server._page)
                elif path == "/events":
                    server._events(self)
                elif path == "/stream":
                    server.feed.stream(self)
                else:
                    self.send_error(404)

        self._http = LoopbackHttp(settings.host, settings.port, Handler, "kiosk")

    @property
    def address(self) -> tuple[str, int]:
        return self._http.address

    def _broadcast(self, message: bytes | None) -> None:
        with self._lock:
            for client in self._clients:
                client.put(message)

    def show(self, event: DoorEvent) -> None:
        """A DoorSignals subscriber: send this decision's greeting to every open page."""
        words = greeting(event, self.zone)
        payload = {
            "kind": str(event.kind),
            "text": words.text,
            "tone": words.tone,
            "at": round(event.at.timestamp() * 1000),  # ms since the epoch, as the page's Date.now()
            "seconds": self.settings.greeting_seconds,
        }
        self._broadcast(sse("greeting", payload))

    def status(self, status: TerminalStatus) -> None:
        """A DoorSignals status subscriber: the banners, kept for pages that connect later."""
        message = sse("status", {"banners": banners(status)})
        with self._lock:
            self._status = message
        self._broadcast(message)

    def _events(self, handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream; charset=utf-8")
        handler.send_header("Cache-Control", "no-store")
        handler.end_headers()
        client: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        with self._lock:
            self._clients.append(client)
            first = f"retry: {RETRY_MS}\n\n".encode() + self._status
        try:
            handler.wfile.write(first)
            handler.wfile.flush()
            while True:
                try:
                    message = client.get(timeout=KEEPALIVE_SECONDS)
                except queue.Empty:
                    message = b": keepalive\n\n"
                if message is None:  # the terminal is stopping
                    break
                handler.wfile.write(message)
                handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            with self._lock:
                self._clients.remove(client)

    def close(self) -> None:
        self._broadcast(None)
        self._http.close()


@dataclass
class Screens:
    """The pages a running terminal serves, fed by one frame encoder."""

    feed: FrameFeed
    preview: PreviewServer | None = None
    kiosk: KioskServer | None = None

    def close(self) -> None:
        for server in (self.preview, self.kiosk):
            if server is not None:
                server.close()


def open_screens(
    preview: PreviewSettings,
    kiosk: KioskSettings,
    zone: ZoneInfo,
    door: DoorSignals | None,
    on_message: Callable[[str], None],
) -> Screens:
    """Start the enabled pages; the kiosk subscribes to `door` (required when it is enabled)."""
    screens = Screens(FrameFeed(preview.fps))
    if preview.enabled:
        screens.preview = PreviewServer(preview, screens.feed)
        host, port = screens.preview.address
        on_message(f"camera preview on http://{host}:{port}/")
    if kiosk.enabled:
        if door is None:
            raise ValueError("the kiosk page needs the door hub to subscribe to")
        screens.kiosk = KioskServer(kiosk, screens.feed, zone)
        door.subscribe(screens.kiosk.show)
        door.subscribe_status(screens.kiosk.status)
        host, port = screens.kiosk.address
        on_message(f"kiosk page on http://{host}:{port}/")
    return screens
