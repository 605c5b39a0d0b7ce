"""Turn a face's 5 landmarks into the aligned chip the model was trained on.

One alignment serves stills and frames alike: the least-squares similarity
transform (rotation, uniform scale, translation) that takes the face's five
landmarks (eyes, nose, mouth corners) onto the model card's 5-point template,
then one warp to the chip size. Stills get their landmarks from MTCNN, camera
frames from the O-Net on the Haar box; either way gallery and probe chips
share one geometry. Five points fitted in the least-squares sense average out
the error of any one landmark, which two eye points alone cannot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np

from device.vision.model_card import ChipGeometry

# The order of the 5 points everywhere (MTCNN's): "left" is the image's left.
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


@dataclass(frozen=True)
class Landmarks:
    """A face's 5 points in image pixels, and which network placed them."""

    points: np.ndarray = field(compare=False)  # (5, 2) float, LANDMARK_NAMES order
    source: Literal["mtcnn", "onet"]


@dataclass(frozen=True)
class Similarity:
    """A fitted similarity transform and how well the points agreed with it."""

    matrix: np.ndarray  # 2x3, image -> chip
    residuals: np.ndarray  # (N,) distance of each mapped point from its target, in target units

    @property
    def scale(self) -> float:
        return float(np.hypot(self.matrix[0, 0], self.matrix[1, 0]))

    @property
    def angle_degrees(self) -> float:
        return float(np.degrees(np.arctan2(self.matrix[1, 0], self.matrix[0, 0])))

    @property
    def mean_residual(self) -> float:
        return float(self.residuals.mean())

    @property
    def max_residual(self) -> float:
        return float(self.residuals.max())


def fit_similarity(src: np.ndarray, dst: np.ndarray) -> Similarity:
    """The least-squares similarity taking src points onto dst points (pure).

    Closed form (Umeyama 1991, in the plane): with each point set centred and
    written as complex numbers, the best scale-and-rotation is the complex
    a = sum(conj(s) d) / sum(|s|^2) and the shift maps centroid to centroid.
    No reflection is possible, and with exact data the transform comes back
    exactly. Raises ValueError when the source points coincide.
    """
    s = np.asarray(src, dtype=np.float64)
    d = np.asarray(dst, dtype=np.float64)
    if s.shape != d.shape or s.ndim != 2 or s.shape[1] != 2 or len(s) < 2:
        raise ValueError(f"need two matching (N>=2, 2) point sets, got {s.shape} and {d.shape}")
    sc = s[:, 0] + 1j * s[:, 1]
    dc = d[:, 0] + 1j * d[:, 1]
    s_mean, d_mean = sc.mean(), dc.mean()
    s0, d0 = sc - s_mean, dc - d_mean
    spread = float(np.vdot(s0, s0).real)
    if spread < 1e-12:
        raise ValueError("landmarks coincide: no transform")
    a = np.vdot(s0, d0) / spread  # vdot conjugates its first argument
    t = d_mean - a * s_mean
    matrix = np.array([[a.real, -a.imag, t.real], [a.imag, a.real, t.imag]], dtype=np.float64)
    residuals = np.abs(a * sc + t - dc)
    return Similarity(matrix, residuals)


def template_pixels(chip: ChipGeometry) -> np.ndarray:
    """The card's 5-point template in chip pixels, (5, 2)."""
    cw, ch = chip.size
    return np.asarray(chip.landmarks, dtype=np.float64) * np.array([cw, ch], dtype=np.float64)


def warp_chip(image_bgr: np.ndarray, matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Warp the face into a chip of `size` (width, height). Large downscales go
    through INTER_AREA first, as dlib's own chip extraction does with a pyramid,
    so a big face does not alias into the small chip."""
    cw, ch = size
    scale = float(np.hypot(matrix[0, 0], matrix[1, 0]))
    if scale < 0.5:
        # Shrink only the region the chip comes from, then warp the rest of the way.
        inv = cv2.invertAffineTransform(matrix)
        corners = np.array([[0, 0, 1], [cw, 0, 1], [0, ch, 1], [cw, ch, 1]], dtype=np.float64) @ inv.T
        h, w = image_bgr.shape[:2]
        x0, y0 = np.floor(corners.min(0)).astype(int) - 2
        x1, y1 = np.ceil(corners.max(0)).astype(int) + 2
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
        if x1 - x0 >= 2 and y1 - y0 >= 2:
            pre = 2 * scale
            region = cv2.resize(image_bgr[y0:y1, x0:x1], None, fx=pre, fy=pre, interpolation=cv2.INTER_AREA)
            shift = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], dtype=np.float64)
            shrink = np.diag([pre, pre, 1.0])
            full = np.vstack([matrix, [0, 0, 1]]) @ np.linalg.inv(shrink @ shift)
            return cv2.warpAffine(region, full[:2], (cw, ch), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return cv2.warpAffine(image_bgr, matrix, (cw, ch), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


class Aligner:
    """The chip geometry of one model: landmarks in, chip out."""

    def __init__(self, chip: ChipGeometry) -> None:
        self.geometry = chip
        self._template = template_pixels(chip)

    def transform(self, landmarks: Landmarks) -> Similarity:
        """Image -> chip similarity for these landmarks (pure)."""
        return fit_similarity(landmarks.points, self._template)

    def chip(self, image_bgr: np.ndarray, landmarks: Landmarks) -> np.ndarray:
        return warp_chip(image_bgr, self.transform(landmarks).matrix, self.geometry.size)
