"""Acceptance for keras-vggface (issue 3): seeded weights -> `clockface convert` -> device Embedder.

The release weights cannot be downloaded here, so each architecture is built
by keras-vggface itself with SEEDED random weights and saved with Keras 2's
`save_weights` to .h5, the layout of the release files; the real loader
(by order for resnet50/senet50, by name for vgg16) reads it back. The oracle is
that very Keras model: the device runtime, fed BGR uint8 chips through
`Embedder.embed` (its own preprocessing from the sidecar), must reproduce its
embeddings: float32 relative L2 <= 1e-5, float16 <= 1e-3; dynamic and int8 are
reported (and only checked for sanity).

Time budget (2 cores): float32 for all three architectures (senet50 through
the real download code, interrupted once and resumed), float16/dynamic/int8
for resnet50 only; about 3-4 minutes in all.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from converter.cli import convert
from converter.models import known_models
from converter.vggface import SPECS, VGGFACE1_MEAN_BGR, VGGFACE2_MEAN_BGR, VGGFACE_CHIP, VggFaceError, read_source
from device.vision.model_card import load_card
from tests.conftest import require, skip_unless_ci

SHARED_FACES = Path(__file__).resolve().parents[2].parent / "shared" / "faces"
RELATIVE_L2 = {"none": 1e-5, "float16": 1e-3}
SEED = 20240601


def _range_server():
    """The Range-capable test server lives in test_download.py; load it by path (tests/ is not a package)."""
    name = "_clockface_range_server"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("test_download.py"))
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    return sys.modules[name].RangeServer


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- fast: no TensorFlow


def test_registry_and_sidecar_fields_without_tensorflow() -> None:
    code = (
        "import sys; from converter.models import known_models; import converter.cli; "
        "m = known_models(); assert {'vggface-resnet50','vggface-senet50','vggface-vgg16'} <= set(m); "
        "bad = [n for n in ('tensorflow', 'tf_keras', 'keras', 'keras_vggface') if n in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])
    models = known_models()
    for name, size in (("vggface-resnet50", 2048), ("vggface-senet50", 2048), ("vggface-vgg16", 512)):
        spec = models[name]
        assert (spec.embedding_size, spec.colour_order, spec.metric) == (size, "BGR", "cosine")
        assert spec.chip == VGGFACE_CHIP and spec.chip.size == (224, 224)
        assert spec.threshold == 0.5 and spec.threshold_calibrated is False
        assert spec.normalisation.scale == 1.0
    assert models["vggface-resnet50"].normalisation.mean == VGGFACE2_MEAN_BGR == (91.4953, 103.8827, 131.0912)
    assert models["vggface-vgg16"].normalisation.mean == VGGFACE1_MEAN_BGR  # keras-vggface: version=1 for vgg16
    assert [SPECS[n].load_by_name for n in ("vggface-resnet50", "vggface-senet50", "vggface-vgg16")] == [
        False,
        False,
        True,
    ]


def test_reader_rejects_foreign_files_before_tensorflow(tmp_path: Path) -> None:
    import h5py

    html = tmp_path / "rcmalli_vggface_tf_notop_resnet50.h5"
    html.write_text("<html>rate limited</html>")
    with pytest.raises(VggFaceError, match="not an HDF5 file"):
        read_source("vggface-resnet50", html)
    short = tmp_path / "short.h5"
    with h5py.File(short, "w") as f:
        f.attrs["layer_names"] = [b"conv1/7x7_s2"]
        f.create_group("conv1/7x7_s2").attrs["weight_names"] = [b"conv1/7x7_s2/kernel:0"]
    with pytest.raises(VggFaceError, match="holds 1 layers with weights, resnet50 notop has 106"):
        read_source("vggface-resnet50", short)


def test_int8_without_calibration_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(convert, ["vggface-resnet50", "--quantize", "int8", "-o", str(tmp_path)])
    assert result.exit_code == 2 and "--calibration" in result.output


def test_download_without_a_hash_is_refused(tmp_path: Path) -> None:
    args = [
        "vggface-resnet50",
        "-o",
        str(tmp_path / "out"),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--weights-url",
        "http://127.0.0.1:9/",
    ]
    result = CliRunner().invoke(convert, args)
    assert result.exit_code == 1
    assert (
        result.output.strip()
        .splitlines()[-1]
        .startswith("clockface: error: no pinned SHA-256 for rcmalli_vggface_tf_notop_resnet50.h5")
    )
    assert not (tmp_path / "out").exists()


def test_corrupted_download_is_rejected_by_the_cli(tmp_path: Path) -> None:
    RangeServer = _range_server()
    good = b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 400
    server = RangeServer({"rcmalli_vggface_tf_notop_resnet50.h5": good}, corrupt=True)
    try:
        args = [
            "vggface-resnet50",
            "-o",
            str(tmp_path / "out"),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--weights-url",
            server.base_url,
            "--sha256",
            hashlib.sha256(good).hexdigest(),
            "--json",
        ]
        result = CliRunner().invoke(convert, args)
    finally:
        server.close()
    assert result.exit_code == 1, result.output
    error = result.output.strip().splitlines()[-1]
    assert "does not match the expected" in error and "deleted" in error
    assert list((tmp_path / "cache").iterdir()) == [] and not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- slow: TensorFlow


@pytest.fixture(scope="module")
def source_models(tmp_path_factory: pytest.TempPathFactory):
    """name -> (weights .h5, the Keras model the file was written from); built on first use."""
    require("tensorflow", "conversion needs pip install '.[converter]'")
    require("tf_keras", "keras-vggface needs tf-keras: pip install --no-deps tf-keras==2.21.0")
    if importlib.util.find_spec("keras_vggface") is None:  # not imported here: it needs the shim
        skip_unless_ci("keras-vggface is not installed: pip install '.[converter]'")
    from tests.converter.seeded import write_seeded_weights

    folder = tmp_path_factory.mktemp("weights")
    cache: dict[str, tuple[Path, object]] = {}

    def get(name: str) -> tuple[Path, object]:
        if name not in cache:
            path = folder / f"seeded_{SPECS[name].architecture}.h5"
            cache[name] = (path, write_seeded_weights(SPECS[name], path, seed=SEED))
        return cache[name]

    return get


@pytest.fixture(scope="module")
def chips(request: pytest.FixtureRequest) -> list[np.ndarray]:
    """BGR uint8 224x224 chips the device would make: real faces when ../shared is here, else seeded noise."""
    found: list[np.ndarray] = []
    if SHARED_FACES.is_dir():
        from device.camera.images import read_image
        from device.vision.faces import crop_faces

        for path in sorted(SHARED_FACES.glob("[a-z]*/1.jpg"))[:6]:
            found += crop_faces(read_image(path), VGGFACE_CHIP, request.getfixturevalue("mtcnn_detector"))[:1]
    rng = np.random.default_rng(SEED)
    found += [rng.integers(0, 256, (224, 224, 3), dtype=np.uint8) for _ in range(8 - len(found))]
    return found


@pytest.fixture(scope="module")
def calibration_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small folder of real face photos (symlinks into ../shared/faces), like an enrolment folder."""
    if not SHARED_FACES.is_dir():
        pytest.skip(f"int8 calibration needs real face photos: {SHARED_FACES} not found")
    folder = tmp_path_factory.mktemp("calibration")
    photos = sorted(p for p in SHARED_FACES.glob("[a-z]*/*.jpg"))[:32]
    for i, photo in enumerate(photos):
        (folder / f"{i:02d}_{photo.parent.name}.jpg").symlink_to(photo)
    return folder


