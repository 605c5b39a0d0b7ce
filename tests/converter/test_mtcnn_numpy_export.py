"""`clockface convert mtcnn --backend numpy`: the device's detector, made without TensorFlow.

Converted once per module in a subprocess where importing tensorflow/keras raises;
the four files must pass the device's sidecar checks, give the TensorFlow-made
files' outputs within 1e-5 on crops of the real photos, and make the device's
MTCNN detector find the same boxes and landmarks on every photo of ../shared/faces.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import converter.mtcnn_numpy_export as mne
from converter.mtcnn import check_images, crop_inputs, pnet_inputs
from converter.mtcnn_weights import NETWORKS, read_weights
from converter.tflite_export import ExportCheckError, tflite_ops
from device.camera.images import is_image_file, read_image
from device.vision.mtcnn import CROP_SIZES, NETWORK_FILES, OUTPUT_CHANNELS, MtcnnDetector, _Network, load_mtcnn_card
from tests.conftest import require, shared_path
from tests.converter.no_tensorflow import convert_without_tensorflow

SAME_AS_TENSORFLOW = 1e-5
SAME_DETECTIONS_PX = 1e-3


class _Progress:
    def step(self) -> None:
        pass


@pytest.fixture(scope="module")
def weights():
    require("lz4", "the mtcnn weights reader needs lz4 and joblib (pip install '.[convert-numpy]')")
    try:
        return read_weights()
    except FileNotFoundError as exc:  # SourceNotFoundError: the mtcnn wheel is not installed
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def numpy_models(tmp_path_factory: pytest.TempPathFactory, weights) -> dict:
    out = tmp_path_factory.mktemp("numpy-mtcnn")
    photos = shared_path("faces")
    args = ["mtcnn", "--backend", "numpy", "--output", str(out), "--calibration", str(photos)]
    summary, loaded = convert_without_tensorflow(args)
    return {"out": out, "summary": summary, "loaded": loaded}


def test_converts_without_importing_tensorflow(numpy_models: dict) -> None:
    assert numpy_models["loaded"] == []
    summary = numpy_models["summary"]
    assert summary["model"] == "mtcnn" and sum(summary["check_inputs"].values()) > 0
    assert all(e <= 1e-4 for e in summary["max_abs_error"].values()), summary["max_abs_error"]
    assert sorted(p.name for p in numpy_models["out"].iterdir()) == sorted([*NETWORK_FILES.values(), "mtcnn.json"])


def test_sidecar_passes_the_device_checks(numpy_models: dict) -> None:
    card = load_mtcnn_card(numpy_models["out"])  # every file against its sha256
    assert "numpy backend (converter/mtcnn_numpy_export.py)" in card.converter_version
    assert "tensorflow" not in card.converter_version
    assert card.networks["pnet"].input_shape == [-1, -1, -1, 3]  # the device resizes H x W per scale
    assert card.networks["rnet"].input_shape == [-1, 24, 24, 3]
    assert card.networks["onet"].input_shape == [-1, 48, 48, 3]
    for name, entry in card.networks.items():
        assert entry.check["passed"] is True and entry.outputs == OUTPUT_CHANNELS[name]
        ops = set(tflite_ops((numpy_models["out"] / entry.file).read_bytes()))
        assert {"CONV_2D", "PRELU", "MAX_POOL_2D", "SOFTMAX"} <= ops
        assert not ops & {"SHAPE", "PACK", "STRIDED_SLICE"}  # Flatten is a constant reshape here


def _by_channels(outputs: list[np.ndarray]) -> dict[int, np.ndarray]:
    return {o.shape[-1]: o for o in outputs}


@pytest.mark.parametrize("name", NETWORKS)
def test_reference_forward_is_the_keras_network(weights, name: str) -> None:
    """The check's own side: the float64 NumPy pass reproduces the package's Keras network."""
    require("tensorflow", "the Keras networks need pip install '.[converter]'")
    from converter.mtcnn import build_network

    images = check_images(None)  # seeded noise, as the check uses without photos
    x = pnet_inputs(images)[1] if name == "pnet" else crop_inputs(images, CROP_SIZES[name])[0]
    keras = _by_channels([np.asarray(o) for o in build_network(weights[name])(x, training=False)])
    ours = _by_channels(mne.reference_forward(weights[name], x))
    assert sorted(keras) == sorted(ours)
    for channels, expected in keras.items():
        assert np.max(np.abs(ours[channels] - expected)) < 1e-5, channels


@pytest.fixture(scope="module")
def tensorflow_models(models_dir: Path) -> Path:
    """The TensorFlow-made MTCNN (tests/conftest.py converts it once per session)."""
    return models_dir


@pytest.mark.slow
def test_same_outputs_as_the_tensorflow_files(numpy_models: dict, tensorflow_models: Path) -> None:
    images = check_images(shared_path("faces"))
    inputs = {"pnet": pnet_inputs(images), "rnet": crop_inputs(images, 24), "onet": crop_inputs(images, 48, seed=1)}
    for name in NETWORKS:
        ours = _Network(numpy_models["out"] / NETWORK_FILES[name], OUTPUT_CHANNELS[name])
        theirs = _Network(tensorflow_models / NETWORK_FILES[name], OUTPUT_CHANNELS[name])
        worst = max(
            float(np.max(np.abs(ours.run(x)[out] - theirs.run(x)[out]))) for x in inputs[name] for out in ours.run(x)
        )
        print(f"\n{name}: {len(inputs[name])} inputs, numpy-built vs TensorFlow-built max abs {worst:.3e}")
        assert worst <= SAME_AS_TENSORFLOW, name


@pytest.mark.slow
def test_the_detector_finds_the_same_faces(numpy_models: dict, tensorflow_models: Path) -> None:
    ours = MtcnnDetector.from_models_dir(numpy_models["out"])
    theirs = MtcnnDetector.from_models_dir(tensorflow_models)
    photos = sorted(p for p in shared_path("faces").rglob("*") if is_image_file(p))
    faces, worst = 0, 0.0
    for path in photos:
        image = read_image(path)
        a, b = ours.detect(image), theirs.detect(image)
        assert len(a) == len(b), path
        for x, y in zip(a, b, strict=True):
            worst = max(worst, float(np.max(np.abs(np.subtract(x.box, y.box)))))
            worst = max(worst, float(np.max(np.abs(x.landmarks - y.landmarks))))
        faces += len(a)
    print(f"\n{len(photos)} photos, {faces} faces: numpy-built vs TensorFlow-built worst {worst:.2e} px")
    assert faces > len(photos) // 2 and worst <= SAME_DETECTIONS_PX


def test_a_wrong_export_is_refused_and_nothing_written(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, weights
) -> None:
    """A writer bug (R-/O-Net's permute left out) is caught by the NumPy reference before any file exists."""
    real = mne.GraphBuilder.op

    def no_permute(self, op, inputs, output_shape, name, options=None):
        if op == "TRANSPOSE":
            return inputs[0]
        return real(self, op, inputs, output_shape, name, options)

    monkeypatch.setattr(mne.GraphBuilder, "op", no_permute)
    with pytest.raises(ExportCheckError, match="nothing written"):
        mne.run_mtcnn_numpy_conversion(tmp_path / "out", None, _Progress(), None)
    assert list(tmp_path.iterdir()) == []
