"""Seeded stand-ins for keras-vggface's release weights (tests and benchmarks only).

The release files cannot be downloaded on the test machines, so tests build the
real architecture, fill it with seeded weights that keep activations in range,
and save them in the release's HDF5 layout: the converter's real loading code
then reads a file of exactly that shape.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from converter.vggface import VggFaceError, VggFaceSpec, build


def seeded_weights(model: Any, seed: int) -> list[np.ndarray]:
    """Deterministic stand-in weights for tests and benchmarks (the release cannot be downloaded here).

    He-normal kernels keep activations in a sane range through 50 layers;
    BatchNorm statistics and scales are random but positive where they must be,
    so BN folding in the converter is actually exercised; residual branches end
    in a small BN scale so the signal does not blow up with depth.
    """
    rng = np.random.default_rng(seed)
    values: list[np.ndarray] = []
    for layer in model.layers:
        for weight in layer.weights:
            shape = tuple(weight.shape)
            leaf = weight.name.split("/")[-1].split(":")[0]
            if leaf == "kernel":
                fan_in = int(np.prod(shape[:-1]))
                value = rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)
            elif leaf == "bias":
                value = rng.normal(0.0, 0.01, shape)
            elif leaf == "gamma":
                branch_end = "1x1_increase" in layer.name
                value = rng.uniform(0.1, 0.3, shape) if branch_end else rng.uniform(0.8, 1.2, shape)
            elif leaf == "beta" or leaf == "moving_mean":
                value = rng.normal(0.0, 0.05, shape)
            elif leaf == "moving_variance":
                value = rng.uniform(0.8, 1.2, shape)
            else:  # pragma: no cover - keras-vggface has no other weight kinds
                raise VggFaceError(f"unexpected weight {weight.name} in {layer.name}")
            values.append(value.astype(np.float32))
    return values


def write_seeded_weights(spec: VggFaceSpec, path: Path, seed: int = 0) -> Any:
    """Build `spec` with seeded weights and save them as keras-vggface's release files are laid out.

    `save_weights` to a `.h5` name writes the Keras 2 HDF5 layout of the
    release: root attributes layer_names/backend/keras_version, one group per
    layer (nested where the name has a `/`) with its weight_names. Returns the
    model, so callers can compare against the very network the file came from.
    """
    path = Path(path)
    if path.suffix not in (".h5", ".hdf5"):
        raise VggFaceError(f"keras-vggface weights are HDF5: name the file *.h5, not {path.name}")
    model = build(spec.architecture)
    model.set_weights(seeded_weights(model, seed))
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save_weights(str(path))
    return model
