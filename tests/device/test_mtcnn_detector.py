"""device/vision/mtcnn.py without models: the package's NMS and box arithmetic, and the sidecar's
hash check (missing or altered files are one clear error)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from device.errors import one_line
from device.vision.mtcnn import (
    NETWORK_FILES,
    NETWORKS,
    OUTPUT_CHANNELS,
    SIDECAR,
    MtcnnCard,
    MtcnnDetector,
    MtcnnError,
    NetworkEntry,
    faces_from_boxes,
    landmarks_in_image,
    nms_keep,
    overlap_matrix,
    pnet_proposals,
    regress,
    square,
)


def test_nms_drops_a_box_overlapped_by_a_dropped_one_as_the_package_does() -> None:
    """A overlaps B, B overlaps C, A does not overlap C: textbook NMS keeps A and C, mtcnn keeps only A."""
    boxes = np.array([[0, 0, 10, 10, 0.9], [3, 0, 13, 10, 0.8], [6, 0, 16, 10, 0.7]], float)
    iou = overlap_matrix(boxes, "union")
    assert iou[0, 1] > 0.5 and iou[1, 2] > 0.5 and iou[0, 2] < 0.5
    assert nms_keep(boxes, 0.5).tolist() == [0]


def test_nms_min_measures_overlap_over_the_smaller_box() -> None:
    boxes = np.array([[0, 0, 100, 100, 0.9], [10, 10, 40, 40, 0.8]], float)
    assert nms_keep(boxes, 0.7, "union").tolist() == [0, 1]  # IoU 0.09
    assert nms_keep(boxes, 0.7, "min").tolist() == [0]  # the small box lies inside the big one


def test_square_keeps_the_centre_and_takes_the_longer_side() -> None:
    out = square(np.array([[10, 20, 30, 60, 0.5]], float))
    np.testing.assert_allclose(out, [[0, 20, 40, 60, 0.5]])


def test_regression_and_landmarks_scale_with_the_box_size_plus_one() -> None:
    box = np.array([[10, 20, 29, 39, 0.9]], float)  # 20 x 20 in the package's +1 convention
    np.testing.assert_allclose(regress(box, np.array([[0.1, -0.1, 0.05, 0.0]]))[0, :4], [12, 18, 30, 39])
    points = np.array([[0, 0.5, 1, 0.25, 0.75, 0, 0.5, 1, 0.8, 0.8]])
    np.testing.assert_allclose(
        landmarks_in_image(box, points)[0], [[9, 19], [19, 29], [29, 39], [14, 35], [24, 35]], atol=1e-6
    )


def test_pnet_cells_map_back_to_the_image_through_the_scale() -> None:
    prob = np.zeros((3, 4))
    prob[1, 2] = 0.9
    prob[2, 0] = 0.7
    prob[0, 0] = 0.5  # below the threshold
    boxes = pnet_proposals(np.zeros((3, 4, 4)), prob, 0.6, scale=0.5)
    # cell (y=1, x=2): x 2*2+1 .. 2*2+12, y 3 .. 14, divided by the scale; best first
    np.testing.assert_allclose(boxes, [[10, 6, 32, 28, 0.9], [2, 10, 24, 32, 0.7]])


def test_faces_are_clipped_to_the_image_but_landmarks_are_not() -> None:
    boxes = np.array([[-5.0, 3.0, 120.0, 90.0, 0.99]])
    points = np.full((1, 5, 2), -2.0, np.float32)
    (face,) = faces_from_boxes(boxes, points, width=100, height=80)
    assert face.box == (0.0, 3.0, 99.0, 76.0)
    assert face.landmarks.shape == (5, 2) and face.landmarks.dtype == np.float32 and face.landmarks.min() == -2


def _fake_models(folder: Path) -> None:
    networks = {}
    for name in NETWORKS:
        data = f"not a model: {name}".encode()
        (folder / NETWORK_FILES[name]).write_bytes(data)
        networks[name] = NetworkEntry(
            file=NETWORK_FILES[name],
            sha256=hashlib.sha256(data).hexdigest(),
            input_shape=[-1, 24, 24, 3],
            outputs=OUTPUT_CHANNELS[name],
        )
    (folder / SIDECAR).write_text(MtcnnCard(networks=networks).to_json())


def test_missing_models_are_one_line_naming_the_command(tmp_path: Path) -> None:
    with pytest.raises(MtcnnError) as err:
        MtcnnDetector.from_models_dir(tmp_path)
    message = one_line(err.value)
    assert str(err.value) == message and "clockface convert mtcnn --output" in message and str(tmp_path) in message


def test_a_file_that_does_not_match_its_sidecar_hash_is_refused(tmp_path: Path) -> None:
    _fake_models(tmp_path)
    (tmp_path / NETWORK_FILES["rnet"]).write_bytes(b"changed")
    with pytest.raises(MtcnnError, match=r"mtcnn-rnet\.tflite does not match the sha256 in .*mtcnn\.json"):
        MtcnnDetector.from_models_dir(tmp_path)


def test_a_missing_network_file_is_refused(tmp_path: Path) -> None:
    _fake_models(tmp_path)
    (tmp_path / NETWORK_FILES["onet"]).unlink()
    with pytest.raises(MtcnnError, match="MTCNN onet model not found"):
        MtcnnDetector.from_models_dir(tmp_path)


def test_a_broken_sidecar_is_one_line(tmp_path: Path) -> None:
    (tmp_path / SIDECAR).write_text('{"format": 1, "networks": {}}')
    with pytest.raises(MtcnnError, match=r"not a valid MTCNN sidecar.*no entry for pnet, rnet, onet"):
        MtcnnDetector.from_models_dir(tmp_path)
