"""The one detect -> landmarks -> align -> embed path shared by enrolment, recognition and evaluation.

A difference between how the gallery was made and how probes are seen is a
bug, so there is exactly one place that turns an image into face findings.
Stills (enrolment photos, `eval`, image folders) are searched by MTCNN, which
finds small, tight and off-centre faces and gives each its 5 landmarks.
Camera frames keep the cheap Haar cascade per frame (device/vision/detect.py);
a Haar box gets its landmarks from MTCNN's O-Net only when the tracker asks
for an embedding. Both then go through the same 5-point alignment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from device.vision.align import Aligner, Landmarks
from device.vision.detect import DetectionSettings, FaceBox, FaceDetector
from device.vision.embedder import Embedder
from device.vision.model_card import ChipGeometry
from device.vision.mtcnn import MtcnnDetector, MtcnnFace

# MTCNN searches a still on a shrunk copy (the chip is still cut from the full
# photo): its cost grows with pixels (measured on ../shared/faces, photos up to
# 2500 px: 0.78 s per photo at 1280 px, 0.22 s at 640). The copy keeps the
# longest side at STILL_WORK_SIDE (as Haar's still_work_size did), but is never
# shrunk so far that a face of SMALLEST_STILL_FACE_PX (enrol.min_face_px's
# default) falls below MTCNN's smallest face, 20 px -- up to STILL_MAX_SIDE:
# P-Net's proposals, and the package's all-pairs NMS over them, grow with the
# copy's area, and a 4000 x 3000 phone photo searched at 1333 px took 123 MB
# more than at 1024 (peak RSS, 2026-12-01). At 1024 px a face of 5% of the
# width is still 51 px there, well above 20 (issue: 5% to 100% of the width).
STILL_WORK_SIDE = 640
STILL_MAX_SIDE = 1024
SMALLEST_STILL_FACE_PX = 60


def still_scale(shape: tuple[int, ...], min_face_size: float) -> float:
    """How much to shrink a still for MTCNN (at most 1, pure)."""
    longest = max(shape[:2])
    keep_small_faces = min(min_face_size / SMALLEST_STILL_FACE_PX, STILL_MAX_SIDE / longest)
    return min(1.0, max(STILL_WORK_SIDE / longest, keep_small_faces))


@dataclass(frozen=True)
class StillFace(FaceBox):
    """A face MTCNN found in a still: its box, and the 5 landmarks it came with."""

    landmarks: Landmarks = field(compare=False)
    confidence: float = field(compare=False)


@dataclass(frozen=True)
class FaceFinding:
    box: FaceBox
    landmarks: Landmarks
    chip: np.ndarray  # BGR uint8, the model's chip size
    embedding: np.ndarray | None = None  # float32 (D,), None when no embedder


def still_faces(found: Sequence[MtcnnFace], scale: float = 1.0) -> list[StillFace]:
    """MTCNN's faces (found on a copy shrunk by `scale`) as boxes with landmarks in
    the original image's pixels, largest first (pure)."""
    faces = [
        StillFace(
            float(f.box[0]) / scale,
            float(f.box[1]) / scale,
            float(f.box[2]) / scale,
            float(f.box[3]) / scale,
            landmarks=Landmarks(np.asarray(f.landmarks, dtype=np.float64).reshape(5, 2) / scale, "mtcnn"),
            confidence=float(f.confidence),
        )
        for f in found
    ]
    return sorted(faces, key=lambda f: f.area, reverse=True)


class FacePipeline:
    """Detectors, aligner and (optionally) embedder for one model, loaded once."""

    def __init__(
        self,
        chip: ChipGeometry,
        mtcnn: MtcnnDetector,
        embedder: Embedder | None = None,
        detection: DetectionSettings | None = None,
    ) -> None:
        self.detector = FaceDetector(detection)
        self.mtcnn = mtcnn
        self.aligner = Aligner(chip)
        self.embedder = embedder

    def detect(self, image_bgr: np.ndarray, still: bool = False) -> list[FaceBox]:
        """Faces, largest first: MTCNN with landmarks for a still, Haar for a camera frame."""
        if still:
            scale = still_scale(image_bgr.shape, self.mtcnn.settings.min_face_size)
            small = (
                image_bgr
                if scale == 1
                else cv2.resize(image_bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            )
            return list(still_faces(self.mtcnn.detect(small), scale))
        return self.detector.detect(image_bgr)

    def landmarks(self, image_bgr: np.ndarray, box: FaceBox) -> Landmarks:
        """The box's own landmarks (a still), else O-Net's on the box (a Haar box in a frame)."""
        if isinstance(box, StillFace):
            return box.landmarks
        points = self.mtcnn.landmarks(image_bgr, (box.x, box.y, box.w, box.h))
        return Landmarks(np.asarray(points, dtype=np.float64).reshape(5, 2), "onet")

    def finding(self, image_bgr: np.ndarray, box: FaceBox) -> FaceFinding:
        """Align and embed one detected face (the per-face work, kept separate so a
        tracker can call it only for the faces it still needs an embedding of)."""
        landmarks = self.landmarks(image_bgr, box)
        chip = self.aligner.chip(image_bgr, landmarks)
        embedding = self.embedder.embed(chip) if self.embedder is not None else None
        return FaceFinding(box, landmarks, chip, embedding)

    def find(self, image_bgr: np.ndarray, still: bool = True, limit: int | None = None) -> list[FaceFinding]:
        """Every face (largest first, at most `limit`), aligned and embedded."""
        return [self.finding(image_bgr, box) for box in self.detect(image_bgr, still=still)[:limit]]


def crop_faces(image_bgr: np.ndarray, chip: ChipGeometry, mtcnn: MtcnnDetector) -> list[np.ndarray]:
    """Aligned BGR chips of every face in a photo, largest first: the device's own
    preprocessing, for callers (int8 calibration) that have no model yet."""
    return [f.chip for f in FacePipeline(chip, mtcnn).find(image_bgr, still=True)]
