"""The service loop: cameras that vanish, picamera2 at its API boundary,
systemd notifications, the watchdog, and signals in a real subprocess."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import cv2
import numpy as np
import pytest

import device.terminal.service as service
from device.camera.frames import Frame, SourceError
from device.camera.sources import open_source
from device.terminal.notify import Notifier
from tests.conftest import make_config, shared_path


class RecordingNotifier(Notifier):
    def __init__(self, watchdog_usec=None):
        super().__init__(None, watchdog_usec)
        self.sent: list[tuple[float, str]] = []

    def send(self, *fields):
        self.sent.extend((time.monotonic(), f) for f in fields)
        return True

    def times(self, field):
        return [t for t, f in self.sent if f == field]


class FakeCamera:
    """A live source at the library boundary: yields `count` frames then drops out
    (as a USB camera does when unplugged); `stall` blocks like a hung driver."""

    live = True

    def __init__(self, frames, name="camera:0", stall: threading.Event | None = None):
        self.name = name
        self._frames = frames
        self.stall = stall
        self.closed = False

    def frames(self):
        for i, image in enumerate(self._frames):
            yield Frame(image, i, time.monotonic())
            time.sleep(0.01)
            if self.stall is not None:
                self.stall.wait()
        raise OSError("device disconnected")

    def close(self):
        self.closed = True


@pytest.fixture(scope="module")
def face_frame():
    image = cv2.imread(str(shared_path("faces", "angelina_jolie", "1.jpg")))
    return cv2.resize(image, (640, int(640 * image.shape[0] / image.shape[1])))


@pytest.fixture
def enrolled_config(tmp_path, dlib_model):
    from device.enrolment.photo_rules import examine_photo
    from device.terminal.assembly import load_model
    from gallery.layout import Photo
    from gallery.store import Template, write_gallery

    config = make_config(tmp_path / "data", dlib_model, recognition={"cooldown_minutes": 0.001})
    model = load_model(config)
    r = examine_photo(
        Photo("Angelina Jolie", shared_path("faces", "angelina_jolie", "2.jpg")), model.pipeline, config.enrol
    )
    write_gallery(config.paths.gallery, model.binding, [Template(r.person, "2.jpg", r.embedding)])
    return config


def test_camera_that_vanishes_is_reopened_with_backoff(enrolled_config, face_frame, monkeypatch):
    monkeypatch.setattr(service, "RECONNECT_BACKOFF", (0.05, 0.05))
    blank = np.zeros_like(face_frame)
    cameras = [
        FakeCamera([face_frame] * 3, name="camera:0"),
        None,
        FakeCamera([blank, face_frame, face_frame], name="camera:0"),
    ]
    opened = []

    def fake_open(spec, width=None, height=None):
        cam = cameras[len(opened)] if len(opened) < len(cameras) else None
        opened.append(spec)
        if cam is None:
            raise SourceError("no camera at camera:0: connect one")
        return cam

    monkeypatch.setattr(service, "open_source", fake_open)
    stop = threading.Event()
    messages: list[str] = []

    def on_message(text):
        messages.append(text)
        if len(opened) >= 4:
            stop.set()

    outcome = service.run_terminal(
        enrolled_config, "camera:0", RecordingNotifier(), stop, threading.Event(), on_message=on_message
    )
    assert any("disconnected" in m for m in messages), messages
    assert any("reconnected" in m for m in messages), messages
    assert any("retrying" in m for m in messages), messages
    assert outcome.frames >= 5
    assert [e.person for e in outcome.logged][:1] == ["Angelina Jolie"]


def test_ready_status_and_watchdog_come_from_the_loop(enrolled_config, face_frame, monkeypatch):
    """While processing is wedged the watchdog stops, although capture goes on."""
    notifier = RecordingNotifier(watchdog_usec=200_000)  # ping at least every 50 ms
    wedge, release = threading.Event(), threading.Event()
    wedged_at: list[float] = []
    original = service.Recogniser.process

    def process(self, image, index):
        # A live source drops stale frames, so wedge on the first one past 8, whichever that is.
        if index >= 8 and not wedge.is_set():
            wedged_at.append(time.monotonic())
            wedge.set()
            release.wait(30)  # a hung embedder, say: hung until the test has watched long enough
        return original(self, image, index)

    monkeypatch.setattr(service.Recogniser, "process", process)
    cam = FakeCamera([face_frame] * 200)
    monkeypatch.setattr(service, "open_source", lambda *a, **k: cam)
    stop = threading.Event()
    runner = threading.Thread(
        target=lambda: service.run_terminal(enrolled_config, "camera:0", notifier, stop, threading.Event())
    )
    runner.start()
    assert wedge.wait(30)
    time.sleep(0.6)  # ~12 ping intervals of watching; the wedge lasts until release, however late this wakes
    released_at = time.monotonic()
    pings_while_wedged = [t for t in notifier.times("WATCHDOG=1") if wedged_at[0] + 0.05 < t < released_at]
    release.set()
    deadline = time.monotonic() + 30
    # Pings resume once the loop runs again (however slowly frames go on a loaded machine).
    while len([t for t in notifier.times("WATCHDOG=1") if t > released_at]) < 3:
        assert time.monotonic() < deadline, (
            f"watchdog pings did not resume after the loop was released: {notifier.sent}"
        )
        time.sleep(0.01)
    stop.set()
    runner.join(10)
    assert notifier.times("READY=1"), notifier.sent
    assert len(notifier.times("WATCHDOG=1")) > 3
    assert pings_while_wedged == []
    assert notifier.times("STOPPING=1")


def test_picamera2_at_its_api_boundary(monkeypatch):
    """The real PiCameraSource against a stand-in `picamera2` module with the same API."""
    calls = []

    class Picamera2:
        def create_video_configuration(self, main):
            calls.append(("config", main))
            return {"main": main}

        def configure(self, config):
            calls.append(("configure", config))

        def start(self):
            calls.append(("start",))

        def capture_array(self, stream="main"):
            return np.full((480, 640, 4), 7, np.uint8)  # XRGB8888-style 4 channels

        def stop(self):
            calls.append(("stop",))

        def close(self):
            calls.append(("close",))

    monkeypatch.setitem(sys.modules, "picamera2", types.SimpleNamespace(Picamera2=Picamera2))
    source = open_source("picamera2", 640, 480)
    frames = source.frames()
    first = next(frames)
    assert first.image.shape == (480, 640, 3) and first.index == 0
    assert next(frames).index == 1
    source.close()
    assert calls[0] == ("config", {"size": (640, 480), "format": "RGB888"})
    assert ("start",) in calls and ("close",) in calls


def test_picamera2_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)
    with pytest.raises(SourceError, match="python3-picamera2"):
        open_source("picamera2")


def test_notifier_speaks_the_sd_notify_protocol(tmp_path):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    notifier = Notifier.from_env({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "4000000"})
    assert notifier.watchdog_interval == 2.0
    notifier.ready("up")
    assert sock.recv(100) == b"READY=1\nSTATUS=up"
    assert not Notifier.from_env({}).enabled and Notifier.from_env({}).send("READY=1") is False


def _long_clip(path: Path, face, frames=900):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (640, 480))
    canvas = np.zeros((480, 640, 3), np.uint8)
    small = cv2.resize(face, (320, int(320 * face.shape[0] / face.shape[1])))[:480]
    canvas[: small.shape[0], :320] = small
    for i in range(frames):
        writer.write(canvas if i % 300 < 30 else np.zeros_like(canvas))
    writer.release()


@pytest.mark.slow
def test_sigterm_and_sighup_in_a_real_process(enrolled_config, face_frame, tmp_path):
    clip = tmp_path / "long.avi"
    _long_clip(clip, face_frame)
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[paths]\ndata_dir = "{enrolled_config.paths.data_dir}"\nmodel = "{enrolled_config.paths.model_path}"\n'
    )
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(60)
    env = {**os.environ, "NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "2000000"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "device.cli", "--config", str(cfg), "run", "--source", str(clip)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    # stderr is read as it comes, so the test can wait for the reload itself
    # instead of sleeping and hoping the process got there (it may not, under load).
    err_lines: list[str] = []
    assert proc.stderr is not None
    reader = threading.Thread(target=lambda: [err_lines.append(line) for line in proc.stderr], daemon=True)
    reader.start()
    try:
        messages = []
        while not any(m.startswith(b"READY=1") for m in messages):
            messages.append(sock.recv(4096))
        while not any(m == b"WATCHDOG=1" for m in messages):
            messages.append(sock.recv(4096))
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 60
        while not any("reloaded" in line for line in err_lines):
            assert time.monotonic() < deadline and proc.poll() is None, "no reload after SIGHUP:\n" + "".join(err_lines)
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        reader.join(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = "".join(err_lines)
    assert proc.returncode == 0, err
    assert "reloaded" in err
    assert "frames from video:long.avi" in err
    sock.settimeout(1)
    rest = []
    try:
        while True:
            rest.append(sock.recv(4096))
    except TimeoutError:
        pass
    assert b"STOPPING=1" in rest


def test_preview_page_streams_annotated_frames(enrolled_config, face_frame, monkeypatch):
    import dataclasses
    import urllib.request

    from device.terminal.preview import PreviewSettings

    config = dataclasses.replace(enrolled_config, preview=PreviewSettings(enabled=True, port=0, fps=50))
    cam = FakeCamera([face_frame] * 400)
    monkeypatch.setattr(service, "open_source", lambda *a, **k: cam)
    stop = threading.Event()
    urls = []
    runner = threading.Thread(
        target=lambda: service.run_terminal(
            config, "camera:0", RecordingNotifier(), stop, threading.Event(), on_message=urls.append
        )
    )
    runner.start()
    try:
        deadline = time.monotonic() + 20
        while not urls and time.monotonic() < deadline:
            time.sleep(0.05)
        base = urls[0].split(" on ")[1]
        assert b"camera preview" in urllib.request.urlopen(base, timeout=5).read()
        with urllib.request.urlopen(base + "stream", timeout=10) as stream:
            head = stream.read(4096)
        assert b"--clockface-frame" in head and b"Content-Type: image/jpeg" in head
        jpeg = head[head.index(b"\r\n\r\n") + 4 :]
        assert jpeg[:2] == b"\xff\xd8"  # a JPEG starts here
    finally:
        stop.set()
        runner.join(10)


def test_preview_refuses_a_lan_address():
    from device.terminal.preview import PreviewSettings

    with pytest.raises(ValueError, match="loopback"):
        PreviewSettings(enabled=True, host="0.0.0.0")


def test_starts_without_a_gallery_and_picks_it_up_when_it_appears(tmp_path, dlib_model, face_frame, monkeypatch):
    """A new terminal is READY before its first enrolment and needs no restart after it."""
    from device.enrolment.photo_rules import examine_photo
    from device.terminal.assembly import load_model
    from gallery.layout import Photo
    from gallery.store import Template, write_gallery

    config = make_config(tmp_path / "data", dlib_model)
    model = load_model(config)
    enrolled = examine_photo(
        Photo("Angelina Jolie", shared_path("faces", "angelina_jolie", "2.jpg")), model.pipeline, config.enrol
    )
    blank = np.zeros_like(face_frame)
    gallery_written = threading.Event()

    class Entrance(FakeCamera):
        def frames(self):
            for i in range(20):  # nobody enrolled yet: the face stays unknown
                yield Frame(face_frame if i > 5 else blank, i, time.monotonic())
            write_gallery(config.paths.gallery, model.binding, [Template(enrolled.person, "2.jpg", enrolled.embedding)])
            gallery_written.set()
            for i in range(20, 400):
                time.sleep(0.01)
                # the same person walks in again after the gallery appeared
                yield Frame(blank if i < 30 else face_frame, i, time.monotonic())

    monkeypatch.setattr(service, "open_source", lambda *a, **k: Entrance([]))
    notifier, messages, stop = RecordingNotifier(), [], threading.Event()

    def on_event(event):
        stop.set()

    outcome = service.run_terminal(
        config, "camera:0", notifier, stop, threading.Event(), on_event=on_event, on_message=messages.append
    )
    assert notifier.times("READY=1")
    assert any("no one enrolled yet" in m for m in messages)
    assert gallery_written.is_set() and outcome.reloads >= 1
    assert [e.person for e in outcome.logged] == ["Angelina Jolie"]


def test_after_a_reload_unknown_tracks_get_another_look_and_known_ones_stand(tmp_path, dlib_model):
    """Session.reloaded keeps the tracker: a recognised person is not decided
    twice; a face decided unknown is looked at again against the new gallery."""
    from datetime import timedelta
    from zoneinfo import ZoneInfo

    from device.terminal.assembly import load_model
    from device.terminal.recorder import Recorder
    from device.vision.detect import FaceBox
    from device.vision.matcher import Match
    from gallery.store import Template, write_gallery
    from logs.store import AttendanceStore

    def hit(person):
        return Match(person, 0.3, person)

    def miss():
        return Match(None, 0.8, "x")

    config = make_config(tmp_path / "data", dlib_model)
    model = load_model(config)
    write_gallery(config.paths.gallery, model.binding, [Template("Ann", "a.jpg", np.ones(128, np.float32))])
    with AttendanceStore(config.paths.attendance) as store:
        session = service.Session(config, Recorder(store, ZoneInfo("UTC"), "t", "s", timedelta(minutes=1)), model)
        tracker = session.recogniser.tracker
        (known, _), (unknown, _) = tracker.update([FaceBox(0, 0, 80, 80), FaceBox(300, 0, 80, 80)], 0)
        tracker.add_match(known, hit("Ann"))
        tracker.add_match(known, hit("Ann"))
        for _ in range(4):
            tracker.add_match(unknown, miss())
        assert known.decision.person == "Ann" and unknown.decision.person is None
        reloaded = session.reloaded(config)
        assert reloaded.model is model and reloaded.recogniser.tracker is tracker
        assert known.decision.person == "Ann"
        assert unknown.decision is None and unknown.needs_embedding
