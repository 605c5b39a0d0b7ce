"""The motion gate: skip face detection while the entrance is empty and still.

A Pi at an entrance sees nobody most of the day, and Haar on every frame of an
empty hall is most of its idle CPU. Nothing that does not move can have walked
in, so while consecutive frames do not change, the previous frame's detection
(no face) still holds and the detector is not run.

How a frame is compared (pure, so the tests and the benchmark measure the same
numbers): both frames are shrunk to a small grey thumbnail by area averaging,
which averages sensor noise away (an 8x shrink divides its spread by 8); the
median difference is subtracted, so a global exposure or flicker step is not
motion; a thumbnail pixel has *changed* when it differs by more than
``pixel_delta`` grey levels, and the frame has *moved* when more than
``threshold`` of the thumbnail's pixels changed.

Why the defaults generalise (measured on synthetic luma noise and on the
shared clip; the numbers are in docs/accuracy-and-speed.md): a thumbnail
pixel averages 64 camera pixels, so frame-to-frame sensor noise of sigma 12
grey levels (a dim, gain-boosted camera; a lit hall is 2-5) changes at most
0.06% of thumbnail pixels past ``pixel_delta`` 8, and sigma 16 at most 0.5%,
both under the default ``threshold`` of 1%. A person moving changes more: the
shared clip's person talking in place changes 1.1-2.2% of pixels between
frames, a person walking in tens of percent. The thresholds are in grey
levels and fractions of the picture, not pixels, so they hold for any frame
size and any camera whose noise is below sigma ~16.

The gate never closes while the tracker has tracks: a person standing still at
the door is still detected and recognised. It also stays open ``hold_frames``
after the last motion, so a person who stops before a face was found gets a
few more looks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import cv2
import numpy as np
from msgspec import Meta


@dataclass(frozen=True)
class MotionSettings:
    enabled: bool = True
    # Longest side of the grey thumbnail frames are compared at.
    work_size: Annotated[int, Meta(ge=16, le=640)] = 80
    # Grey levels (0-255) a thumbnail pixel must change by to count as changed.
    pixel_delta: Annotated[float, Meta(gt=0, le=255)] = 8.0
    # Fraction of thumbnail pixels that must change for the frame to count as motion.
    threshold: Annotated[float, Meta(gt=0, le=1)] = 0.01
    # Frames the gate stays open after the last motion.
    hold_frames: Annotated[int, Meta(ge=0, le=1000)] = 10


def thumbnail(image: np.ndarray, work_size: int) -> np.ndarray:
    """A small grey copy by area averaging (which also averages sensor noise away), as int16."""
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    h, w = grey.shape[:2]
    scale = work_size / max(h, w)
    if scale < 1:
        grey = cv2.resize(grey, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return grey.astype(np.int16)


def changed_fraction(previous: np.ndarray, current: np.ndarray, pixel_delta: float) -> float:
    """Fraction of thumbnail pixels that changed by more than `pixel_delta`, after
    removing the median change (a global brightness step is not motion)."""
    if previous.shape != current.shape:
        return 1.0
    diff = current - previous
    diff = diff - np.int16(np.median(diff))
    return float(np.count_nonzero(np.abs(diff) > pixel_delta)) / diff.size


class MotionGate:
    """Decides per frame whether the detector must run (see the module docstring)."""

    def __init__(self, settings: MotionSettings) -> None:
        self.settings = settings
        self._previous: np.ndarray | None = None
        self._since_motion = settings.hold_frames + 1  # no motion seen yet
        self.last_fraction = 0.0

    def is_open(self, image: np.ndarray, tracking: bool) -> bool:
        """True when this frame must be searched for faces: the gate is off, it is the
        first frame, the scene moved since the previous frame (or within hold_frames),
        or faces are being tracked."""
        s = self.settings
        if not s.enabled:
            return True
        current = thumbnail(image, s.work_size)
        previous, self._previous = self._previous, current
        if previous is None:
            self.last_fraction = 1.0
        else:
            self.last_fraction = changed_fraction(previous, current, s.pixel_delta)
        if self.last_fraction > s.threshold:
            self._since_motion = 0
        else:
            self._since_motion += 1
        return tracking or self._since_motion <= s.hold_frames
