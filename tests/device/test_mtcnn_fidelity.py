"""Acceptance (issue 11): the device's MTCNN (LiteRT + NumPy) finds the faces `mtcnn.MTCNN().detect_faces`
finds, on every photo of ../shared/faces (people and _multi; _noface and the rest too), boxes and the 5
landmarks within 2 px. Prints the median and maximum deviation and the seconds per photo of each.

The package rounds its boxes and landmarks to whole pixels, so up to 0.5 px of any deviation is its rounding.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from click.testing import CliRunner

from device.camera.images import is_image_file, read_image
from device.vision.mtcnn import LANDMARK_NAMES, MtcnnDetector, MtcnnFace, square
from tests.conftest import require, shared_path

pytestmark = [pytest.mark.slow, pytest.mark.shared]

TOLERANCE_PX = 2.0
MATCH_IOU = 0.5


@pytest.fixture(scope="module")
def detector(tmp_path_factory: pytest.TempPathFactory) -> MtcnnDetector:
    require("tensorflow", "converting MTCNN needs pip install '.[converter]'")
    require("mtcnn", "converting MTCNN needs pip install '.[converter]'")
    from converter.cli import convert

    out = tmp_path_factory.mktemp("mtcnn")
    result = CliRunner().invoke(convert, ["mtcnn", "--output", str(out)])
    assert result.exit_code == 0, result.output
    return MtcnnDetector.from_models_dir(out)


@pytest.fixture(scope="module")
def reference():
    require("mtcnn", "the reference detector needs pip install '.[converter]'")
    from mtcnn import MTCNN

    return MTCNN()


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax2, bx2) - max(a[0], b[0]))
    ih = max(0.0, min(ay2, by2) - max(a[1], b[1]))
    inter = iw * ih
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def _match(mine: list[MtcnnFace], theirs: list[dict]) -> list[tuple[MtcnnFace, dict]]:
    """Each package face with the device face of highest IoU (at least MATCH_IOU), one to one."""
    pairs, free = [], list(mine)
    for face in theirs:
        box = np.asarray(face["box"], float)
        scored = [(_iou(np.asarray(m.box), box), i) for i, m in enumerate(free)]
        best = max(scored, default=(0.0, -1))
        if best[0] >= MATCH_IOU:
            pairs.append((free.pop(best[1]), face))
    return pairs


def test_device_mtcnn_finds_the_packages_faces_on_every_photo(detector, reference) -> None:
    photos = sorted(p for p in shared_path("faces").rglob("*") if is_image_file(p))
    assert len(photos) > 50
    box_dev: list[float] = []
    landmark_dev: list[float] = []
    seconds = {"device": 0.0, "package": 0.0}
    faces = 0
    for path in photos:
        image = read_image(path)
        started = time.perf_counter()
        mine = detector.detect(image)
        seconds["device"] += time.perf_counter() - started
        started = time.perf_counter()
        theirs = reference.detect_faces(np.ascontiguousarray(image[:, :, ::-1]))
        seconds["package"] += time.perf_counter() - started
        pairs = _match(mine, theirs)
        assert len(pairs) == len(theirs) == len(mine), f"{path}: device {len(mine)} faces, package {len(theirs)}"
        for face, ref in pairs:
            box_dev.append(float(np.abs(np.asarray(face.box) - np.asarray(ref["box"], float)).max()))
            points = np.array([ref["keypoints"][k] for k in LANDMARK_NAMES], float)
            landmark_dev.append(float(np.abs(face.landmarks - points).max()))
        faces += len(theirs)
    print(
        f"\nMTCNN device vs package on {len(photos)} photos, {faces} faces: "
        f"box max-abs deviation median {np.median(box_dev):.2f} px, max {max(box_dev):.2f} px; "
        f"landmarks median {np.median(landmark_dev):.2f} px, max {max(landmark_dev):.2f} px; "
        f"seconds per photo: device {seconds['device'] / len(photos):.3f}, package {seconds['package'] / len(photos):.3f}"
    )
    assert faces > len(photos) / 2
    assert max(box_dev) <= TOLERANCE_PX and max(landmark_dev) <= TOLERANCE_PX


def test_landmarks_for_a_given_box_are_the_faces_own(detector) -> None:
    """For frames: O-Net alone on a box (here the detected one, as a Haar box would be) puts the 5 points
    where the full detector put them, within a few percent of the face size."""
    folder = shared_path("faces", "barack_obama")
    path = sorted(p for p in folder.iterdir() if is_image_file(p))[0]
    image = read_image(path)
    (face,) = detector.detect(image)
    points = detector.landmarks(image, face.box)
    assert points.shape == (5, 2) and points.dtype == np.float32
    assert np.abs(points - face.landmarks).max() <= 0.05 * face.box[2]
    left_eye, right_eye = points[0], points[1]
    assert left_eye[0] < right_eye[0]  # "left" is the image's left


def test_landmarks_sampled_from_raw_pixels_equal_the_detectors_own_path(detector) -> None:
    """landmarks() normalises only its 48 x 48 samples (so its cost does not grow with the frame); that
    must be the O-Net input detect() builds from the normalised image, also for a box past the border."""
    folder = shared_path("faces", "barack_obama")
    image = read_image(sorted(p for p in folder.iterdir() if is_image_file(p))[0])
    (face,) = detector.detect(image)
    x, y, w, h = face.box
    for box in (face.box, (-0.3 * w, y, w, h), (x, image.shape[0] - 0.6 * h, 1.2 * w, h)):
        square_box = square(np.array([[box[0], box[1], box[0] + box[2], box[1] + box[3], 0.0]]))
        _, expected = detector._output(detector._normalise(image), square_box)
        np.testing.assert_allclose(detector.landmarks(image, box), expected[0], atol=1e-3)
