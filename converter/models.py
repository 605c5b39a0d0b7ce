"""Registry of models `clockface convert` knows: name -> ModelSpec.

A spec holds everything the sidecar needs that is not measured at export time
(chip geometry, colour order, metric, default threshold) plus two lazily
imported hooks, so listing models or rejecting a bad source file never imports
TensorFlow:

- `reader`  ("module:function", TensorFlow-free): source Path -> parsed source;
  raises a one-line error on a missing/truncated/foreign file.
- `builder` ("module:function", may import TensorFlow): parsed source ->
  `converter.dlib_model.BuiltModel` (Keras model + normalisation + notes).
- `numpy_builder` (optional "module:function", TensorFlow-free): parsed source ->
  `converter.dlib_numpy_export.NumpyBuilt` (TFLite bytes + a NumPy reference of the
  source network); used by `clockface convert --backend numpy`, which a Pi can run.

keras-vggface models ("vggface-resnet50", "vggface-senet50", "vggface-vgg16")
are registered from converter/vggface.py with `register(...)`; VGGFACE_MODULES
below lists where to find them so `--list` shows them once that module exists.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Literal, TypeVar

from converter.tflite_export import FidelityLimits
from device.vision.model_card import ChipGeometry, Normalisation


class SourceNotFoundError(FileNotFoundError):
    """The default source file of a model is not installed here (one-line message)."""


class UnknownModelError(KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    embedding_size: int
    colour_order: Literal["RGB", "BGR"]
    chip: ChipGeometry
    metric: Literal["cosine", "euclidean"]
    threshold: float
    threshold_calibrated: bool
    reader: str
    builder: str
    locate_source: Callable[[], Path]
    source_help: str
    normalisation: Normalisation | None = None  # None: the builder reads it from the source
    limits: FidelityLimits = field(
        default_factory=FidelityLimits
    )  # fp32 limits; per-quantisation limits: tflite_export.default_limits
    numpy_builder: str | None = None  # None: this model needs TensorFlow to convert

    def read(self, source: Path) -> Any:
        return _resolve(self.reader)(source)

    def build(self, parsed: Any) -> Any:
        return _resolve(self.builder)(parsed)

    def build_numpy(self, parsed: Any) -> Any:
        if self.numpy_builder is None:
            raise UnknownModelError(f"{self.name} has no numpy backend (models that do: {', '.join(numpy_models())})")
        return _resolve(self.numpy_builder)(parsed)


SpecT = TypeVar("SpecT", bound=ModelSpec)


def _resolve(target: str) -> Callable[..., Any]:
    module, _, func = target.partition(":")
    return getattr(importlib.import_module(module), func)


def packaged_file(package: str, relative: str) -> Path:
    """Path of a data file inside an installed package, WITHOUT importing the package.

    Why: `import face_recognition_models` fails with setuptools >= 81 (its
    __init__ imports pkg_resources). find_spec of a top-level name does not
    execute it; the distribution's file list is the fallback.
    """
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / relative
        if candidate.is_file():
            return candidate
    try:
        files = metadata.distribution(package).files or []
    except metadata.PackageNotFoundError:
        files = []
    wanted = f"{package}/{relative}"
    for entry in files:
        if str(entry).replace("\\", "/").endswith(wanted):
            candidate = Path(entry.locate())
            if candidate.is_file():
                return candidate
    raise SourceNotFoundError(
        f"{relative} not found in an installed `{package}` package: run pip install '.[converter]' or pass --source FILE"
    )


# SHA-256 of dlib_face_recognition_resnet_model_v1.dat in face_recognition_models 0.3.0: a Pi that
# fetches the sdist itself (systemd/build-default-models.sh) converts only this exact file.
DLIB_DAT_SHA256 = "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30"


def _dlib_dat() -> Path:
    return packaged_file("face_recognition_models", "models/dlib_face_recognition_resnet_model_v1.dat")


# The dlib model's default threshold, FAR first: a stranger is compared with every
# enrolled person, so the threshold is read off the distribution of every
# different-person photo pair at a per-pair false match target of
# per-probe FAR / gallery size (../shared/notes/eval-protocol.md).
# [derive_threshold] written by tests/benchmarks/derive_threshold.py --update-spec; re-run it, never edit by hand.
# Fitted 2026-12-01 on every photo pair of ../shared/faces + ../shared/faces-extra (device pipeline, largest face):
# per-pair false match rate 0.0005 (per-probe FAR 0.01 over a 20-person gallery),
# the strictest of pooled and per-set thresholds: tail fit 0.514 of faces-extra,
# rounded down to 0.01. Table and margin: docs/results/derive_threshold.md.
DLIB_THRESHOLD = 0.51
# [/derive_threshold]

# Where MTCNN's 5 landmarks sit in dlib's get_face_chip(size=150, padding=0.25):
# the median per point of MTCNN (mtcnn 1.0.0) on all 62 of dlib's own chips in
# ../shared/reference/dlib/chips, found in every chip. After the best
# similarity fit each chip's points lie a mean 2.91 px (max 9.73 px) from it.
# Re-measure with `python -m converter.calibrate_template`.
DLIB_TEMPLATE_MTCNN_ON_DLIB_CHIPS: tuple[tuple[float, float], ...] = (
    (47.0 / 150, 44.5 / 150),
    (101.0 / 150, 45.0 / 150),
    (73.0 / 150, 77.0 / 150),
    (49.0 / 150, 99.5 / 150),
    (99.0 / 150, 99.0 / 150),
)
DLIB_CHIP = ChipGeometry(
    size=(150, 150),
    landmarks=DLIB_TEMPLATE_MTCNN_ON_DLIB_CHIPS,
    fit="median MTCNN 5 points on dlib's 62 reference chips (converter/calibrate_template.py); residual 2.91 px",
)

DLIB_RESNET_V1 = ModelSpec(
    name="dlib-resnet-v1",
    description="dlib face recognition ResNet v1 (29 conv, 128-d, 150x150 RGB; face_recognition_models 0.3.0)",
    embedding_size=128,
    colour_order="RGB",
    chip=DLIB_CHIP,
    metric="euclidean",
    threshold=DLIB_THRESHOLD,  # derived from labelled data, false accepts first: see the block above
    threshold_calibrated=True,
    reader="converter.dlib_dat:read_dat",
    builder="converter.dlib_model:build",
    numpy_builder="converter.dlib_numpy_export:build",
    locate_source=_dlib_dat,
    source_help="dlib_face_recognition_resnet_model_v1.dat (default: from the installed face_recognition_models)",
    normalisation=None,  # mean read from the file's input layer, scale 1/256
    limits=FidelityLimits(max_abs=1e-4, relative_l2=1e-5, centred_cosine_min=0.9999),
)

_REGISTRY: dict[str, ModelSpec] = {DLIB_RESNET_V1.name: DLIB_RESNET_V1}

# Modules that call register() for their models when imported; they must not import
# TensorFlow at module level (`--list` imports them). Missing modules are skipped.
VGGFACE_MODULES: tuple[str, ...] = ("converter.vggface",)


def register(spec: SpecT) -> SpecT:
    """Add (or replace) a model; returns the spec so modules can write `X = register(ModelSpec(...))`."""
    _REGISTRY[spec.name] = spec
    return spec


def _load_plugins() -> None:
    for module in VGGFACE_MODULES:
        if importlib.util.find_spec(module) is not None:
            importlib.import_module(module)


def known_models() -> dict[str, ModelSpec]:
    _load_plugins()
    return dict(sorted(_REGISTRY.items()))


# Models that are not one embedding network, converted by their own module's run functions
# (name -> (description, TensorFlow "module:function", numpy-backend "module:function" or None));
# `clockface convert NAME [--backend numpy]` dispatches to them.
DETECTORS: dict[str, tuple[str, str, str | None]] = {
    "mtcnn": (
        "MTCNN face detector with 5 landmarks (P-, R-, O-Net of the mtcnn 1.0.0 package; stills)",
        "converter.mtcnn:run_mtcnn_conversion",
        "converter.mtcnn_numpy_export:run_mtcnn_numpy_conversion",
    ),
}


def listed_models() -> dict[str, str]:
    """Every name `clockface convert` takes, with its description (embedders and detectors)."""
    listed = {name: spec.description for name, spec in known_models().items()}
    listed.update({name: description for name, (description, _, _) in DETECTORS.items()})
    return dict(sorted(listed.items()))


def detector_runner(name: str, backend: str = "tensorflow") -> Callable[..., Any] | None:
    """The run function of a detector model for `backend`, or None for an embedder."""
    entry = DETECTORS.get(name)
    if entry is None:
        return None
    target = entry[2] if backend == "numpy" else entry[1]
    if target is None:
        raise UnknownModelError(f"{name} has no {backend} backend")
    return _resolve(target)


def numpy_models() -> list[str]:
    """Names `clockface convert --backend numpy` can convert (without TensorFlow)."""
    embedders = [name for name, spec in known_models().items() if spec.numpy_builder is not None]
    detectors = [name for name, (_, _, numpy_run) in DETECTORS.items() if numpy_run is not None]
    return sorted(embedders + detectors)


def get_spec(name: str) -> ModelSpec:
    models = known_models()
    if name not in models:
        raise UnknownModelError(f"unknown model {name!r} (known: {', '.join(listed_models())})")
    return models[name]
