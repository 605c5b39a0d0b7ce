"""An optional MJPEG page for aiming the camera: http://127.0.0.1:8090/.

Off by default. Frames are annotated and JPEG-encoded only while someone is
watching, at most `fps` times a second, so an idle preview costs nothing. The
page shows what the camera sees right now and nothing is stored. The kiosk
page (device/terminal/kiosk.py) shows the same :class:`FrameFeed`, so a
terminal serving both encodes each frame once.
"""

from __future__ import annotations

import functools
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Annotated

import cv2
import numpy as np
from msgspec import Meta

from device.terminal.tracking import Track
from logs.settings import SettingsError

BOUNDARY = b"clockface-frame"
PAGE = b"""<!doctype html><html><head><title>clockface preview</title>
<style>body{background:#111;color:#eee;font-family:sans-serif;text-align:center}img{max-width:100%}</style></head>
<body><h1>clockface camera preview</h1><img src="/stream" alt="live camera"><p>Green: recognised. Amber: deciding. Grey: unknown.</p></body></html>"""


@dataclass(frozen=True)
class PreviewSettings:
    enabled: bool = False
    host: str = "127.0.0.1"
    port: Annotated[int, Meta(ge=1, le=65535)] = 8090
    fps: Annotated[float, Meta(gt=0, le=30)] = 5.0

    def __post_init__(self) -> None:
        if self.enabled and self.host not in ("127.0.0.1", "localhost", "::1"):
            # Faces of passers-by are personal data: keep the preview on the device.
            raise SettingsError.about(
                "preview.host", self.host, "is not a loopback address (use an SSH tunnel to view it remotely)"
            )


def seen_in(tracks: list[Track], frame_index: int) -> list[Track]:
    """The tracks detected in frame `frame_index`.

    The tracker keeps a track alive for a few frames without a detection (so a
    blink or a missed detection does not start a new track and a new vote), but
    its box is where the face *was*: drawing it would leave a stale box beside
    the face's current one.
    """
    return [track for track in tracks if track.last_frame == frame_index]


def annotate(image: np.ndarray, tracks: list[Track], frame_index: int) -> np.ndarray:
    """`image` with a box and label for each track seen in it (frame `frame_index`)."""
    out = image.copy()
    for track in seen_in(tracks, frame_index):
        b = track.box
        if track.decision is None:
            colour, label = (0, 191, 255), "..."
        elif track.decision.person is None:
            colour, label = (160, 160, 160), "unknown"
        else:
            colour, label = (0, 200, 0), track.decision.person
        p1, p2 = (int(b.x), int(b.y)), (int(b.x + b.w), int(b.y + b.h))
        cv2.rectangle(out, p1, p2, colour, 2)
        cv2.putText(out, label, (p1[0], max(12, p1[1] - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)
    return out


class FrameFeed:
    """Annotated frames as MJPEG for whoever watches: the preview and the kiosk page share one.

    The loop calls :meth:`publish` after every frame; a frame is annotated and
    encoded only while a browser is connected, at most `fps` times a second.
    """

    def __init__(self, fps: float) -> None:
        self.fps = fps
        self._jpeg: bytes | None = None
        self._cond = threading.Condition()
        self._watchers = 0
        self._last = 0.0

    @property
    def watched(self) -> bool:
        return self._watchers > 0

    def publish(self, image: np.ndarray, tracks: list[Track], frame_index: int) -> None:
        """Called from the processing loop after each frame (`frame_index`); cheap when nobody watches."""
        now = time.monotonic()
        if not self.watched or now - self._last < 1.0 / self.fps:
            return
        self._last = now
        ok, buf = cv2.imencode(".jpg", annotate(image, tracks, frame_index), [cv2.IMWRITE_JPEG_QUALITY, 75])
        if ok:
            with self._cond:
                self._jpeg = buf.tobytes()
                self._cond.notify_all()

    def _newer_than(self, sent: bytes | None) -> bool:
        """Has a frame other than `sent` been published? (Called with the condition held.)"""
        return self._jpeg is not sent

    def stream(self, handler: BaseHTTPRequestHandler) -> None:
        """Serve multipart MJPEG on `handler` until the browser goes away."""
        handler.send_response(200)
        handler.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY.decode()}")
        handler.send_header("Cache-Control", "no-store")
        handler.end_headers()
        with self._cond:
            self._watchers += 1
        try:
            sent = None
            while True:
                with self._cond:
                    self._cond.wait_for(functools.partial(self._newer_than, sent), timeout=5.0)
                    jpeg = self._jpeg
                if jpeg is None or jpeg is sent:
                    continue
                sent = jpeg
                handler.wfile.write(
                    b"--"
                    + BOUNDARY
                    + b"\r\nContent-Type: image/jpeg\r\nContent-Length: "
                    + str(len(jpeg)).encode()
                    + b"\r\n\r\n"
                    + jpeg
                    + b"\r\n"
                )
                handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            with self._cond:
                self._watchers -= 1


class LoopbackHttp:
    """A threaded HTTP server in the background: the one way the preview and the kiosk
    serve their pages, so both start, report their address and stop alike."""

    def __init__(self, host: str, port: int, handler: type[BaseHTTPRequestHandler], name: str) -> None:
        self._httpd = ThreadingHTTPServer((host, port), handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, name=name, daemon=True).start()

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._httpd.server_address[:2]
        assert isinstance(host, str), "an AF_INET server's address is (host, port)"
        return host, port

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


class PreviewServer:
    def __init__(self, settings: PreviewSettings, feed: FrameFeed | None = None) -> None:
        self.settings = settings
        self.feed = feed or FrameFeed(settings.fps)
        feed_ = self.feed

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet: the journal is for attendance
                pass

            def do_GET(self) -> None:
                if self.path == "/":
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(PAGE)))
                    self.end_headers()
                    self.wfile.write(PAGE)
                elif self.path == "/stream":
                    feed_.stream(self)
                else:
                    self.send_error(404)

        self._http = LoopbackHttp(settings.host, settings.port, Handler, "preview")

    @property
    def address(self) -> tuple[str, int]:
        return self._http.address

    @property
    def watched(self) -> bool:
        return self.feed.watched

    def publish(self, image: np.ndarray, tracks: list[Track], frame_index: int) -> None:
        self.feed.publish(image, tracks, frame_index)

    def close(self) -> None:
        self._http.close()
