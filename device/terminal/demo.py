"""`clockface demo`: the whole pipeline on a real photo that ships in a package.

scikit-image carries NASA's portrait of astronaut Eileen Collins. The demo
enrols her from that photo into a throw-away gallery, writes a short clip in
which the photo drifts, shrinks and dims past the camera between empty frames,
runs the real recogniser on the clip, and prints what it logged. Nothing is
mocked: same detector, aligner, model, matcher, tracker and attendance store
as the terminal.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from device.camera.images import read_image
from device.config import Config
from device.enrolment.photo_rules import examine_photo
from device.terminal.assembly import LoadedModel, SetupError, load_model
from device.terminal.notify import Notifier
from device.terminal.service import run_terminal
from gallery.layout import Photo
from gallery.store import Template, write_gallery

DEMO_PERSON = "Eileen Collins"
CLIP_SIZE = (640, 480)
CLIP_FPS = 10


class DemoError(RuntimeError):
    pass


@dataclass
class DemoResult:
    lines: list[str] = field(default_factory=list)
    logged: list = field(default_factory=list)


def astronaut_photo() -> Path:
    """Find scikit-image's astronaut.png by path (importing skimage is slow and unneeded)."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise DemoError("the demo photo comes with scikit-image: pip install scikit-image (./setup.sh installs it)")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "astronaut.png"
    if not path.is_file():
        raise DemoError(f"scikit-image is installed but {path} is missing")
    return path


def head_and_shoulders(photo_bgr: np.ndarray) -> np.ndarray:
    """The photo cropped around its largest face with a generous margin, as a
    person a metre or two from the camera fills the frame."""
    from device.vision.detect import FaceDetector

    boxes = FaceDetector().detect(photo_bgr)
    if not boxes:
        return photo_bgr
    b = boxes[0]
    cx, cy, half = b.x + b.w / 2, b.y + b.h / 2, 1.1 * b.w
    h, w = photo_bgr.shape[:2]
    x0, y0 = int(max(0, cx - half)), int(max(0, cy - half))
    x1, y1 = int(min(w, cx + half)), int(min(h, cy + half))
    return photo_bgr[y0:y1, x0:x1]


def write_clip(photo_bgr: np.ndarray, path: Path) -> int:
    """A synthetic entrance: empty hall, the face approaches (grows, drifts,
    brightens), lingers, leaves. Returns the number of frames written."""
    photo_bgr = head_and_shoulders(photo_bgr)
    w, h = CLIP_SIZE
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), CLIP_FPS, (w, h))
    if not writer.isOpened():
        raise DemoError("OpenCV cannot write the demo clip (no MJPG encoder)")
    yy, xx = np.mgrid[0:h, 0:w]
    hall = (60 + 40 * (yy / h) + 10 * np.sin(xx / 37.0))[..., None].repeat(3, axis=2).astype(np.uint8)
    frames = 0
    steps = 24
    for i in range(-4, steps + 4):
        frame = hall.copy()
        if 0 <= i < steps:
            t = i / (steps - 1)
            size = int(200 + 160 * t)
            face = cv2.resize(photo_bgr, (size, size), interpolation=cv2.INTER_AREA)
            face = cv2.convertScaleAbs(face, alpha=0.75 + 0.3 * t, beta=0)
            x = int(40 + (w - size - 80) * t)
            y = max(0, min(h - size, int((h - size) / 2 + 20 * np.sin(6 * t))))
            frame[y : y + size, x : x + size] = face[: h - y, : w - x]
        writer.write(frame)
        frames += 1
    writer.release()
    return frames


def enrol_astronaut(config: Config, model: LoadedModel, photo: Path) -> str:
    """Write a gallery of one (Eileen Collins, from `photo`) at ``config.paths.gallery``.

    The same photo rules as ``clockface enroll``; shared with
    docs/make_kiosk_screenshot.py, whose screenshot must show only
    public-domain imagery. Returns the line saying what was enrolled.
    """
    enrolled = examine_photo(Photo(DEMO_PERSON, photo), model.pipeline, config.enrol)
    if not enrolled.ok:
        raise DemoError(f"could not enrol the demo photo: {enrolled.outcome.value} ({enrolled.detail})")
    write_gallery(config.paths.gallery, model.binding, [Template(DEMO_PERSON, photo.name, enrolled.vector)])
    return f"enrolled   {DEMO_PERSON} from {photo.name} ({enrolled.detail}) with model {model.card.name}"


def run_demo(config: Config, data_dir: Path | None = None) -> DemoResult:
    result = DemoResult()
    photo = astronaut_photo()
    try:
        model = load_model(config)
    except SetupError as exc:
        raise DemoError(str(exc)) from None
    with tempfile.TemporaryDirectory(prefix="clockface-demo-") as tmp:
        work = Path(data_dir) if data_dir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        demo_config = dataclasses.replace(
            config,
            paths=dataclasses.replace(
                config.paths, gallery_db=work / "demo-gallery.db", attendance_db=work / "demo-attendance.db"
            ),
        )
        result.lines.append(enrol_astronaut(demo_config, model, photo))
        clip = work / "demo-entrance.avi"
        frames = write_clip(read_image(photo), clip)
        result.lines.append(f"clip       {clip.name}: {frames} frames, {CLIP_SIZE[0]}x{CLIP_SIZE[1]}")
        outcome = run_terminal(demo_config, str(clip), Notifier(None), threading.Event(), threading.Event())
        stats = outcome.stats
        result.lines.append(
            f"recognised {outcome.frames} frames in {outcome.seconds:.2f} s; "
            f"{stats.embeddings if stats else 0} embeddings for {len(outcome.decisions)} track decision(s)"
        )
        zone = config.logs.zone
        for event in outcome.logged:
            result.lines.append(
                f"logged     {event.timestamp_utc.astimezone(zone):%Y-%m-%d %H:%M:%S %Z}  {event.event_type}  "
                f"{event.person}  distance {event.distance:.3f}"
            )
        if not outcome.logged:
            result.lines.append("logged     nobody (see the decisions above)")
        result.logged = outcome.logged
        where = f"kept in {work}" if data_dir else "deleted with the temporary folder"
        result.lines.append(f"demo gallery and attendance log {where}")
    return result