def run_convert(args: list[str]) -> dict:
    result = CliRunner().invoke(convert, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout[result.stdout.index("{") :])


def device_vs_keras(tflite: Path, keras_model, chips: list[np.ndarray]) -> dict[str, float]:
    """Embeddings from the device runtime (uint8 BGR chips in) against the Keras model on the same chips."""
    from device.vision.embedder import Embedder, chip_to_tensor

    embedder = Embedder(tflite, threads=2)
    got = np.stack([embedder.embed(c) for c in chips]).astype(np.float64)
    tensors = np.stack([chip_to_tensor(c, embedder.card) for c in chips])
    want = np.asarray(keras_model(tensors, training=False), np.float64)
    a, b = want - want.mean(0), got - want.mean(0)
    return {
        "relative_l2": float(np.linalg.norm(got - want) / np.linalg.norm(want)),
        "max_abs": float(np.abs(got - want).max()),
        "centred_cosine_min": float(np.min(np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)))),
    }


CASES = [
    ("vggface-resnet50", "none"),
    ("vggface-vgg16", "none"),
    ("vggface-resnet50", "float16"),
    ("vggface-resnet50", "dynamic"),
    ("vggface-resnet50", "int8"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "quantize"), CASES, ids=[f"{n}-{q}" for n, q in CASES])
