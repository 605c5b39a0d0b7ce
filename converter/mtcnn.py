"""`clockface convert mtcnn`: the `mtcnn` package's P-, R- and O-Net -> three verified TFLite files + `mtcnn.json`.

The networks are the package's own Keras definitions (mtcnn/network/*.py)
loaded with its own weights (read and shape-checked by converter/mtcnn_weights.py
before TensorFlow is imported). Each is exported with builtin ops only: P-Net
with a dynamic H x W input (the device resizes it per pyramid scale), R-Net
24x24 and O-Net 48x48 with a dynamic batch. Every output of every network is
compared on LiteRT with the Keras network on real crops (and seeded noise)
before anything is written; the sidecar, which carries the files' hashes, is
written last, so a crash never leaves a sidecar vouching for a partial file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from converter.mtcnn_weights import (
    NETWORKS,
    PACKAGE,
    PACKAGE_VERSION,
    WEIGHTS_SHA256,
    NetworkWeights,
    read_weights,
)
from converter.tflite_export import (
    ExportCheckError,
    FidelityLimits,
    FidelityReport,
    _atomic_write,
    _runtime_name,
    compare_outputs,
    converter_version,
    export_tflite,
    tflite_ops,
)
from device.vision.model_card import sha256_file
from device.vision.mtcnn import (
    CROP_SIZES,
    NETWORK_FILES,
    OUTPUT_CHANNELS,
    SIDECAR,
    MtcnnCard,
    MtcnnError,
    MtcnnSettings,
    NetworkEntry,
    _Network,
    crop_and_resize,
    load_mtcnn_card,
)

NAME = "mtcnn"
DESCRIPTION = "MTCNN face detector with 5 landmarks (P-, R-, O-Net of the mtcnn 1.0.0 package; stills)"
LIMITS = FidelityLimits(max_abs=1e-4, relative_l2=1e-5, centred_cosine_min=None)
CHECK_PHOTOS = 12  # photos of --calibration DIR whose crops check the export
CROPS_PER_PHOTO = 6
PNET_SIDES = (12, 40, 97)  # shorter side of the scaled photos fed to P-Net: its smallest input and two others
LAYOUT = (
    "NHWC, image rows first, RGB, (pixel - 127.5) / 128. mtcnn 1.0.0 feeds images untransposed; the "
    "Caffe-era column-major order survives only in R-/O-Net's Permute((2, 1, 3)) before Flatten, which is "
    "part of the exported graphs, so the device must not transpose."
)


@dataclass(frozen=True)
class MtcnnSummary:
    model: str
    sidecar: str
    files: dict[str, str]
    max_abs_error: dict[str, float]
    check_inputs: dict[str, int]
    source: str
    seconds: float

    def line(self) -> str:
        errors = ", ".join(f"{n} {e:.1e}" for n, e in self.max_abs_error.items())
        counts = sum(self.check_inputs.values())
        return (
            f"{self.model}: wrote {', '.join(Path(f).name for f in self.files.values())} and {Path(self.sidecar).name} "
            f"into {Path(self.sidecar).parent} from {self.source}; max_abs {errors} over {counts} inputs; "
            f"{self.seconds:.1f} s"
        )


def build_network(weights: NetworkWeights) -> Any:
    """The package's Keras network with these weights, wrapped as a functional model for the TFLite converter."""
    import tensorflow as tf
    from mtcnn.network.onet import ONet
    from mtcnn.network.pnet import PNet
    from mtcnn.network.rnet import RNet

    classes = {"pnet": PNet, "rnet": RNet, "onet": ONet}
    net = classes[weights.name]()
    net.build()
    net.set_weights(list(weights.arrays))
    side = CROP_SIZES.get(weights.name)
    inputs = tf.keras.Input(shape=(None, None, 3) if side is None else (side, side, 3), name="image")
    return tf.keras.Model(inputs, net(inputs), name=f"mtcnn_{weights.name}")


# --------------------------------------------------------------------------- check inputs


def _normalised(rgb: np.ndarray) -> np.ndarray:
    card = MtcnnCard(networks={})
    return (rgb.astype(np.float32) - np.float32(card.mean)) * np.float32(card.scale)


