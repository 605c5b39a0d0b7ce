"""Make docs/kiosk.png from public-domain imagery only.

The photos and clip under ../shared must never be copied into the repository,
and a screenshot of them is a copy. So the documented screenshot shows what
``clockface demo`` shows: scikit-image's portrait of NASA astronaut Eileen
Collins (public domain), enrolled into a throw-away gallery, walking past the
camera in the demo's synthetic entrance clip.

The real terminal (``python -m device.cli run`` with ``[kiosk] enabled =
true``) reads the clip from a looping MJPEG stream served here, so the page
stays live; headless Chromium (Debian's, as in the browser test) shows the
kiosk page at the Pi touchscreen's 800x480 and is photographed while the
greeting names her. Of the screenshots taken during the greeting, the one
with the most of the green "recognised" box is kept.

Run with the dev venv from the repository root::

    PYTHONPATH=$PWD .venv/bin/python docs/make_kiosk_screenshot.py [--model PATH] [--output docs/kiosk.png]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from device import paths as default_paths  # noqa: E402
from device.camera.images import read_image  # noqa: E402
from device.config import DEFAULT_MODEL, load_config  # noqa: E402
from device.terminal.assembly import load_model  # noqa: E402
from device.terminal.demo import CLIP_FPS, DEMO_PERSON, astronaut_photo, enrol_astronaut, write_clip  # noqa: E402

VIEWPORT = {"width": 800, "height": 480}  # the Pi touchscreen
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
STREAM_FPS = CLIP_FPS / 2  # half speed: she lingers, so the box is on screen with the greeting


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_clip(path: Path) -> list[bytes]:
    """The clip's frames as JPEGs, ready to stream."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        ok, buf = cv2.imencode(".jpg", image)
        frames.append(buf.tobytes())
    cap.release()
    if not frames:
        raise SystemExit(f"could not read the demo clip {path}")
    return frames


class LoopingCamera:
    """A network camera on 127.0.0.1:`port` playing `frames` round and round;
    :meth:`show` swaps what it plays (the empty hall until the page is open, so
    her first decision, the check-in, is the one on the screen)."""

    def __init__(self, frames: list[bytes], port: int, fps: float) -> None:
        self.frames = frames
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                playing, i = camera.frames, 0
                try:
                    while True:
                        if camera.frames is not playing:  # a new clip plays from its start
                            playing, i = camera.frames, 0
                        jpeg = playing[i % len(playing)]
                        i += 1
                        self.wfile.write(
                            b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s\r\n"
                            % (len(jpeg), jpeg)
                        )
                        time.sleep(1 / fps)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def show(self, frames: list[bytes]) -> None:
        self.frames = frames

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def green_box_pixels(png: bytes) -> int:
    """How much of the green 'recognised' box (BGR 0,200,0 in preview.annotate) a screenshot shows."""
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    b, g, r = (image[..., i].astype(int) for i in range(3))
    return int(((g > 160) & (r < 80) & (b < 80)).sum())


def wait_for_page(url: str, terminal: subprocess.Popen, log: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except (urllib.error.URLError, ConnectionError):
            if terminal.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the kiosk page did not come up:\n{log.read_text()}") from None
            time.sleep(0.3)


def photograph(
    url: str, chromium: str, camera: LoopingCamera, clip: list[bytes], output: Path, timeout_s: float
) -> int:
    """Screenshots while the greeting names her; writes the one showing most of the green box."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(url)
            page.wait_for_selector("body[data-connected=true]", state="attached", timeout=30_000)
            camera.show(clip)  # she walks in once the page is listening
            name_shown = f"() => document.getElementById('greeting').textContent.includes({DEMO_PERSON!r})"
            page.wait_for_function(name_shown, timeout=timeout_s * 1000, polling=50)
            best, best_green = b"", -1
            while page.evaluate(name_shown):
                shot = page.screenshot()
                green = green_box_pixels(shot)
                if green > best_green:
                    best, best_green = shot, green
                page.wait_for_timeout(150)
        finally:
            browser.close()
    output.write_bytes(best)
    return best_green


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_model = default_paths.models_dir(default_paths.data_dir(os.environ)) / f"{DEFAULT_MODEL}.tflite"
    parser.add_argument(
        "--model", type=Path, default=default_model, help=f"a converted model (default {default_model})"
    )
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "kiosk.png")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for the greeting")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("needs Debian's chromium: apt-get install chromium")
    if not args.model.is_file():
        raise SystemExit(f"no model at {args.model}: convert one with python -m converter.cli {DEFAULT_MODEL}")

    with tempfile.TemporaryDirectory(prefix="clockface-kioskshot-") as tmp:
        work = Path(tmp)
        kiosk_port, camera_port = free_port(), free_port()
        config_file = work / "clockface.toml"
        config_file.write_text(
            f'[paths]\ndata_dir = "{work / "data"}"\nmodel = "{args.model.resolve()}"\n'
            f"[kiosk]\nenabled = true\nport = {kiosk_port}\ngreeting_seconds = 5\n"
        )
        config = load_config(config_file)
        config.paths.gallery.parent.mkdir(parents=True, exist_ok=True)
        photo = astronaut_photo()
        print(enrol_astronaut(config, load_model(config), photo))
        clip = work / "demo-entrance.avi"
        write_clip(read_image(photo), clip)
        frames = read_clip(clip)
        camera = LoopingCamera(frames[:1], camera_port, STREAM_FPS)  # the clip starts with the empty hall
        log = work / "terminal.log"
        with log.open("w") as log_file:
            terminal = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "device.cli",
                    "--config",
                    str(config_file),
                    "run",
                    "--source",
                    f"http://127.0.0.1:{camera_port}/video.mjpg",
                ],
                cwd=REPO,
                env={**os.environ, "PYTHONPATH": str(REPO)},
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
            try:
                url = f"http://127.0.0.1:{kiosk_port}/"
                wait_for_page(url, terminal, log)
                green = photograph(url, chromium, camera, frames, args.output, args.timeout)
            finally:
                terminal.send_signal(signal.SIGTERM)
                try:
                    terminal.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    terminal.kill()
                camera.stop()
    print(f"wrote {args.output} ({VIEWPORT['width']}x{VIEWPORT['height']}, {green} px of the green face box)")


if __name__ == "__main__":
    main()
