"""Generic Keras -> TFLite export, fidelity check on the device's runtime, and atomic write.

Shared by every model the converter knows (dlib ResNet v1, keras-vggface ResNet50/SENet50/VGG16):
a model-specific builder produces a Keras model; this module turns it into TFLite bytes,
proves the bytes compute what the Keras model computes, and only then writes the
.tflite and its sidecar.

Why so careful: `TFLiteConverter.from_concrete_functions` once silently dropped all
weights of a Keras 3 model (a 43 KB file that output NaN). We use `from_keras_model`
and never write a file whose outputs were not compared with the source model's,
on LiteRT (what the device runs), not on `tf.lite`.

Why one module over 300 lines: export, verification and the atomic write are one guarded step; a file is written only by the code that just proved it, which is easier to see in one place.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import numpy as np

from device.vision.model_card import ChipGeometry, ModelCard, Normalisation, load_card

Quantize = Literal["none", "float16", "dynamic", "int8"]
QUANTIZE_MODES: tuple[str, ...] = ("none", "float16", "dynamic", "int8")


class ExportCheckError(RuntimeError):
    """The TFLite export does not reproduce the Keras model within limits: nothing is written."""

    def __init__(self, message: str, report: FidelityReport | None = None) -> None:
        super().__init__(message)
        self.report = report


# --------------------------------------------------------------------------- fidelity


@dataclass(frozen=True)
class FidelityLimits:
    """Upper bounds on export error; None disables a bound.

    max_abs is in output units (scale-dependent: set it per model); relative_l2 is
    ||tflite - keras|| / ||keras|| over all check outputs; centred_cosine_min is the
    lowest cosine between keras and tflite outputs after subtracting the mean keras
    output (raw cosine says nothing on random weights, where all outputs agree > 0.999).
    """

    max_abs: float | None = 1e-4
    relative_l2: float | None = 1e-5
    centred_cosine_min: float | None = 0.9999


def default_limits(quantize: str = "none") -> FidelityLimits:
    """Starting points per quantisation mode; a model spec may override them."""
    if quantize == "none":
        return FidelityLimits(max_abs=1e-4, relative_l2=1e-5, centred_cosine_min=0.9999)
    if quantize == "float16":
        return FidelityLimits(max_abs=None, relative_l2=1e-2, centred_cosine_min=0.999)
    if quantize == "dynamic":
        return FidelityLimits(max_abs=None, relative_l2=5e-2, centred_cosine_min=0.99)
    if quantize == "int8":
        return FidelityLimits(max_abs=None, relative_l2=1e-1, centred_cosine_min=0.95)
    raise ValueError(f"unknown quantize mode {quantize!r} (expected one of {', '.join(QUANTIZE_MODES)})")


@dataclass(frozen=True)
class FidelityReport:
    """How closely the TFLite bytes, run on LiteRT, reproduce the Keras model."""

    max_abs_error: float
    relative_l2_error: float
    centred_cosine_min: float
    passed: bool
    limits: FidelityLimits
    num_inputs: int = 0
    input_shape: tuple[int, ...] = ()
    input_dtype: str = "float32"
    output_shape: tuple[int, ...] = ()
    ops: tuple[str, ...] = ()
    runtime: str = ""
    failures: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the sidecar's `check` field)."""
        data = asdict(self)
        for key in ("input_shape", "output_shape", "ops", "failures"):
            data[key] = list(data[key])
        return data

    def summary(self) -> str:
        return (
            f"max_abs {self.max_abs_error:.2e}, rel_l2 {self.relative_l2_error:.2e}, "
            f"centred_cos_min {self.centred_cosine_min:.6f} over {self.num_inputs} inputs"
        )


def _failures(max_abs: float, rel_l2: float, cos_min: float, limits: FidelityLimits) -> tuple[str, ...]:
    """Names every violated bound with its numbers; NaN always fails (a weightless export gives NaN)."""
    out = []
    if not all(math.isfinite(v) for v in (max_abs, rel_l2)):
        out.append(f"non-finite error (max_abs {max_abs}, rel_l2 {rel_l2})")
    if limits.max_abs is not None and not max_abs <= limits.max_abs:
        out.append(f"max_abs {max_abs:.3e} > {limits.max_abs:.1e}")
    if limits.relative_l2 is not None and not rel_l2 <= limits.relative_l2:
        out.append(f"relative_l2 {rel_l2:.3e} > {limits.relative_l2:.1e}")
    if limits.centred_cosine_min is not None and not cos_min >= limits.centred_cosine_min:
        out.append(f"centred_cosine_min {cos_min:.6f} < {limits.centred_cosine_min}")
    return tuple(out)


