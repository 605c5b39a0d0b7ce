"""The one detect -> align -> embed path shared by enrolment, recognition and evaluation.

A difference between how the gallery was made and how probes are seen is a
bug, so there is exactly one place that turns an image into face findings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from device.vision.align import Aligner, EyePoints
from device.vision.detect import DetectionSettings, FaceBox, FaceDetector, to_grey
from device.vision.embedder import Embedder
from device.vision.model_card import ChipGeometry


@dataclass(frozen=True)
class FaceFinding:
    box: FaceBox
    eyes: EyePoints
    chip: np.ndarray  # BGR uint8, the model's chip size
    embedding: np.ndarray | None = None  # float32 (D,), None when no embedder


class FacePipeline:
    """Detector, aligner and (optionally) embedder for one model, loaded once."""

    def __init__(
        self, chip: ChipGeometry, embedder: Embedder | None = None, detection: DetectionSettings | None = None
    ) -> None:
        self.detector = FaceDetector(detection)
        self.aligner = Aligner(chip)
        self.embedder = embedder

    def detect(self, image_bgr: np.ndarray, still: bool = False) -> list[FaceBox]:
        return self.detector.detect(image_bgr, still=still)

    def finding(self, image_bgr: np.ndarray, box: FaceBox, grey: np.ndarray | None = None) -> FaceFinding:
        """Align and embed one detected face (the per-face work, kept separate so a
        tracker can call it only for the faces it still needs an embedding of)."""
        chip, eyes = self.aligner.align(image_bgr, box, grey)
        embedding = self.embedder.embed(chip) if self.embedder is not None else None
        return FaceFinding(box, eyes, chip, embedding)

    def find(self, image_bgr: np.ndarray, still: bool = True, limit: int | None = None) -> list[FaceFinding]:
        """Every face (largest first, at most `limit`), aligned and embedded."""
        boxes = self.detect(image_bgr, still=still)[:limit]
        grey = to_grey(image_bgr)
        return [self.finding(image_bgr, box, grey) for box in boxes]


def crop_faces(image_bgr: np.ndarray, chip: ChipGeometry) -> list[np.ndarray]:
    """Aligned BGR chips of every face in a photo, largest first: the device's own
    preprocessing, for callers (int8 calibration) that have no model yet."""
    return [f.chip for f in FacePipeline(chip).find(image_bgr, still=True)]
