"""keras-vggface (VGGFace2 ResNet50 / SENet50, VGGFace VGG16) as embedding networks.

The architecture comes from the `keras-vggface` 0.6 package itself, so what we
export is the network its weights were trained for, not a re-implementation.
That package (2019) does not import on current TensorFlow: it imports
`keras.engine.topology`, `keras.utils.data_utils`, `keras.utils.layer_utils`
and `keras_applications`, and Keras 3 rejects its layer names (they contain
`/`). It builds unchanged on `tf_keras` (legacy Keras 2), so
`_keras_routed_to_tf_keras` points its `keras` imports there for the duration
of its import, and then puts `sys.modules` back so that the rest of the
process keeps seeing Keras 3. Importing this module only registers the three
specs (no TensorFlow, no tf_keras): `clockface convert --list` and the
TensorFlow-free checks of a weights file stay cheap.

We build `include_top=False, pooling='avg'`: the pooled feature is the face
descriptor. The 8631-way softmax of the top is a classifier over VGGFace2's
training identities and says nothing useful about people outside it.

Weights are loaded exactly as keras-vggface loads its release files: by layer
ORDER for resnet50/senet50 (`model.load_weights(path)`), by layer NAME for
vgg16 (`by_name=True`). Loading by name silently skips layers the file does
not contain, so for vgg16 we also require that every layer with weights was
found: a wrong file must fail, not leave random weights behind.

Why one module over 300 lines: the keras-vggface import shim, the three specs and the order/name weight loading are one source format; its seeded test weights live in tests/converter/seeded.py.
"""

from __future__ import annotations

import os
import sys
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from converter.models import ModelSpec, SourceNotFoundError, register
from converter.tflite_export import FidelityLimits
from device.vision.model_card import ChipGeometry, Normalisation

if TYPE_CHECKING:  # pragma: no cover
    import tf_keras

Architecture = Literal["resnet50", "senet50", "vgg16"]

INPUT_SHAPE = (224, 224, 3)

# keras_vggface.utils.preprocess_input: version=2 (VGGFace2: resnet50,
# senet50) and version=1 (VGGFace: vgg16). Both are BGR means, subtracted
# after flipping RGB to BGR; scale stays 1 (no division by a std).
VGGFACE2_MEAN_BGR = (91.4953, 103.8827, 131.0912)
VGGFACE1_MEAN_BGR = (93.5940, 104.7624, 129.1863)

# Where MTCNN's 5 landmarks go in the 224x224 chip, as fractions of its size.
#
# VGGFace2 was not trained on aligned faces: each image's MTCNN box was
# enlarged by 30% (a "loose crop": forehead, chin and some hair included), the
# shorter side resized to 224 and the centre 224x224 taken (the evaluation
# recipe; training took random 224 crops of a 256 resize). The template is
# where MTCNN's landmarks land in exactly that crop: the median per point over
# the largest face of each of the 62 person photos of ../shared/faces (mtcnn
# 1.0.0; residual after a similarity fit mean 4.38 px, max 14.22 px, in 224-px
# chip units), measured by `python -m converter.calibrate_template`. Aligning
# the 5 landmarks onto it reproduces the training crop, with the head levelled.
# dlib's chip, by contrast, is tight (brows to chin): reusing it would cut off
# the chin and hair the network was trained to see. VGGFace (vgg16) was also
# trained on loose, unaligned crops, so it shares the template.
VGGFACE_TEMPLATE_MTCNN_LOOSE_BOX: tuple[tuple[float, float], ...] = (
    (0.3141, 0.4002),
    (0.6744, 0.3941),
    (0.4955, 0.609),
    (0.3347, 0.7736),
    (0.6691, 0.7647),
)
VGGFACE_CHIP = ChipGeometry(
    size=(224, 224),
    landmarks=VGGFACE_TEMPLATE_MTCNN_LOOSE_BOX,
    fit="median MTCNN 5 points in the loose 1.3x MTCNN box crop, 62 photos of ../shared/faces "
    "(converter/calibrate_template.py); residual 4.38 px",
)

# The seed's cosine-distance threshold; a starting point, not measured for
# these networks (threshold_calibrated=False in the sidecar).
DEFAULT_THRESHOLD = 0.5


class VggFaceError(ValueError):
    """keras-vggface cannot be built here, or a weights file does not fit the architecture. One line."""