def compare_outputs(reference: np.ndarray, candidate: np.ndarray, limits: FidelityLimits) -> FidelityReport:
    """Pure NumPy comparison of (N, D) outputs; separate from running models so it is unit-testable."""
    ref = np.asarray(reference, np.float64).reshape(len(reference), -1)
    got = np.asarray(candidate, np.float64).reshape(len(candidate), -1)
    if ref.shape != got.shape:
        raise ExportCheckError(f"TFLite output shape {got.shape} differs from the Keras output shape {ref.shape}")
    diff = got - ref
    max_abs = float(np.max(np.abs(diff))) if diff.size else 0.0
    denom = float(np.linalg.norm(ref))
    rel_l2 = float(np.linalg.norm(diff) / denom) if denom > 0 else float(np.linalg.norm(diff))
    centre = ref.mean(axis=0, keepdims=True)
    a, b = ref - centre, got - centre
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    if len(ref) < 2 or not np.all(norms > 0):
        cos_min = float("nan")  # undefined with one input (or identical inputs): not used for pass/fail
        limits_used = FidelityLimits(limits.max_abs, limits.relative_l2, None)
    else:
        cos_min = float(np.min(np.sum(a * b, axis=1) / norms))
        limits_used = limits
    failures = _failures(max_abs, rel_l2, cos_min, limits_used)
    return FidelityReport(
        max_abs_error=max_abs,
        relative_l2_error=rel_l2,
        centred_cosine_min=cos_min,
        passed=not failures,
        limits=limits,
        num_inputs=len(ref),
        failures=failures,
    )


# --------------------------------------------------------------------------- export