def test_convert_from_weights_file_matches_keras_on_device(
    name: str, quantize: str, source_models, chips, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    weights, keras_model = source_models(name)
    args = [name, "--weights", str(weights), "-o", str(tmp_path), "--quantize", quantize]
    if quantize == "int8":
        args += ["--calibration", str(request.getfixturevalue("calibration_dir"))]
    summary = run_convert(args)

    stem = name if quantize == "none" else f"{name}-{quantize}"
    tflite = tmp_path / f"{stem}.tflite"
    assert summary["tflite"] == str(tflite) and sorted(p.name for p in tmp_path.iterdir()) == [
        f"{stem}.json",
        f"{stem}.tflite",
    ]
    card = load_card(tflite)
    assert card.name == stem and card.quantization == quantize
    assert card.source_sha256 == sha(weights) and card.source == weights.name
    assert card.check["passed"] and card.check["limits"]["relative_l2"] is not None
    assert card.embedding_size == SPECS[name].embedding_size and card.threshold_calibrated is False
    assert card.input_dtype == ("int8" if quantize == "int8" else "float32")

    fidelity = device_vs_keras(tflite, keras_model, chips)
    print(f"\n{stem}: device vs keras {fidelity}; converter check {card.check['relative_l2_error']:.2e}")
    if quantize in RELATIVE_L2:
        assert fidelity["relative_l2"] <= RELATIVE_L2[quantize], fidelity
    else:  # reported; only a broken export (scrambled ranking) fails
        assert fidelity["centred_cosine_min"] >= 0.5, fidelity


@pytest.mark.slow
def test_convert_through_interrupted_download_resumes_and_matches(source_models, chips, tmp_path: Path) -> None:
    name = "vggface-senet50"
    weights, keras_model = source_models(name)
    RangeServer = _range_server()
    server = RangeServer({SPECS[name].release_file: weights.read_bytes()}, drop_first=True)
    cache = tmp_path / "cache"
    try:
        summary = run_convert(
            [
                name,
                "-o",
                str(tmp_path / "out"),
                "--cache-dir",
                str(cache),
                "--weights-url",
                server.base_url,
                "--sha256",
                sha(weights),
            ]
        )
    finally:
        server.close()
    assert [r["range"] is not None for r in server.requests] == [False, True]  # cut once, resumed with Range
    assert sorted(p.name for p in cache.iterdir()) == [SPECS[name].release_file]
    card = load_card(Path(summary["tflite"]))
    assert card.source_sha256 == sha(weights) and card.source.endswith("/" + SPECS[name].release_file)
    fidelity = device_vs_keras(Path(summary["tflite"]), keras_model, chips)
    assert fidelity["relative_l2"] <= RELATIVE_L2["none"], fidelity


@pytest.mark.slow
def test_shim_leaves_keras3_in_place_and_loader_follows_keras_vggface(source_models, tmp_path: Path) -> None:
    import keras

    from converter.vggface import build, load_weights

    weights, keras_model = source_models("vggface-vgg16")
    assert sys.modules["keras"] is keras and keras.__version__.startswith("3.")
    model = build("vgg16")
    load_weights(model, SPECS["vggface-vgg16"], weights)
    for got, want in zip(model.get_weights(), keras_model.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
    # Loading by name would silently skip missing layers: a file for another model must fail instead.
    resnet_weights, _ = source_models("vggface-resnet50")
    with pytest.raises(VggFaceError, match="lacks 13 of the 13 vgg16 layers"):
        load_weights(build("vgg16"), SPECS["vggface-vgg16"], resnet_weights)