# Export limits per quantisation mode, checked on LiteRT before anything is
# written (and recorded in the sidecar). Why these numbers:
# - none: float32 end to end; only summation order differs. Measured 2.7e-7
#   relative L2 on ResNet50. max_abs is off because outputs are ~100 in size
#   (max_abs ~5e-4 is float32 rounding at that scale, not an error).
# - float16: weights rounded to 11 significant bits, arithmetic still float32;
#   1e-3 relative L2 is what the issue asks for.
# - dynamic / int8: 8-bit weights (and activations) lose far more, and how much
#   depends on the weights; the numbers are reported, and the limits only
#   catch a broken export (centred cosine >= 0.5 still means the export ranks
#   faces like the source network; a scrambled one would give ~0).
VGGFACE_LIMITS: dict[str, FidelityLimits] = {
    "none": FidelityLimits(max_abs=None, relative_l2=1e-5, centred_cosine_min=0.9999),
    "float16": FidelityLimits(max_abs=None, relative_l2=1e-3, centred_cosine_min=0.999),
    "dynamic": FidelityLimits(max_abs=None, relative_l2=0.5, centred_cosine_min=0.5),
    "int8": FidelityLimits(max_abs=None, relative_l2=0.5, centred_cosine_min=0.5),
}

# Layers with weights in the notop networks (keras-vggface 0.6): lets the
# TensorFlow-free reader reject e.g. a with-top or another model's file.
WEIGHTED_LAYERS: dict[str, int] = {"resnet50": 106, "senet50": 138, "vgg16": 13}


@dataclass(frozen=True)
class VggFaceSpec(ModelSpec):
    """A registry entry (converter.models.ModelSpec) plus what keras-vggface needs.

    Extra fields: which architecture to build, the release file (download name),
    how keras-vggface loads that file, and limits for every quantisation mode.
    """

    architecture: Architecture = "resnet50"
    release_file: str = ""
    load_by_name: bool = False  # how keras-vggface itself loads this release file
    limits_by_quantization: dict[str, FidelityLimits] = field(default_factory=lambda: dict(VGGFACE_LIMITS), hash=False)

    def limits_for(self, quantize: str) -> FidelityLimits:
        return self.limits_by_quantization[quantize]

    def fetch(self, *, sha256: str | None, cache_dir: Path, base_url: str, progress: bool = True) -> Path:
        """The release file from the cache or the network, SHA-256 checked before it is returned."""
        from converter.download import fetch

        return fetch(self.release_file, sha256=sha256, cache_dir=cache_dir, base_url=base_url, progress=progress)


@dataclass(frozen=True)
class VggFaceSource:
    """A weights file that passed the TensorFlow-free checks (what the reader hands to the builder)."""

    spec_name: str
    path: Path
    weighted_layers: tuple[str, ...]


def _locate_release(name: str) -> Callable[[], Path]:
    """ModelSpec.locate_source: the release file if it is already in the default cache.

    The download itself needs a hash, a URL and a cache folder from the
    command line, so it is `VggFaceSpec.fetch`, called by the CLI; this hook
    only finds what an earlier run fetched (and the builder's load still
    rejects a file that does not fit).
    """

    def locate() -> Path:
        from converter.download import default_cache_dir

        spec = SPECS[name]
        path = default_cache_dir(os.environ) / spec.release_file
        if not path.is_file():
            raise SourceNotFoundError(
                f"{spec.release_file} is not in {path.parent}: pass --weights FILE, or --sha256 HEX to download it"
            )
        return path

    return locate


def _weights_file_layers(path: Path, missing: type[Exception]) -> list[str]:
    """The weighted layers an existing HDF5 weights file holds; `missing` is raised when there is no file."""
    import h5py

    if not path.is_file():
        raise missing(f"weights file not found: {path}")
    if not h5py.is_hdf5(path):
        raise VggFaceError(f"{path} is not an HDF5 file (an HTML error page or a truncated download?)")
    return _file_weighted_layers(path)


def read_source(name: str, path: Path) -> VggFaceSource:
    """TensorFlow-free check that `path` is a Keras 2 HDF5 weights file fit for model `name`."""

    spec = SPECS[name]
    path = Path(path)
    stored = _weights_file_layers(path, FileNotFoundError)
    expected = WEIGHTED_LAYERS[spec.architecture]
    if not spec.load_by_name and len(stored) != expected:
        raise VggFaceError(
            f"{path.name} holds {len(stored)} layers with weights, {spec.architecture} notop has {expected}: "
            f"not the keras-vggface notop weights file for {name} ({spec.release_file})"
        )
    return VggFaceSource(name, path, tuple(stored))


def build_source(source: VggFaceSource) -> Any:
    """Registry builder hook: a checked weights file -> converter.dlib_model.BuiltModel."""
    from converter.dlib_model import BuiltModel

    spec = SPECS[source.spec_name]
    if spec.normalisation is None:  # every VGGFace spec states its mean (see _spec)
        raise ValueError(f"{spec.name}: no input normalisation in its spec")
    model = build_with_weights(spec, source.path)
    return BuiltModel(model=model, normalisation=spec.normalisation, notes=_notes(spec))


