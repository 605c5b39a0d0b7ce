"""Read the `mtcnn` package's P-, R- and O-Net weights (`{pnet,rnet,onet}.lz4`) without TensorFlow.

The files are joblib pickles in an lz4 frame: a list of float32 arrays in the
order of the networks' Keras layers. Why not `joblib.load`: a pickle can run
any code, and `--source` accepts a file from anywhere, so the unpickler here
only resolves the few numpy/joblib names an array list needs. Why check every
shape: a truncated file, another network's file or a foreign pickle must stop
the conversion with one line, before TensorFlow is even imported.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from converter.models import SourceNotFoundError, packaged_file

NETWORKS = ("pnet", "rnet", "onet")
PACKAGE = "mtcnn"
PACKAGE_VERSION = "1.0.0"
# SHA-256 of the wheel's assets/weights/*.lz4 (mtcnn 1.0.0): systemd/build-default-models.sh checks
# the files it unzips from a downloaded wheel against these before converting them.
WEIGHTS_SHA256 = {
    "pnet": "ea6b0c3e685ebee3165326ad6484acc95f2ef78f1c94fbf40a55704fa989f7b5",
    "rnet": "cb00e6460f3c98b0bfafaba3c0a0ded4bdf6e62cee7174d969e8670d7e757fee",
    "onet": "94f6ea2f4cf985275ee958cdd762d17b6009348a4fb9d8c6be39ba73ffd22ca3",
}

# Layer weight shapes of mtcnn 1.0.0's Keras networks (mtcnn/network/*.py), in set_weights order.
EXPECTED_SHAPES: dict[str, tuple[tuple[int, ...], ...]] = {
    "pnet": (
        (3, 3, 3, 10), (10,), (1, 1, 10),
        (3, 3, 10, 16), (16,), (1, 1, 16),
        (3, 3, 16, 32), (32,), (1, 1, 32),
        (1, 1, 32, 4), (4,), (1, 1, 32, 2), (2,),
    ),
    "rnet": (
        (3, 3, 3, 28), (28,), (1, 1, 28),
        (3, 3, 28, 48), (48,), (1, 1, 48),
        (2, 2, 48, 64), (64,), (1, 1, 64),
        (576, 128), (128,), (128,),
        (128, 4), (4,), (128, 2), (2,),
    ),
    "onet": (
        (3, 3, 3, 32), (32,), (1, 1, 32),
        (3, 3, 32, 64), (64,), (1, 1, 64),
        (3, 3, 64, 64), (64,), (1, 1, 64),
        (2, 2, 64, 128), (128,), (1, 1, 128),
        (1152, 256), (256,), (256,),
        (256, 4), (4,), (256, 10), (10,), (256, 2), (2,),
    ),
}  # fmt: skip

# Every global a joblib-pickled list of numpy arrays refers to (numpy 1.x and 2.x spellings).
_ALLOWED_GLOBALS = frozenset(
    {
        ("joblib.numpy_pickle", "NumpyArrayWrapper"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
    }
)


class MtcnnWeightsError(ValueError):
    """A weights file that is not the network it should be (one line, names the file)."""


@dataclass(frozen=True)
class NetworkWeights:
    name: str
    path: Path
    arrays: tuple[np.ndarray, ...]


def default_weights_dir() -> Path:
    """The weights folder inside the installed `mtcnn` wheel (found without importing it: that pulls TensorFlow)."""
    try:
        return packaged_file(PACKAGE, "assets/weights/pnet.lz4").parent
    except SourceNotFoundError:
        raise SourceNotFoundError(
            "mtcnn weights not found: pip install '.[converter]' (mtcnn==1.0.0) or pass --source DIR "
            "holding pnet.lz4, rnet.lz4 and onet.lz4"
        ) from None


def _unpickler(raw: bytes, path: Path):
    from joblib.numpy_pickle import NumpyUnpickler

    class _ArraysOnly(NumpyUnpickler):
        def find_class(self, module: str, name: str):
            if (module, name) not in _ALLOWED_GLOBALS:
                raise MtcnnWeightsError(f"{path}: not an mtcnn weights file (it refers to {module}.{name})")
            return super().find_class(module, name)

    return _ArraysOnly(str(path), io.BytesIO(raw), ensure_native_byte_order=True)


def read_network(path: Path, name: str) -> NetworkWeights:
    """One network's arrays, checked against EXPECTED_SHAPES; MtcnnWeightsError on anything else."""
    import lz4.frame

    if name not in EXPECTED_SHAPES:
        raise ValueError(f"unknown MTCNN network {name!r} (expected one of {', '.join(NETWORKS)})")
    if not path.is_file():
        raise FileNotFoundError(f"mtcnn weights file not found: {path}")
    try:
        raw = lz4.frame.decompress(path.read_bytes())
    except RuntimeError as exc:  # lz4 reports a bad or cut frame as RuntimeError
        raise MtcnnWeightsError(f"{path}: not a whole lz4 file ({str(exc).strip() or 'truncated'})") from None
    try:
        loaded = _unpickler(raw, path).load()
    except MtcnnWeightsError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise MtcnnWeightsError(f"{path}: not a readable joblib weights list ({type(exc).__name__}: {exc})") from None
    expected = EXPECTED_SHAPES[name]
    if not isinstance(loaded, list) or not all(isinstance(a, np.ndarray) for a in loaded):
        raise MtcnnWeightsError(f"{path}: not a list of arrays, so not {name} weights")
    shapes = tuple(tuple(int(d) for d in a.shape) for a in loaded)
    if shapes != expected:
        raise MtcnnWeightsError(
            f"{path}: array shapes do not match mtcnn {PACKAGE_VERSION}'s {name} "
            f"({len(shapes)} arrays, expected {len(expected)}; first difference at "
            f"{_first_difference(shapes, expected)})"
        )
    arrays = tuple(np.asarray(a, np.float32) for a in loaded)
    if not all(np.isfinite(a).all() for a in arrays):
        raise MtcnnWeightsError(f"{path}: {name} weights contain NaN or infinity")
    return NetworkWeights(name, path, arrays)


def _first_difference(got: tuple[tuple[int, ...], ...], expected: tuple[tuple[int, ...], ...]) -> str:
    for i, (a, b) in enumerate(zip(got, expected, strict=False)):  # lengths may differ: that is the error
        if a != b:
            return f"array {i}: {a} instead of {b}"
    return f"array {min(len(got), len(expected))}"


def read_weights(folder: Path | None = None) -> dict[str, NetworkWeights]:
    """All three networks from `folder` (default: the installed package), each as `<net>.lz4`."""
    folder = default_weights_dir() if folder is None else folder
    if not folder.is_dir():
        raise FileNotFoundError(
            f"mtcnn --source must be a folder holding pnet.lz4, rnet.lz4 and onet.lz4, got {folder}"
        )
    return {name: read_network(folder / f"{name}.lz4", name) for name in NETWORKS}
