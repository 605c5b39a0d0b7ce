"""`clockface convert mtcnn`: bad weights stop it with one line before anything is written; good
weights give three builtin-op TFLite files and a sidecar that binds them by hash; the device's
crop and pyramid arithmetic equals the package's TensorFlow arithmetic."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from converter.cli import convert
from device.vision.model_card import sha256_file
from tests.conftest import require, shared_path

BUILTIN_OPS = {"CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D", "PACK", "PRELU", "RESHAPE", "SHAPE", "SOFTMAX"}
BUILTIN_OPS |= {"STRIDED_SLICE", "TRANSPOSE"}


@pytest.fixture
def weights_copy(tmp_path: Path) -> Path:
    """The installed package's three weights files, copied so a test can break one."""
    require("lz4", "the mtcnn weights reader needs pip install '.[converter]'")
    require("joblib", "the mtcnn weights reader needs pip install '.[converter]'")
    from converter.mtcnn_weights import NETWORKS, default_weights_dir

    folder = tmp_path / "weights"
    folder.mkdir()
    for name in NETWORKS:
        shutil.copy(default_weights_dir() / f"{name}.lz4", folder / f"{name}.lz4")
    return folder


def _error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1, result.output
    assert len(lines) == 1 and lines[0].startswith("clockface: error: "), result.output
    return lines[0]


def _convert_with(weights: Path, out: Path):
    return CliRunner().invoke(convert, ["mtcnn", "--source", str(weights), "--output", str(out)])