def _notes(spec: VggFaceSpec) -> str:
    return (
        f"{spec.description}; keras-vggface 0.6 include_top=False pooling=avg, weights loaded "
        f"{'by layer name' if spec.load_by_name else 'by layer order'} as keras-vggface does; trained on loose "
        "(unaligned, +30%) face crops, so the chip template is an estimate; the 0.5 cosine-distance threshold "
        "is the seed's default, not calibrated for this model"
    )


# Module-level hooks (ModelSpec resolves "module:function" strings).
def read_resnet50(path: Path) -> VggFaceSource:
    return read_source("vggface-resnet50", path)


def read_senet50(path: Path) -> VggFaceSource:
    return read_source("vggface-senet50", path)


def read_vgg16(path: Path) -> VggFaceSource:
    return read_source("vggface-vgg16", path)


# SE-ResNet-50's squeeze-excitation gates (sigmoids multiplied into every block)
# compound float16 weight rounding: with seeded weights it measured 1.1e-3
# relative L2 (ResNet-50 3.3e-4, VGG-16 4.1e-4), so its float16 bound is 2e-3;
# centred cosine stays >= 0.9999 there, i.e. the export ranks faces the same.
SENET_LIMITS = {**VGGFACE_LIMITS, "float16": FidelityLimits(max_abs=None, relative_l2=2e-3, centred_cosine_min=0.999)}


def _spec(
    name: str,
    architecture: Architecture,
    embedding_size: int,
    load_by_name: bool,
    mean_bgr: tuple[float, float, float],
    description: str,
    limits: dict[str, FidelityLimits] = VGGFACE_LIMITS,
) -> VggFaceSpec:
    release = f"rcmalli_vggface_tf_notop_{architecture}.h5"
    return VggFaceSpec(
        name=name,
        description=description,
        embedding_size=embedding_size,
        colour_order="BGR",
        chip=VGGFACE_CHIP,
        metric="cosine",
        threshold=DEFAULT_THRESHOLD,
        threshold_calibrated=False,
        reader=f"converter.vggface:read_{architecture}",
        builder="converter.vggface:build_source",
        locate_source=_locate_release(name),
        source_help=f"{release} (keras-vggface v2.0 release; default: download with --sha256, or --weights FILE)",
        normalisation=Normalisation(mean=mean_bgr, scale=1.0),
        limits=VGGFACE_LIMITS["none"],
        architecture=architecture,
        release_file=release,
        load_by_name=load_by_name,
        limits_by_quantization=dict(limits),
    )


SPECS: dict[str, VggFaceSpec] = {
    spec.name: register(spec)
    for spec in (
        _spec(
            "vggface-resnet50",
            "resnet50",
            2048,
            False,
            VGGFACE2_MEAN_BGR,
            "keras-vggface VGGFace2 ResNet-50 (2048-d, 224x224 BGR)",
        ),
        _spec(
            "vggface-senet50",
            "senet50",
            2048,
            False,
            VGGFACE2_MEAN_BGR,
            "keras-vggface VGGFace2 SE-ResNet-50 (2048-d, 224x224 BGR)",
            SENET_LIMITS,
        ),
        # VGG16 is the original VGGFace (v1) network: keras-vggface documents
        # preprocess_input(version=1) for it, i.e. the VGGFace1 means.
        _spec(
            "vggface-vgg16",
            "vgg16",
            512,
            True,
            VGGFACE1_MEAN_BGR,
            "keras-vggface VGGFace (v1) VGG-16, pool5 averaged (512-d, 224x224 BGR)",
        ),
    )
}


def _is_keras_name(name: str) -> bool:
    return name == "keras" or name.startswith("keras.")