def check_images(photos: Path | None, seed: int = 0) -> list[np.ndarray]:
    """Normalised RGB images: real photos from `photos` (sorted, at most CHECK_PHOTOS), else seeded noise."""
    from device.camera.images import ImageReadError, is_image_file, read_image

    images = []
    if photos is not None:
        if not photos.is_dir():
            raise FileNotFoundError(f"photo folder not found: {photos}")
        for path in sorted(p for p in photos.rglob("*") if is_image_file(p)):
            try:
                images.append(_normalised(read_image(path)[:, :, ::-1]))
            except ImageReadError:
                continue
            if len(images) >= CHECK_PHOTOS:
                break
    rng = np.random.default_rng(seed)
    for block in (1, 4, 16):  # seeded noise from fine to coarse, so the check never has no input
        low = rng.integers(0, 256, size=(160 // block + 1, 200 // block + 1, 3), dtype=np.uint8)
        images.append(_normalised(np.repeat(np.repeat(low, block, 0), block, 1)[:160, :200]))
    return images


def pnet_inputs(images: list[np.ndarray]) -> list[np.ndarray]:
    """Each image scaled (area, as the pyramid does) so its shorter side is each of PNET_SIDES."""
    import cv2

    out = []
    for image in images:
        height, width = image.shape[:2]
        for side in PNET_SIDES:
            scale = side / min(height, width)
            size = (max(12, round(width * scale)), max(12, round(height * scale)))
            out.append(cv2.resize(image, size, interpolation=cv2.INTER_AREA)[None])
    return out


def crop_inputs(images: list[np.ndarray], size: int, seed: int = 0) -> list[np.ndarray]:
    """One batch per image of seeded square crops about the middle (where a portrait's face is), via the
    device's own crop_and_resize; some reach past the border, as R-/O-Net crops do."""
    rng = np.random.default_rng(seed)
    out = []
    for image in images:
        height, width = image.shape[:2]
        side = min(height, width) * rng.uniform(0.2, 0.9, CROPS_PER_PHOTO)
        cx = width / 2 + rng.uniform(-0.25, 0.25, CROPS_PER_PHOTO) * width
        cy = height / 2 + rng.uniform(-0.25, 0.25, CROPS_PER_PHOTO) * height
        boxes = np.stack([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2, side], axis=1)
        out.append(crop_and_resize(image, boxes, size))
    return out


# --------------------------------------------------------------------------- verify


def _by_channels(outputs: Any) -> dict[int, np.ndarray]:
    return {int(np.shape(o)[-1]): np.asarray(o, np.float32) for o in outputs}


def verify_network(name: str, keras_model: Any, tflite_bytes: bytes, inputs: list[np.ndarray]) -> FidelityReport:
    """Every output on every input, Keras (or a NumPy reference called like it) vs LiteRT through the
    device's own runner (input resized per shape)."""
    channels = OUTPUT_CHANNELS[name]
    try:
        runner = _Network(tflite_bytes, channels)
    except MtcnnError as exc:
        raise ExportCheckError(f"mtcnn {name}: {exc}; nothing written") from None
    reference: list[np.ndarray] = []
    candidate: list[np.ndarray] = []
    for x in inputs:
        got = runner.run(x)
        expected = _by_channels(keras_model(x, training=False))
        for output, c in channels.items():
            reference.append(expected[c].reshape(-1))
            candidate.append(np.asarray(got[output], np.float32).reshape(-1))
    report = compare_outputs(np.concatenate(reference)[None], np.concatenate(candidate)[None], LIMITS)
    return FidelityReport(
        **{
            **report.__dict__,
            "num_inputs": len(inputs),
            "input_shape": tuple(runner.input_signature),
            "ops": tflite_ops(tflite_bytes),
            "runtime": _runtime_name(),
        }
    )


# --------------------------------------------------------------------------- the command


def _source_label(weights: dict[str, NetworkWeights], default: bool) -> str:
    package = f"{PACKAGE} {PACKAGE_VERSION} (MIT): assets/weights/{{pnet,rnet,onet}}.lz4"
    if not default:
        if all(sha256_file(w.path) == WEIGHTS_SHA256[name] for name, w in weights.items()):
            return f"{package}, from {PACKAGE}-{PACKAGE_VERSION}-py3-none-any.whl (SHA-256 pinned)"
        return str(next(iter(weights.values())).path.parent)
    try:
        return f"{PACKAGE} {metadata.version(PACKAGE)} (MIT): assets/weights/{{pnet,rnet,onet}}.lz4"
    except metadata.PackageNotFoundError:
        return f"{PACKAGE} {PACKAGE_VERSION} weights"


def run_mtcnn_conversion(output: Path, source: Path | None, progress: Any, photos: Path | None) -> MtcnnSummary:
    """read -> import TF -> build -> export -> verify all three -> write all four files (only if all passed)."""
    from converter.cli import _import_tensorflow

    started = time.perf_counter()
    images = check_images(photos)
    progress.step()
    weights = read_weights(source)
    progress.step()
    _import_tensorflow()
    progress.step()
    models = {name: build_network(weights[name]) for name in NETWORKS}
    progress.step()
    exported = {name: export_tflite(models[name]) for name in NETWORKS}
    progress.step()
    return check_and_write(
        output, weights, exported, models, images, photos, source is None, converter_version(), progress, started
    )


def check_and_write(
    output: Path,
    weights: dict[str, NetworkWeights],
    exported: dict[str, bytes],
    references: dict[str, Any],
    images: list[np.ndarray],
    photos: Path | None,
    default_source: bool,
    tools: str,
    progress: Any,
    started: float,
) -> MtcnnSummary:
    """Both backends' last two stages: every output of the exported bytes against `references` (the Keras
    networks, or converter.mtcnn_numpy_export's float64 NumPy ones), then the files, sidecar last."""
    inputs = {
        "pnet": pnet_inputs(images),
        "rnet": crop_inputs(images, CROP_SIZES["rnet"]),
        "onet": crop_inputs(images, CROP_SIZES["onet"], seed=1),
    }
    reports = {name: verify_network(name, references[name], exported[name], inputs[name]) for name in NETWORKS}
    failed = [f"{n}: {'; '.join(r.failures)}" for n, r in reports.items() if not r.passed]
    if failed:
        raise ExportCheckError(
            f"mtcnn: TFLite export differs from its reference beyond limits ({' | '.join(failed)}); nothing written"
        )
    progress.step()

    label = _source_label(weights, default_source)
    import hashlib

    card = MtcnnCard(
        networks={
            name: NetworkEntry(
                file=NETWORK_FILES[name],
                sha256=hashlib.sha256(exported[name]).hexdigest(),
                input_shape=list(reports[name].input_shape),
                outputs=OUTPUT_CHANNELS[name],
                source=weights[name].path.name,
                source_sha256=sha256_file(weights[name].path),
                check={**reports[name].to_dict(), "photos": str(photos) if photos else "none (seeded noise only)"},
            )
            for name in NETWORKS
        },
        layout=LAYOUT,
        defaults=MtcnnSettings(),
        source=label,
        converter_version=tools,
        notes="Run by device/vision/mtcnn.py (pyramid, NMS, refinement as mtcnn 1.0.0's detect_faces).",
    )
    output.mkdir(parents=True, exist_ok=True)
    for name in NETWORKS:
        _atomic_write(output / NETWORK_FILES[name], exported[name])
    _atomic_write(output / SIDECAR, card.to_json().encode("utf-8"))
    load_mtcnn_card(output)  # read back through the device's own hash check
    progress.step()
    return MtcnnSummary(
        model=NAME,
        sidecar=str(output / SIDECAR),
        files={name: str(output / NETWORK_FILES[name]) for name in NETWORKS},
        max_abs_error={name: reports[name].max_abs_error for name in NETWORKS},
        check_inputs={name: len(inputs[name]) for name in NETWORKS},
        source=label,
        seconds=round(time.perf_counter() - started, 2),
    )