def test_truncated_weights_are_one_line_and_nothing_is_written(weights_copy: Path, tmp_path: Path) -> None:
    rnet = weights_copy / "rnet.lz4"
    rnet.write_bytes(rnet.read_bytes()[: rnet.stat().st_size // 2])
    line = _error_line(_convert_with(weights_copy, tmp_path / "out"))
    assert "rnet.lz4" in line and "not a whole lz4 file" in line
    assert not (tmp_path / "out").exists()


def test_another_networks_weights_are_one_line_and_nothing_is_written(weights_copy: Path, tmp_path: Path) -> None:
    shutil.copy(weights_copy / "onet.lz4", weights_copy / "pnet.lz4")
    line = _error_line(_convert_with(weights_copy, tmp_path / "out"))
    assert "pnet.lz4" in line and "do not match mtcnn 1.0.0's pnet" in line
    assert not (tmp_path / "out").exists()


def test_a_foreign_pickle_is_refused_without_running_it(weights_copy: Path, tmp_path: Path) -> None:
    import lz4.frame

    marker = tmp_path / "ran"
    payload = pickle.dumps(_Exploit(f"touch {marker}"))
    (weights_copy / "onet.lz4").write_bytes(lz4.frame.compress(payload))
    line = _error_line(_convert_with(weights_copy, tmp_path / "out"))
    assert "onet.lz4" in line and "not an mtcnn weights file" in line
    assert not marker.exists(), "the pickle's code ran"
    assert not (tmp_path / "out").exists()


class _Exploit:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_mtcnn_is_listed() -> None:
    result = CliRunner().invoke(convert, ["--list"])
    assert result.exit_code == 0
    assert any(line.startswith("mtcnn ") for line in result.output.splitlines()), result.output


def test_quantisation_is_refused_for_mtcnn(tmp_path: Path) -> None:
    result = CliRunner().invoke(convert, ["mtcnn", "--quantize", "int8", "--output", str(tmp_path / "out")])
    assert result.exit_code == 2 and "do not apply" in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_conversion_writes_three_verified_networks_and_one_sidecar(tmp_path: Path) -> None:
    require("tensorflow", "conversion needs pip install '.[converter]'")
    require("mtcnn", "conversion needs pip install '.[converter]'")
    photos = shared_path("faces")
    out = tmp_path / "models"
    result = CliRunner().invoke(convert, ["mtcnn", "--output", str(out), "--calibration", str(photos), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output[result.output.index("{") :])
    card = json.loads((out / "mtcnn.json").read_text())
    assert sorted(p.name for p in out.iterdir()) == [
        "mtcnn-onet.tflite",
        "mtcnn-pnet.tflite",
        "mtcnn-rnet.tflite",
        "mtcnn.json",
    ]
    assert card["colour_order"] == "RGB" and card["mean"] == 127.5 and card["scale"] == 1 / 128
    assert card["defaults"] == {
        "min_face_size": 20,
        "min_size": 12,
        "scale_factor": 0.709,
        "threshold_pnet": 0.6,
        "nms_pnet1": 0.5,
        "nms_pnet2": 0.7,
        "threshold_rnet": 0.7,
        "nms_rnet": 0.7,
        "threshold_onet": 0.8,
        "nms_onet": 0.7,
    }
    shapes = {"pnet": [-1, -1, -1, 3], "rnet": [-1, 24, 24, 3], "onet": [-1, 48, 48, 3]}
    for name, entry in card["networks"].items():
        assert entry["sha256"] == sha256_file(out / entry["file"])
        assert entry["input_shape"] == shapes[name]
        assert entry["check"]["passed"] and entry["check"]["max_abs_error"] <= 1e-4
        assert set(entry["check"]["ops"]) <= BUILTIN_OPS, entry["check"]["ops"]
        assert entry["check"]["photos"] == str(photos)
        assert summary["max_abs_error"][name] <= 1e-4
    print(f"\nmtcnn export max_abs on LiteRT: {summary['max_abs_error']} over {summary['check_inputs']} inputs")


@pytest.mark.slow
def test_device_crops_and_pyramid_are_the_packages_arithmetic() -> None:
    """The device's crop_and_resize, area resize and pyramid against tf.image.crop_and_resize,
    tf.image.resize(method="area") and build_scale_pyramid."""
    tf = require("tensorflow", "the reference needs pip install '.[converter]'")
    require("mtcnn", "the reference needs pip install '.[converter]'")
    from mtcnn.utils.images import build_scale_pyramid

    from device.vision.mtcnn import MtcnnSettings, crop_and_resize, pyramid_scales, resize_area

    rng = np.random.default_rng(3)
    image = rng.uniform(-1, 1, size=(83, 121, 3)).astype(np.float32)
    boxes = np.array([[10.3, 5.7, 60.2, 55.6, 0], [-12.0, -8.5, 30.4, 33.9, 0], [100.5, 60.1, 140.0, 99.6, 0]])
    for size in (24, 48):
        selector = [1, 0, 3, 2]  # the package's extract_patches: y1/H, x1/W, y2/H, x2/W
        norm = boxes[:, selector] / np.array([83, 121, 83, 121])
        expected = tf.image.crop_and_resize(image[None], norm, np.zeros(len(boxes), np.int32), (size, size)).numpy()
        got = crop_and_resize(image, boxes, size)
        assert np.abs(got - expected).max() < 5e-5  # TF samples at float32 positions, the device at float64
    photo = rng.uniform(-1, 1, size=(1365, 2048, 3)).astype(np.float32)  # the size where OpenCV's area differed
    for scale in (0.6, 0.6 * 0.709**2, 0.6 * 0.709**11):
        height, width = (int(d * scale) for d in photo.shape[:2])
        expected = tf.image.resize(photo[None], np.asarray(photo.shape[:2]) * scale, method="area").numpy()[0]
        assert expected.shape[:2] == (height, width)
        np.testing.assert_array_equal(resize_area(photo, width, height), expected)  # bit for bit
    settings = MtcnnSettings()
    for width, height in ((250, 180), (2280, 1588), (150, 150), (30, 600)):
        expected = build_scale_pyramid(width, height, min_face_size=20, scale_factor=0.709)
        np.testing.assert_allclose(pyramid_scales(width, height, settings), expected)