@contextmanager
def _keras_routed_to_tf_keras() -> Iterator[None]:
    """Make `import keras...` resolve to tf_keras (and its old module paths) inside the block.

    Each name keras-vggface imports is put in sys.modules explicitly; leaving
    Python to find submodules through an aliased package's __path__ would
    load tf_keras modules a second time under `keras.*` names.
    """
    try:
        import tf_keras
        import tf_keras.backend
        import tf_keras.layers
        import tf_keras.models
        import tf_keras.utils
        from tf_keras.src.utils import layer_utils
    except ImportError as exc:
        raise VggFaceError(f"keras-vggface needs tf-keras (pip install --no-deps tf-keras==2.21.0): {exc}") from None

    data_utils = types.ModuleType("keras.utils.data_utils")
    data_utils.get_file = tf_keras.utils.get_file  # type: ignore[attr-defined]
    utils = types.ModuleType("keras.utils")
    utils.__dict__.update({k: v for k, v in vars(tf_keras.utils).items() if not k.startswith("__")})
    utils.data_utils = data_utils  # type: ignore[attr-defined]
    utils.layer_utils = layer_utils  # type: ignore[attr-defined]
    topology = types.ModuleType("keras.engine.topology")
    topology.get_source_inputs = tf_keras.utils.get_source_inputs  # type: ignore[attr-defined]
    engine = types.ModuleType("keras.engine")
    engine.topology = topology  # type: ignore[attr-defined]
    aliases = {
        "keras": tf_keras,
        "keras.backend": tf_keras.backend,
        "keras.layers": tf_keras.layers,
        "keras.models": tf_keras.models,
        "keras.utils": utils,
        "keras.utils.data_utils": data_utils,
        "keras.utils.layer_utils": layer_utils,
        "keras.engine": engine,
        "keras.engine.topology": topology,
    }
    saved = {name: module for name, module in sys.modules.items() if _is_keras_name(name)}
    for name in saved:
        del sys.modules[name]
    sys.modules.update(aliases)
    try:
        yield
    finally:
        for name in [n for n in sys.modules if _is_keras_name(n)]:
            del sys.modules[name]
        sys.modules.update(saved)


def _vggface_factory():
    """Import keras_vggface through the shim (once; later calls reuse the bound module)."""
    module = sys.modules.get("keras_vggface.vggface")
    if module is not None:
        return module.VGGFace
    # A failed import elsewhere (without the shim) may have left parts of the
    # package bound to Keras 3: import it afresh under the shim.
    for name in [n for n in sys.modules if n == "keras_vggface" or n.startswith("keras_vggface.")]:
        del sys.modules[name]
    with _keras_routed_to_tf_keras():
        try:
            from keras_vggface.vggface import VGGFace
        except ImportError as exc:
            raise VggFaceError(
                f"cannot import keras-vggface (pip install --no-deps keras-vggface==0.6 keras-applications==1.0.8): {exc}"
            ) from None
    return VGGFace


def build(architecture: Architecture) -> tf_keras.Model:
    """The keras-vggface network with random weights: include_top=False, pooling='avg', 224x224x3."""
    VGGFace = _vggface_factory()
    return VGGFace(model=architecture, include_top=False, pooling="avg", weights=None, input_shape=INPUT_SHAPE)


def _weighted_layers(model: tf_keras.Model) -> list[str]:
    return [layer.name for layer in model.layers if layer.weights]


def _file_weighted_layers(path: Path) -> list[str]:
    """Names of the layers that carry weights in a Keras 2 HDF5 weights file, in file order.

    Keras 2 lists every layer in `layer_names`, weightless ones with an empty
    `weight_names`; its loaders skip those, and so do we.
    """
    import h5py

    def text(value: Any) -> str:
        return value.decode("utf8") if isinstance(value, bytes) else str(value)

    with h5py.File(path, "r") as f:
        group = f["model_weights"] if "layer_names" not in f.attrs and "model_weights" in f else f
        if "layer_names" not in group.attrs:
            raise VggFaceError(f"{path} is HDF5 but not a Keras weights file (no layer_names attribute)")
        names = [text(n) for n in group.attrs["layer_names"]]
        return [n for n in names if n in group and len(group[n].attrs.get("weight_names", [])) > 0]


def load_weights(model: tf_keras.Model, spec: VggFaceSpec, path: Path) -> None:
    """Load a release-style .h5 into `model` as keras-vggface does; any misfit is a one-line VggFaceError."""

    path = Path(path)
    stored = _weights_file_layers(path, VggFaceError)
    expected = _weighted_layers(model)
    if spec.load_by_name:
        missing = [name for name in expected if name not in set(stored)]
        if missing:
            raise VggFaceError(
                f"{path.name} lacks {len(missing)} of the {len(expected)} {spec.architecture} layers with weights "
                f"(first: {missing[0]}): not the keras-vggface notop weights file for this model"
            )
    elif len(stored) != len(expected):
        # Keras would say the same, in a paragraph; say which file and model.
        raise VggFaceError(
            f"{path.name} holds {len(stored)} layers with weights, {spec.architecture} notop has "
            f"{len(expected)}: not the keras-vggface notop weights file for this model"
        )
    try:
        model.load_weights(str(path), by_name=spec.load_by_name)
    except (ValueError, KeyError, OSError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise VggFaceError(f"{path.name} does not fit {spec.architecture}: {first_line}") from None


def build_with_weights(spec: VggFaceSpec, weights: Path) -> tf_keras.Model:
    model = build(spec.architecture)
    load_weights(model, spec, weights)
    return model