def export_tflite(
    keras_model: Any,
    quantize: Quantize = "none",
    representative: Callable[[], Iterable[np.ndarray]] | None = None,
) -> bytes:
    """Convert with `TFLiteConverter.from_keras_model`, builtin ops only.

    `representative` (required for "int8") returns an iterable of already-normalised
    float32 inputs shaped like the model input, batch dimension included. Full int8
    also makes the input/output tensors int8; the device Embedder (de)quantises them.
    """
    import tensorflow as tf

    if quantize not in QUANTIZE_MODES:
        raise ValueError(f"unknown quantize mode {quantize!r} (expected one of {', '.join(QUANTIZE_MODES)})")
    converter = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize in ("float16", "dynamic", "int8"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantize == "int8":
        if representative is None:
            raise ValueError("int8 quantisation needs a representative dataset (real chips, normalised)")
        converter.representative_dataset = lambda: ([np.asarray(x, np.float32)] for x in representative())
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    with contextlib.redirect_stdout(io.StringIO()):  # Keras prints "Saved artifact at ..." on stdout
        data = converter.convert()
    if not data:
        raise ExportCheckError("the TFLite converter returned an empty model")
    return bytes(data)


def tflite_ops(tflite_bytes: bytes) -> tuple[str, ...]:
    """Builtin op names in the model, read without the default XNNPACK delegate (which would show as DELEGATE)."""
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        interp = Interpreter(
            model_content=tflite_bytes, experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        )
        return tuple(sorted({op["op_name"] for op in interp._get_ops_details()}))
    except (ImportError, AttributeError, KeyError, ValueError, RuntimeError):  # private API: informational only
        return ()


class _LiteRTRunner:
    """Runs TFLite bytes on LiteRT one sample at a time, (de)quantising int8 I/O like device.vision.embedder."""

    def __init__(self, tflite_bytes: bytes, threads: int = 2) -> None:
        from ai_edge_litert.interpreter import Interpreter

        from device.vision.embedder import filtered_native_stderr

        with filtered_native_stderr():  # the same XNNPACK INFO line the device filters
            self.interp = Interpreter(model_content=tflite_bytes, num_threads=threads)
            self.interp.allocate_tensors()
        self.inp = self.interp.get_input_details()[0]
        self.out = self.interp.get_output_details()[0]

    def run(self, x: np.ndarray) -> np.ndarray:
        dtype = self.inp["dtype"]
        if dtype in (np.int8, np.uint8):
            scale, zero = self.inp["quantization"]
            info = np.iinfo(dtype)
            x = np.clip(np.round(x / scale + zero), info.min, info.max)
        self.interp.set_tensor(self.inp["index"], np.asarray(x).astype(dtype))
        self.interp.invoke()
        y = self.interp.get_tensor(self.out["index"])
        if self.out["dtype"] in (np.int8, np.uint8):
            scale, zero = self.out["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        return np.asarray(y, np.float32).reshape(-1)


def _runtime_name() -> str:
    try:
        return f"ai-edge-litert {metadata.version('ai-edge-litert')}"
    except metadata.PackageNotFoundError:
        return "ai-edge-litert"


def verify_export(
    keras_model: Any,
    tflite_bytes: bytes,
    check_inputs: np.ndarray,
    limits: FidelityLimits | None = None,
) -> FidelityReport:
    """Run `check_inputs` (N, H, W, C, normalised float32) through Keras and through LiteRT; compare.

    One sample at a time on both sides, so fixed-batch-1 models (dlib) and
    variable-batch models (keras-vggface) are treated the same.
    """
    limits = limits or default_limits("none")
    inputs = np.asarray(check_inputs, np.float32)
    if inputs.ndim != 4 or len(inputs) == 0:
        raise ValueError(f"check_inputs must be a non-empty (N, H, W, C) array, got shape {inputs.shape}")
    runner = _LiteRTRunner(tflite_bytes)
    expected_shape = tuple(int(d) for d in runner.inp["shape"][1:])
    if inputs.shape[1:] != expected_shape:
        raise ExportCheckError(f"TFLite input shape {expected_shape} differs from the check inputs {inputs.shape[1:]}")
    reference = np.stack([np.asarray(keras_model(x[None], training=False), np.float32).reshape(-1) for x in inputs])
    candidate = np.stack([runner.run(x[None]) for x in inputs])
    report = compare_outputs(reference, candidate, limits)
    return FidelityReport(
        **{
            **report.__dict__,
            "input_shape": tuple(int(d) for d in runner.inp["shape"]),
            "input_dtype": np.dtype(runner.inp["dtype"]).name,
            "output_shape": tuple(int(d) for d in runner.out["shape"]),
            "ops": tflite_ops(tflite_bytes),
            "runtime": _runtime_name(),
        }
    )


def synthetic_check_inputs(
    size: tuple[int, int], normalisation: Normalisation, n: int = 8, seed: int = 0
) -> np.ndarray:
    """Seeded 8-bit images (fine noise to coarse blobs), normalised like the device does it.

    Why synthetic: conversion must not depend on a face data set. Scales vary so
    that the outputs differ enough for the centred cosine to mean something.
    Colour order does not matter for random pixels.
    """
    width, height = size
    rng = np.random.default_rng(seed)
    blocks = [1, 2, 3, 5, 8, 13, 21, 34]
    images = []
    for i in range(n):
        b = blocks[i % len(blocks)]
        low = rng.integers(0, 256, size=(-(-height // b), -(-width // b), 3), dtype=np.uint8)
        images.append(np.repeat(np.repeat(low, b, axis=0), b, axis=1)[:height, :width])
    pixels = np.stack(images).astype(np.float32)
    mean = np.asarray(normalisation.mean, np.float32)
    return (pixels - mean) * np.float32(normalisation.scale)


# --------------------------------------------------------------------------- write


@dataclass(frozen=True)
class WrittenModel:
    tflite_path: Path
    card_path: Path
    card: ModelCard

    @property
    def size_bytes(self) -> int:
        return self.tflite_path.stat().st_size


def converter_version() -> str:
    """Recorded in the sidecar: the tool versions that produced the bytes (without importing TensorFlow)."""
    parts = []
    for dist in ("clockface", "tensorflow-cpu", "tensorflow", "keras"):
        try:
            parts.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            continue
    return "; ".join(parts) or "unknown"


def _atomic_write(path: Path, data: bytes) -> None:
    """Temp file in the same directory + fsync + os.replace: readers see the old file or the whole new one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), 0o644)  # mkstemp makes 0600; the device service may run as another user
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_model(
    out_dir: Path | str,
    name: str,
    tflite_bytes: bytes,
    *,
    report: FidelityReport,
    source: str,
    source_sha256: str,
    embedding_size: int,
    colour_order: Literal["RGB", "BGR"],
    normalisation: Normalisation,
    chip: ChipGeometry,
    metric: Literal["cosine", "euclidean"],
    threshold: float,
    threshold_calibrated: bool,
    quantization: str = "none",
    notes: str = "",
    converter: str | None = None,
) -> WrittenModel:
    """Write `<name>.tflite` then `<name>.json`, each atomically; refuse if the check failed.

    Order matters: the sidecar carries the model's sha256, so a crash between the
    two replaces leaves at worst a new model with an old sidecar, which
    `load_card` rejects by hash, never a sidecar vouching for a partial model.
    `converter` overrides the recorded tool versions (the numpy backend: no TensorFlow was used).
    """
    if not report.passed:
        raise ExportCheckError(
            f"{name}: TFLite export differs from the Keras model beyond limits: {'; '.join(report.failures)} "
            f"({report.summary()}); nothing written",
            report,
        )
    width, height = chip.size
    if report.input_shape and tuple(report.input_shape) != (1, height, width, 3):
        raise ExportCheckError(
            f"{name}: TFLite input {tuple(report.input_shape)} does not match chip size {chip.size}", report
        )
    if report.output_shape and int(report.output_shape[-1]) != embedding_size:
        raise ExportCheckError(f"{name}: TFLite output {tuple(report.output_shape)} is not {embedding_size}-d", report)

    out_dir = Path(out_dir)
    card = ModelCard(
        name=name,
        embedding_size=embedding_size,
        colour_order=colour_order,
        normalisation=normalisation,
        chip=chip,
        metric=metric,
        threshold=threshold,
        threshold_calibrated=threshold_calibrated,
        source=source,
        source_sha256=source_sha256,
        model_sha256=hashlib.sha256(tflite_bytes).hexdigest(),
        converter_version=converter or converter_version(),
        input_dtype=report.input_dtype,
        quantization=quantization,
        check=report.to_dict(),
        notes=notes,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    tflite_path = out_dir / f"{name}.tflite"
    _atomic_write(tflite_path, tflite_bytes)
    card_path = tflite_path.with_suffix(".json")
    _atomic_write(card_path, card.to_json().encode("utf-8"))
    load_card(tflite_path)  # read back through the device's own contract check
    return WrittenModel(tflite_path, card_path, card)
