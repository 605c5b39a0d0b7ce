"""Turn a face box into the aligned chip the model was trained on.

The model card says where the eyes belong in the chip. We find the eyes with
OpenCV's eye cascades inside the face box, and where no plausible pair is
found we place them where they sit on average in a Haar box (the card's
`box_*_eye`, calibrated against dlib's landmarks). Either way the chip is made
by one similarity transform (rotation, scale, shift) from two eye points, so
enrolment, recognition and evaluation all share one geometry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from device.vision.detect import FaceBox, cascade_path, to_grey
from device.vision.model_card import ChipGeometry

Point = tuple[float, float]

# Eye-cascade box centres sit slightly above and inside the landmark eye
# centres the chip templates are defined on. Median offsets, in units of the
# face-box width, measured against dlib's 5-point landmarks on ../shared/faces
# (40 of 62 photos had a pair with the first cascade, MAD ~0.005 w).
EYE_CASCADES: tuple[tuple[str, Point, Point], ...] = (
    ("haarcascade_eye.xml", (-0.015, -0.014), (-0.007, -0.011)),
    ("haarcascade_eye_tree_eyeglasses.xml", (-0.009, -0.010), (0.004, -0.010)),
)
EYE_ROI_WIDTH = 160  # the face's upper half is searched at this width: cheap and scale-free


@dataclass(frozen=True)
class EyePoints:
    left: Point  # the eye on the image's left
    right: Point
    source: Literal["cascade", "box"]


def box_eyes(box: FaceBox, chip: ChipGeometry) -> EyePoints:
    """Where the eyes sit on average in a Haar box: the fallback."""
    (lx, ly), (rx, ry) = chip.box_left_eye, chip.box_right_eye
    return EyePoints((box.x + lx * box.w, box.y + ly * box.w), (box.x + rx * box.w, box.y + ry * box.w), "box")


def pick_eye_pair(candidates: list[tuple[float, float, float]], box: FaceBox) -> tuple[Point, Point] | None:
    """Choose the most face-like pair of eye detections, or None.

    A pair must straddle the box's vertical midline, lie roughly level and be
    a plausible distance apart; among those, the one closest to the average
    geometry wins. Pure function, so the rules are testable on numbers.
    """
    mid = box.x + box.w / 2
    lefts = [c for c in candidates if c[0] < mid]
    rights = [c for c in candidates if c[0] >= mid]
    best: tuple[float, Point, Point] | None = None
    for lx, ly, _ in lefts:
        for rx, ry, _ in rights:
            dist = float(np.hypot(rx - lx, ry - ly))
            if not (0.25 * box.w < dist < 0.55 * box.w and abs(ry - ly) < 0.15 * box.w):
                continue
            score = abs(dist - 0.36 * box.w) + abs(ry - ly)
            if best is None or score < best[0]:
                best = (score, (lx, ly), (rx, ry))
    return None if best is None else (best[1], best[2])


class Aligner:
    """Holds the eye cascades (loaded once) and the chip geometry of one model."""

    def __init__(self, chip: ChipGeometry, use_eye_cascades: bool = True) -> None:
        self.geometry = chip
        self._cascades = []
        if use_eye_cascades:
            for name, left_off, right_off in EYE_CASCADES:
                cascade = cv2.CascadeClassifier(cascade_path(name))
                if not cascade.empty():
                    self._cascades.append((cascade, left_off, right_off))

    def locate_eyes(self, grey: np.ndarray, box: FaceBox) -> EyePoints:
        h, w = grey.shape[:2]
        x0, x1 = int(max(0, box.x)), int(min(w, box.x + box.w))
        y0, y1 = int(max(0, box.y + 0.15 * box.w)), int(min(h, box.y + 0.6 * box.w))
        if x1 - x0 < 8 or y1 - y0 < 8 or not self._cascades:
            return box_eyes(box, self.geometry)
        scale = EYE_ROI_WIDTH / box.w
        roi = cv2.resize(
            grey[y0:y1, x0:x1],
            None,
            fx=scale,
            fy=scale,
            interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
        )
        roi = cv2.equalizeHist(roi)
        min_eye, max_eye = int(0.12 * EYE_ROI_WIDTH), int(0.4 * EYE_ROI_WIDTH)
        for cascade, (lox, loy), (rox, roy) in self._cascades:
            found = cascade.detectMultiScale(roi, 1.1, 3, minSize=(min_eye, min_eye), maxSize=(max_eye, max_eye))
            centres = [((ex + ew / 2) / scale + x0, (ey + eh / 2) / scale + y0, ew / scale) for ex, ey, ew, eh in found]
            pair = pick_eye_pair(centres, box)
            if pair is not None:
                (lx, ly), (rx, ry) = pair
                return EyePoints((lx - lox * box.w, ly - loy * box.w), (rx - rox * box.w, ry - roy * box.w), "cascade")
        return box_eyes(box, self.geometry)

    def eye_transform(self, eyes: EyePoints) -> np.ndarray:
        """2x3 similarity matrix taking image eye points onto the chip template."""
        cw, ch = self.geometry.size
        src = np.array([eyes.left, eyes.right], dtype=np.float64)
        dst = np.array(
            [
                (self.geometry.left_eye[0] * cw, self.geometry.left_eye[1] * ch),
                (self.geometry.right_eye[0] * cw, self.geometry.right_eye[1] * ch),
            ]
        )
        return similarity_from_two_points(src, dst)

    def chip(self, frame_bgr: np.ndarray, eyes: EyePoints) -> np.ndarray:
        """Warp the face into the chip. Large downscales go through INTER_AREA
        first, as dlib's own chip extraction does with a pyramid, to avoid aliasing."""
        cw, ch = self.geometry.size
        m = self.eye_transform(eyes)
        scale = float(np.hypot(m[0, 0], m[1, 0]))
        if scale < 0.5:
            # Shrink only the region the chip comes from, then warp the rest of the way.
            inv = cv2.invertAffineTransform(m)
            corners = np.array([[0, 0, 1], [cw, 0, 1], [0, ch, 1], [cw, ch, 1]], dtype=np.float64) @ inv.T
            h, w = frame_bgr.shape[:2]
            x0, y0 = np.floor(corners.min(0)).astype(int) - 2
            x1, y1 = np.ceil(corners.max(0)).astype(int) + 2
            x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
            if x1 - x0 >= 2 and y1 - y0 >= 2:
                pre = 2 * scale
                region = cv2.resize(frame_bgr[y0:y1, x0:x1], None, fx=pre, fy=pre, interpolation=cv2.INTER_AREA)
                shift = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], dtype=np.float64)
                shrink = np.diag([pre, pre, 1.0])
                full = np.vstack([m, [0, 0, 1]]) @ np.linalg.inv(shrink @ shift)
                return cv2.warpAffine(
                    region, full[:2], (cw, ch), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
                )
        return cv2.warpAffine(frame_bgr, m, (cw, ch), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)

    def align(
        self, frame_bgr: np.ndarray, box: FaceBox, grey: np.ndarray | None = None
    ) -> tuple[np.ndarray, EyePoints]:
        eyes = self.locate_eyes(to_grey(frame_bgr) if grey is None else grey, box)
        return self.chip(frame_bgr, eyes), eyes


def similarity_from_two_points(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The unique rotation+scale+translation mapping src[0]->dst[0], src[1]->dst[1]."""
    s = complex(*src[1]) - complex(*src[0])
    d = complex(*dst[1]) - complex(*dst[0])
    if abs(s) < 1e-9:
        raise ValueError("eye points coincide")
    a = d / s  # scale * e^{i theta}
    t = complex(*dst[0]) - a * complex(*src[0])
    return np.array([[a.real, -a.imag, t.real], [a.imag, a.real, t.imag]], dtype=np.float64)
