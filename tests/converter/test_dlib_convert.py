"""Acceptance: `clockface convert dlib-resnet-v1` reproduces dlib's own descriptors on the device runtime.

The real .dat is converted once per session (module fixture). The oracle is
../shared/reference/dlib/descriptors.json, computed by dlib 20.0.1 itself from the
same .dat on the same chips; the device Embedder (LiteRT, BGR chips in) must match
each stored 128-d descriptor within 1e-4 max abs.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from converter.cli import convert
from converter.models import DLIB_TEMPLATE_MTCNN_ON_DLIB_CHIPS, DLIB_THRESHOLD
from converter.tflite_export import FidelityLimits
from device.vision.embedder import Embedder
from device.vision.model_card import ModelCardError, load_card, sha256_file
from tests.conftest import require

pytestmark = pytest.mark.slow

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
REFERENCE = SHARED / "reference" / "dlib"
DESCRIPTOR_TOLERANCE = 1e-4
BUILTIN_OPS = {"ADD", "AVERAGE_POOL_2D", "CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D", "MEAN", "PAD", "SUB"}


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory, dat_path: Path) -> dict:
    require("tensorflow", "conversion needs pip install '.[converter]'")
    out = tmp_path_factory.mktemp("models")
    result = CliRunner().invoke(convert, ["dlib-resnet-v1", "--output", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)  # --json keeps stdout pure JSON (Keras chatter is swallowed)
    return {"out": out, "summary": summary, "tflite": Path(summary["tflite"])}


@pytest.fixture(scope="module")
def references() -> list[dict]:
    path = REFERENCE / "descriptors.json"
    if not path.is_file():
        pytest.skip(f"dlib reference descriptors not found: {path} (../shared beside the repository)")
    return json.loads(path.read_text(encoding="utf-8"))


def test_reproduces_dlib_descriptors(converted: dict, references: list[dict]) -> None:
    embedder = Embedder(converted["tflite"])  # loads and hash-checks the sidecar, like the device
    worst, worst_image, errors = 0.0, "", []
    for entry in references:
        chip = cv2.imread(str(REFERENCE / entry["chip"]), cv2.IMREAD_COLOR)  # BGR, what the device feeds
        assert chip is not None and chip.shape == (150, 150, 3), entry["chip"]
        got = embedder.embed(chip)
        diff = float(np.max(np.abs(got.astype(np.float64) - np.asarray(entry["descriptor"], np.float64))))
        errors.append(diff)
        if diff > worst:
            worst, worst_image = diff, entry["image"]
    print(
        f"\n{len(references)} chips: worst max-abs descriptor difference {worst:.3e} ({worst_image}), median {np.median(errors):.3e}"
    )
    assert len(references) == 62
    assert worst <= DESCRIPTOR_TOLERANCE, f"worst max-abs difference {worst:.3e} on {worst_image}"


def test_same_person_closer_than_threshold_in_reference(converted: dict, references: list[dict]) -> None:
    """Sanity of the whole chain on real faces: dlib's 0.6 separates most same/different pairs."""
    embedder = Embedder(converted["tflite"])
    vecs = np.stack([embedder.embed(cv2.imread(str(REFERENCE / e["chip"]))) for e in references])
    ids = np.array([e["image"].split("/")[0] for e in references])
    dist = np.linalg.norm(vecs[:, None] - vecs[None], axis=-1)
    same = (ids[:, None] == ids[None]) & ~np.eye(len(ids), dtype=bool)
    diff = ids[:, None] != ids[None]
    assert np.mean(dist[same] < 0.6) > 0.9
    assert np.mean(dist[diff] >= 0.6) > 0.9


def test_sidecar_records_the_contract(converted: dict, dat_path: Path) -> None:
    tflite = converted["tflite"]
    card = load_card(tflite)
    assert card.name == "dlib-resnet-v1"
    assert card.source_sha256 == sha256_file(dat_path)
    assert card.model_sha256 == sha256_file(tflite) == converted["summary"]["model_sha256"]
    assert card.chip.size == (150, 150)
    assert card.chip.landmarks == DLIB_TEMPLATE_MTCNN_ON_DLIB_CHIPS and "dlib's 62 reference chips" in card.chip.fit
    assert card.colour_order == "RGB"
    assert card.normalisation.mean == (122.782, 117.001, 104.298)
    assert card.normalisation.scale == 1 / 256
    assert card.embedding_size == 128
    assert card.metric == "euclidean"
    assert card.threshold == DLIB_THRESHOLD and card.threshold_calibrated is True  # the derived value
    assert "tensorflow" in card.converter_version and "clockface" in card.converter_version
    assert card.input_dtype == "float32" and card.quantization == "none"
    assert card.check["passed"] is True
    assert card.check["max_abs_error"] <= 1e-4 and card.check["relative_l2_error"] <= 1e-5
    assert set(card.check["ops"]) <= BUILTIN_OPS, card.check["ops"]
    assert sorted(p.name for p in converted["out"].iterdir()) == ["dlib-resnet-v1.json", "dlib-resnet-v1.tflite"]


def test_summary_json(converted: dict) -> None:
    summary = converted["summary"]
    assert summary["model"] == "dlib-resnet-v1"
    assert summary["size_bytes"] == converted["tflite"].stat().st_size > 20_000_000  # weights really are in there
    assert summary["max_abs_error"] <= 1e-4 and summary["seconds"] > 0


@pytest.mark.parametrize("tamper", ["flip", "truncate", "replace_sidecar_hash"])
def test_tampering_after_export_is_refused(converted: dict, tmp_path: Path, tamper: str) -> None:
    model = tmp_path / "dlib-resnet-v1.tflite"
    shutil.copy(converted["tflite"], model)
    shutil.copy(converted["tflite"].with_suffix(".json"), model.with_suffix(".json"))
    load_card(model)  # intact copy loads
    if tamper == "flip":
        data = bytearray(model.read_bytes())
        data[len(data) // 2] ^= 0x01
        model.write_bytes(bytes(data))
    elif tamper == "truncate":
        model.write_bytes(model.read_bytes()[:-1000])
    else:
        side = json.loads(model.with_suffix(".json").read_text())
        side["model_sha256"] = "0" * 64
        model.with_suffix(".json").write_text(json.dumps(side))
    with pytest.raises(ModelCardError, match="does not match the sha256"):
        load_card(model)


def test_failed_check_writes_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, converted: dict) -> None:
    """With impossible limits the export must be refused in one line and leave --output empty."""
    import converter.models as models

    spec = models.get_spec("dlib-resnet-v1")
    monkeypatch.setitem(models._REGISTRY, spec.name, dataclasses.replace(spec, limits=FidelityLimits(0.0, 0.0, None)))
    out = tmp_path / "out"
    result = CliRunner().invoke(convert, ["dlib-resnet-v1", "--output", str(out)])
    assert result.exit_code != 0
    error = [line for line in result.output.splitlines() if line.startswith("clockface: error: ")]
    assert len(error) == 1 and "beyond limits" in error[0] and "max_abs" in error[0] and "nothing written" in error[0]
    assert not out.exists() or not any(out.iterdir())
