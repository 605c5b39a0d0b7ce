"""The preview/kiosk annotation: boxes only where a face is now."""

from __future__ import annotations

import numpy as np

from device.terminal.preview import annotate
from device.terminal.tracking import Tracker
from device.vision.detect import FaceBox

AMBER = np.array([0, 191, 255], np.uint8)  # BGR: a track still deciding


def amber_pixels(image: np.ndarray, x0: int, x1: int) -> int:
    return int(np.all(image[:, x0:x1] == AMBER, axis=2).sum())


def test_a_track_missing_from_this_frame_is_not_drawn() -> None:
    """Two faces in frame 1, only the right one in frame 2: the tracker keeps the
    left track alive (max_missing), but frame 2 must not show its old box."""
    tracker = Tracker()
    left, right = FaceBox(20, 40, 80, 80), FaceBox(200, 40, 80, 80)
    tracker.update([left, right], frame_index=1)
    tracker.update([right], frame_index=2)
    assert len(tracker.tracks) == 2  # the left one survives a missed detection
    image = np.zeros((200, 320, 3), np.uint8)

    drawn = annotate(image, list(tracker.tracks.values()), frame_index=2)

    assert amber_pixels(drawn, 0, 160) == 0, "a stale box is drawn where the left face was"
    assert amber_pixels(drawn, 160, 320) > 4 * 80  # the right face's box (2 px wide) is drawn
    assert not image.any()  # the camera frame itself is left alone


def test_the_face_seen_again_is_drawn_again() -> None:
    tracker = Tracker()
    box = FaceBox(20, 40, 80, 80)
    tracker.update([box], frame_index=1)
    tracker.update([], frame_index=2)
    tracker.update([box], frame_index=3)
    image = np.zeros((200, 320, 3), np.uint8)
    assert amber_pixels(annotate(image, list(tracker.tracks.values()), frame_index=2), 0, 320) == 0
    assert amber_pixels(annotate(image, list(tracker.tracks.values()), frame_index=3), 0, 320) > 4 * 80
