"""End to end: `clockface run` with the kiosk page, watched by headless Chromium.

The camera is a real HTTP MJPEG stream served by this test (a network camera,
as the terminal sees one): first an empty scene, then the shared clip
(../shared/faces/_video/1.mp4, where Lin-Manuel Miranda is logged), then the
photos of a person who is not enrolled, then nothing at all (the stream
stops: the camera is lost). Finally the terminal is restarted and the page,
left open, comes back by itself.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import CHROMIUM_FLAGS, shared_path

REPO = Path(__file__).resolve().parents[2]
ENROLLED = ("lin_manuel_miranda", "angelina_jolie", "barack_obama")
NOT_ENROLLED = "jack_dorsey"
UNKNOWN_TEXT = "Not recognised — please look at the camera"

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MjpegCamera:
    """A network camera: serves `frames` in a loop at `fps` until `stop()`, which
    drops every connection, as a camera losing power does."""

    def __init__(self, port: int, frames: list[np.ndarray], fps: float = 15.0) -> None:
        self.frames = [self.jpeg(f) for f in frames]
        self.fps = fps
        self.alive = True
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                i = 0
                try:
                    while camera.alive:
                        frames = camera.frames
                        jpeg = frames[i % len(frames)]
                        i += 1
                        self.wfile.write(
                            b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                            + str(len(jpeg)).encode()
                            + b"\r\n\r\n"
                            + jpeg
                            + b"\r\n"
                        )
                        time.sleep(1 / camera.fps)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @staticmethod
    def jpeg(image: np.ndarray) -> bytes:
        ok, buf = cv2.imencode(".jpg", image)
        assert ok
        return buf.tobytes()

    def show(self, frames: list[np.ndarray]) -> None:
        self.frames = [self.jpeg(f) for f in frames]

    def stop(self) -> None:
        self.alive = False
        self.httpd.shutdown()
        self.httpd.server_close()


def clip_frames() -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(shared_path("faces", "_video", "1.mp4")))
    frames = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        frames.append(image)
    cap.release()
    return frames


def unknown_frames() -> list[np.ndarray]:
    """Each photo of a person not in the gallery, held for a second like someone at the door."""
    out = []
    for path in sorted(shared_path("faces", NOT_ENROLLED).glob("*.jpg")):
        image = cv2.imread(str(path))
        if image is None:
            continue
        canvas = np.full((360, 640, 3), 90, np.uint8)
        scale = min(640 / image.shape[1], 360 / image.shape[0])
        small = cv2.resize(image, (int(image.shape[1] * scale), int(image.shape[0] * scale)))
        canvas[: small.shape[0], : small.shape[1]] = small
        out += [canvas] * 15
    return out


class Terminal:
    """`python -m device.cli run --json` in a subprocess; stdout collected by a thread."""

    def __init__(self, config: Path, source: str, log: Path) -> None:
        self.lines: list[str] = []
        self.log = log.open("a")
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "device.cli", "--config", str(config), "run", "--source", source, "--json"],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def event(self, person: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines:
                if line.startswith("{") and json.loads(line)["person"] == person:
                    return json.loads(line)
            assert self.proc.poll() is None, "the terminal exited"
            time.sleep(0.1)
        raise AssertionError(f"{person} was not logged in {timeout} s: {self.lines}")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def wait_for_http(url: str, terminal: Terminal, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except (urllib.error.URLError, ConnectionError):
            if terminal.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the kiosk page did not come up: {log.read_text()}")
            time.sleep(0.2)


@pytest.fixture
def kiosk_config(tmp_path: Path, dlib_model: Path) -> tuple[Path, int]:
    """A gallery of a few shared people (folders linked, never copied) and a config enabling the kiosk."""
    people = tmp_path / "people"
    people.mkdir()
    for name in ENROLLED:
        (people / name).symlink_to(shared_path("faces", name), target_is_directory=True)
    port = free_port()
    data = tmp_path / "data"
    data.mkdir()
    config = tmp_path / "clockface.toml"
    config.write_text(
        f'[paths]\ndata_dir = "{data}"\nmodel = "{dlib_model}"\n'
        f"[kiosk]\nenabled = true\nport = {port}\ngreeting_seconds = 4\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "device.cli", "--config", str(config), "enroll", str(people)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return config, port


RECORD_GREETINGS = """
window.__greetings = [];
document.addEventListener("kiosk-greeting", (e) => window.__greetings.push(e.detail));
"""


def greeting_with(page, text: str, timeout_ms: float, after: int = 0) -> dict:
    """The first greeting containing `text` among those the page received after the first `after`."""
    page.wait_for_function(
        "([t, n]) => window.__greetings.slice(n).some(g => g.text.includes(t))",
        arg=[text, after],
        timeout=timeout_ms,
        polling=50,
    )
    return page.evaluate("([t, n]) => window.__greetings.slice(n).find(g => g.text.includes(t))", [text, after])


def test_kiosk_greets_warns_and_comes_back(chromium: str, kiosk_config, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    config, port = kiosk_config
    clip, unknown = clip_frames(), unknown_frames()
    camera_port = free_port()
    camera = MjpegCamera(camera_port, [np.full((360, 640, 3), 90, np.uint8)])
    source = f"http://127.0.0.1:{camera_port}/video.mjpg"
    log = tmp_path / "terminal.log"
    base = f"http://127.0.0.1:{port}/"
    terminal = Terminal(config, source, log)
    try:
        wait_for_http(base, terminal, log)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_FLAGS)
            try:
                page = browser.new_page(viewport={"width": 800, "height": 480})  # the Pi touchscreen
                page.add_init_script(RECORD_GREETINGS)
                page.goto(base)
                page.wait_for_selector("body[data-connected=true]", state="attached", timeout=10_000)

                # The clip: Lin-Manuel Miranda is greeted within 0.5 s of his logged event.
                camera.show(clip)
                event = terminal.event("Lin Manuel Miranda", timeout=180)
                shown = greeting_with(page, "Lin Manuel Miranda", timeout_ms=10_000)
                logged_ms = datetime.fromisoformat(event["time"]).timestamp() * 1000
                assert shown["at"] == round(logged_ms)
                delay_ms = shown["shownAt"] - logged_ms
                print(f"kiosk: greeting shown {delay_ms:.0f} ms after the logged event")
                assert 0 <= delay_ms < 500, delay_ms
                assert shown["kind"] == "check-in" and "— checked in" in shown["text"]
                assert "Lin Manuel Miranda" in page.inner_text("#greeting")
                page.wait_for_timeout(300)  # a live frame with the face box
                # For debugging only, and only under tmp_path: this frame is of the shared clip,
                # which must never be copied into the repository (docs/kiosk.png is made from
                # public-domain imagery by docs/make_kiosk_screenshot.py).
                shot = tmp_path / "kiosk.png"
                page.screenshot(path=str(shot))
                print(f"kiosk: screenshot in {shot}")
                # A few seconds later the greeting is gone: no one's name stays on the screen.
                page.wait_for_function(
                    "() => !document.getElementById('greeting').textContent.includes('Lin Manuel Miranda')",
                    timeout=15_000,
                )

                # Someone not enrolled.
                # (The clip's other faces were greeted as unknown too: only a greeting that
                # arrives after the camera switches counts.)
                seen = page.evaluate("() => window.__greetings.length")
                camera.show(unknown)
                greeting_with(page, UNKNOWN_TEXT, timeout_ms=120_000, after=seen)
                page.wait_for_function(
                    "t => document.getElementById('greeting').textContent.includes(t)",
                    arg=UNKNOWN_TEXT,
                    timeout=10_000,
                    polling=50,
                )

                # The camera dies: staff see it on the screen.
                camera.stop()
                page.wait_for_selector(".banner:has-text('Camera lost')", timeout=60_000)

                # The terminal restarts (camera back): the open page reconnects by itself and
                # greets Lin again, within the cooldown.
                terminal.stop()
                page.wait_for_selector("body[data-connected=false]", state="attached", timeout=30_000)
                camera = MjpegCamera(camera_port, clip)
                terminal = Terminal(config, source, log)
                page.wait_for_selector("body[data-connected=true]", state="attached", timeout=180_000)
                again = greeting_with(page, "already checked in at", timeout_ms=180_000)
                assert "Lin Manuel Miranda" in again["text"] and again["kind"] == "repeat"
                assert page.locator(".banner").count() == 0  # the camera is back
            finally:
                browser.close()
    finally:
        terminal.stop()
        camera.stop()
