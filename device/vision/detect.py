"""Haar frontal-face detection on a downscaled, equalised grey camera frame.

Haar is the cheapest detector that runs well on a Pi CPU and ships with
OpenCV itself (no model download). It is run on a small grey copy of the
frame because detection cost grows with pixel count while the faces at an
entrance are large. Still photos (enrolment, eval, image folders) go to MTCNN
instead (device/vision/faces.py), which needs no padding retry for tight head
crops and no finer-scale retry for small faces in big photos.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import cv2
import numpy as np
from msgspec import Meta

from logs.settings import SettingsError

FACE_CASCADE = "haarcascade_frontalface_default.xml"
# A second, stricter cascade confirms each candidate on a small crop around it.
# On ../shared/faces it removed every false positive on clothes and plain
# background that the default cascade found, and kept every real face.
VERIFY_CASCADE = "haarcascade_frontalface_alt.xml"
VERIFY_FACE_PX = 80  # candidates are confirmed at this face width


@dataclass(frozen=True)
class DetectionSettings:
    # Longest side of the grey image the cascade sees in a camera frame. Haar's cost grows with pixels while faces at an
    # entrance are large: 320 finds faces from ~50 px wide in a 640-px frame,
    # at about a sixth of the cost of 640 (tests/benchmarks/bench_runtime.py).
    work_size: Annotated[int, Meta(ge=64, le=4096)] = 320
    # Haar's pyramid step; OpenCV needs it above 1. 1.2 halves the cost but
    # missed half the faces of the demo clip at 320.
    scale_factor: Annotated[float, Meta(gt=1, le=2)] = 1.1
    min_neighbors: Annotated[int, Meta(ge=0, le=50)] = 5
    # Smallest face, in work-image pixels (60 px in a 640-px frame at work_size 320).
    min_size: Annotated[int, Meta(ge=1, le=4096)] = 30
    verify: bool = True  # confirm candidates with a second cascade
    max_overlap: Annotated[float, Meta(ge=0, le=1)] = 0.3  # a box covered this much by a larger one is the same face

    def __post_init__(self) -> None:
        # A smallest face larger than the image the cascade sees finds nothing, silently.
        if self.min_size > self.work_size:
            raise SettingsError.about(
                "detection.min_size",
                self.min_size,
                f"is out of range (1 <= x <= detection.work_size = {self.work_size})",
            )


@dataclass(frozen=True)
class FaceBox:
    """A square face box in the original frame's pixel coordinates."""

    x: float
    y: float
    w: float
    h: float

    @property
    def area(self) -> float:
        return self.w * self.h

    @property
    def centre(self) -> tuple[float, float]:
        return (self.x + self.w / 2, self.y + self.h / 2)

    def iou(self, other: FaceBox) -> float:
        inter = _intersection(self, other)
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0


def to_grey(frame_bgr: np.ndarray) -> np.ndarray:
    return frame_bgr if frame_bgr.ndim == 2 else cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY)


def cascade_path(name: str) -> str:
    # opencv-python ships cv2/data/ (haarcascades) but its bundled stubs do not declare it.
    return cv2.data.haarcascades + name  # type: ignore[attr-defined]


def _load(name: str) -> cv2.CascadeClassifier:
    cascade = cv2.CascadeClassifier(cascade_path(name))
    if cascade.empty():
        raise RuntimeError(f"OpenCV could not load {name}: is opencv-python-headless < 5 installed?")
    return cascade


def suppress_overlaps(boxes: list[FaceBox], max_overlap: float) -> list[FaceBox]:
    """Keep the larger of two boxes when the smaller lies largely inside it
    (Haar's double hits on one face: chin, forehead). Input largest first."""
    kept: list[FaceBox] = []
    for box in boxes:
        covered = max((_intersection(box, k) / box.area for k in kept), default=0.0)
        if covered <= max_overlap:
            kept.append(box)
    return kept


def _intersection(a: FaceBox, b: FaceBox) -> float:
    ix = max(0.0, min(a.x + a.w, b.x + b.w) - max(a.x, b.x))
    iy = max(0.0, min(a.y + a.h, b.y + b.h) - max(a.y, b.y))
    return ix * iy


def work_scale(shape: tuple[int, ...], work_size: int) -> float:
    """How much to shrink an image of `shape` for the cascade (at most 1): the longest side becomes `work_size`."""
    return min(1.0, work_size / max(shape[:2]))


class FaceDetector:
    """Loads the cascade once; `detect` is called per frame."""

    def __init__(self, settings: DetectionSettings | None = None) -> None:
        self.settings = settings or DetectionSettings()
        self._cascade = _load(FACE_CASCADE)
        self._verifier = _load(VERIFY_CASCADE) if self.settings.verify else None

    def _confirmed(self, grey: np.ndarray, box: FaceBox) -> bool:
        margin = 0.3 * box.w
        h, w = grey.shape[:2]
        x0, y0 = int(max(0, box.x - margin)), int(max(0, box.y - margin))
        x1, y1 = int(min(w, box.x + box.w + margin)), int(min(h, box.y + box.h + margin))
        if x1 - x0 < 8 or y1 - y0 < 8:
            return False
        scale = VERIFY_FACE_PX / box.w
        roi = cv2.resize(
            grey[y0:y1, x0:x1],
            None,
            fx=scale,
            fy=scale,
            interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
        )
        lo, hi = int(0.7 * VERIFY_FACE_PX), int(1.4 * VERIFY_FACE_PX)
        if self._verifier is None:
            return True
        found = self._verifier.detectMultiScale(cv2.equalizeHist(roi), 1.1, 2, minSize=(lo, lo), maxSize=(hi, hi))
        return len(found) > 0

    def detect(self, frame_bgr: np.ndarray) -> list[FaceBox]:
        """Faces in a camera frame, largest first."""
        s = self.settings
        work = to_grey(frame_bgr)
        scale = work_scale(work.shape, s.work_size)
        small = cv2.resize(work, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else work
        found = self._cascade.detectMultiScale(
            cv2.equalizeHist(small),
            scaleFactor=s.scale_factor,
            minNeighbors=s.min_neighbors,
            minSize=(s.min_size, s.min_size),
        )
        boxes = sorted(
            (FaceBox(x / scale, y / scale, w / scale, h / scale) for (x, y, w, h) in found),
            key=lambda b: b.area,
            reverse=True,
        )
        if self._verifier is not None:
            boxes = [b for b in boxes if self._confirmed(work, b)]
        return suppress_overlaps(boxes, s.max_overlap)
