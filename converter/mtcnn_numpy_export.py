"""MTCNN's P-, R- and O-Net -> three TFLite files + `mtcnn.json`, without TensorFlow (`--backend numpy`).

The networks are mtcnn 1.0.0's Keras definitions (mtcnn/network/*.py), restated
here as layer lists (ARCHITECTURES) that consume the weights in set_weights order:
VALID 3x3/2x2 convolutions, PReLU shared over H and W, max pools (some SAME),
R-/O-Net's Permute((2, 1, 3)) + Flatten, dense layers and softmax heads. The
graph is simpler than the TensorFlow converter's but computes the same thing:
Flatten is a RESHAPE to a constant (-1, n) instead of SHAPE/STRIDED_SLICE/PACK,
which the device never needs, as it only resizes the batch (R-/O-Net) or H x W
(P-Net, one size per pyramid scale; its graph has no reshape).

`reference_forward` runs the same layer list in float64 NumPy, independently of the
writer (its own convolution, TF's SAME pool padding, its own flatten), and every
output of every network is checked against it on LiteRT through converter.mtcnn's
shared check-and-write step before anything is written.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from converter.dlib_numpy_export import backend_tools
from converter.mtcnn import MtcnnSummary, check_and_write, check_images
from converter.mtcnn_weights import NETWORKS, NetworkWeights, read_weights
from converter.tflite_builder import (
    Conv2DOptions,
    FullyConnectedOptions,
    GraphBuilder,
    Padding,
    Pool2DOptions,
    ReshapeOptions,
    SoftmaxOptions,
)
from device.vision.mtcnn import CROP_SIZES


@dataclass(frozen=True)
class Conv:
    """Keras Conv2D, VALID, stride 1 (kernel (kh, kw, in, out), bias)."""


@dataclass(frozen=True)
class PRelu:
    """Keras PReLU (alpha (1, 1, C) shared over H and W, or (C,) after a dense layer)."""


@dataclass(frozen=True)
class MaxPool:
    size: int
    stride: int
    padding: Padding


@dataclass(frozen=True)
class Flatten:
    """Permute((2, 1, 3)) then Flatten: the Caffe-era column-major order of the dense weights."""


@dataclass(frozen=True)
class Dense:
    """Keras Dense (weights (in, out), bias)."""


Layer = Conv | PRelu | MaxPool | Flatten | Dense


@dataclass(frozen=True)
class Architecture:
    trunk: tuple[Layer, ...]
    heads: tuple[bool, ...]  # one linear layer per output, in Keras' output order; True: softmax after it


ARCHITECTURES: dict[str, Architecture] = {
    "pnet": Architecture(
        (Conv(), PRelu(), MaxPool(2, 2, "SAME"), Conv(), PRelu(), Conv(), PRelu()),
        heads=(False, True),  # conv4-1 box regression, conv4-2 face probability (1x1 convolutions)
    ),
    "rnet": Architecture(
        (
            *(Conv(), PRelu(), MaxPool(3, 2, "SAME"), Conv(), PRelu(), MaxPool(3, 2, "VALID")),
            *(Conv(), PRelu(), Flatten(), Dense(), PRelu()),
        ),
        heads=(False, True),
    ),
    "onet": Architecture(
        (
            *(Conv(), PRelu(), MaxPool(3, 2, "SAME"), Conv(), PRelu(), MaxPool(3, 2, "VALID")),
            *(Conv(), PRelu(), MaxPool(2, 2, "SAME"), Conv(), PRelu(), Flatten(), Dense(), PRelu()),
        ),
        heads=(False, False, True),  # box regression, landmarks, face probability
    ),
}
PNET_ALLOCATED_SIDE = 12  # P-Net's file is allocated for its smallest input; the device resizes it per scale


def _pooled(n: int, pool: MaxPool) -> int:
    return -(-n // pool.stride) if pool.padding == "SAME" else (n - pool.size) // pool.stride + 1


class _Weights:
    """The network's arrays handed out in set_weights order; `done` checks that all were used."""

    def __init__(self, weights: NetworkWeights) -> None:
        self.name = weights.name
        self.arrays = list(weights.arrays)
        self.used = 0

    def take(self, n: int) -> list[np.ndarray]:
        out = self.arrays[self.used : self.used + n]
        if len(out) != n:
            raise ValueError(f"mtcnn {self.name}: the architecture needs more arrays than the weights have")
        self.used += n
        return out

    def done(self) -> None:
        if self.used != len(self.arrays):
            raise ValueError(f"mtcnn {self.name}: {len(self.arrays) - self.used} weight arrays left unused")


# --------------------------------------------------------------------------- writer


def build_tflite(weights: NetworkWeights) -> bytes:
    """TFLite bytes of one network: float32 NHWC input, float32 outputs in Keras' order."""
    arch = ARCHITECTURES[weights.name]
    side = CROP_SIZES.get(weights.name)
    g = GraphBuilder(dynamic_axes=(0,) if side else (0, 1, 2))
    hw = side or PNET_ALLOCATED_SIDE
    x = g.input((1, hw, hw, 3), "image")
    arrays = _Weights(weights)
    counts: dict[str, int] = {}

    def name(kind: str) -> str:
        counts[kind] = counts.get(kind, 0) + 1
        return f"{kind}{counts[kind]}"

    def linear(x: int, label: str) -> int:
        kernel, bias = arrays.take(2)
        if kernel.ndim == 4:  # (kh, kw, in, out); TFLite: (out, kh, kw, in)
            _, h, w, _ = g.shape(x)
            out = (1, h - kernel.shape[0] + 1, w - kernel.shape[1] + 1, kernel.shape[3])
            inputs = [x, g.constant(kernel.transpose(3, 0, 1, 2), f"{label}/kernel"), g.constant(bias, f"{label}/bias")]
            return g.op("CONV_2D", inputs, out, label, Conv2DOptions("VALID", (1, 1)))
        inputs = [x, g.constant(kernel.T, f"{label}/weights"), g.constant(bias, f"{label}/bias")]  # TFLite: (out, in)
        return g.op("FULLY_CONNECTED", inputs, (1, kernel.shape[1]), label, FullyConnectedOptions())

    for layer in arch.trunk:
        if isinstance(layer, Conv | Dense):
            x = linear(x, name("conv" if isinstance(layer, Conv) else "fc"))
        elif isinstance(layer, PRelu):
            (alpha,) = arrays.take(1)
            label = name("prelu")
            x = g.op("PRELU", [x, g.constant(alpha, f"{label}/alpha")], g.shape(x), label)
        elif isinstance(layer, MaxPool):
            _, h, w, c = g.shape(x)
            out = (1, _pooled(h, layer), _pooled(w, layer), c)
            options = Pool2DOptions((layer.size,) * 2, (layer.stride,) * 2, layer.padding)
            x = g.op("MAX_POOL_2D", [x], out, name("maxpool"), options)
        elif isinstance(layer, Flatten):
            _, h, w, c = g.shape(x)
            perm = g.constant(np.asarray([0, 2, 1, 3], np.int32), "permute/perm")
            x = g.op("TRANSPOSE", [x, perm], (1, w, h, c), "permute")
            new_shape = (-1, h * w * c)
            shape = g.constant(np.asarray(new_shape, np.int32), "flatten/shape")
            x = g.op("RESHAPE", [x, shape], (1, h * w * c), "flatten", ReshapeOptions(new_shape))
    outputs = []
    for softmax in arch.heads:
        y = linear(x, name("head"))
        if softmax:
            y = g.op("SOFTMAX", [y], g.shape(y), name("softmax"), SoftmaxOptions(1.0))
        outputs.append(y)
    arrays.done()
    return g.to_bytes(outputs, description=f"clockface converter.mtcnn_numpy_export {weights.name} (no TensorFlow)")


# --------------------------------------------------------------------------- reference


def _conv(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """VALID cross-correlation of (N, H, W, C) with a (kh, kw, in, out) kernel, float64."""
    windows = sliding_window_view(x, kernel.shape[:2], axis=(1, 2))  # (N, oh, ow, C, kh, kw)
    return np.tensordot(windows, kernel.astype(np.float64), axes=([3, 4, 5], [2, 0, 1])) + bias.astype(np.float64)


def _max_pool(x: np.ndarray, pool: MaxPool) -> np.ndarray:
    """TensorFlow's max pool: SAME pads with -inf, the odd pixel after (total // 2 before)."""
    k, s = pool.size, pool.stride
    if pool.padding == "SAME":
        pads = []
        for n in x.shape[1:3]:
            total = max((-(-n // s) - 1) * s + k - n, 0)
            pads.append((total // 2, total - total // 2))
        x = np.pad(x, [(0, 0), *pads, (0, 0)], constant_values=-np.inf)
    return sliding_window_view(x, (k, k), axis=(1, 2))[:, ::s, ::s].max(axis=(4, 5))


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def reference_forward(weights: NetworkWeights, x: np.ndarray) -> list[np.ndarray]:
    """mtcnn 1.0.0's forward pass of (N, H, W, 3) normalised input, float64; outputs in Keras' order."""
    arch = ARCHITECTURES[weights.name]
    arrays = _Weights(weights)
    y = np.asarray(x, np.float64)

    def linear(y: np.ndarray) -> np.ndarray:
        kernel, bias = arrays.take(2)
        if kernel.ndim == 4:
            return _conv(y, kernel, bias)
        return y @ kernel.astype(np.float64) + bias.astype(np.float64)

    for layer in arch.trunk:
        if isinstance(layer, Conv | Dense):
            y = linear(y)
        elif isinstance(layer, PRelu):
            (alpha,) = arrays.take(1)
            y = np.where(y > 0, y, alpha.astype(np.float64) * y)
        elif isinstance(layer, MaxPool):
            y = _max_pool(y, layer)
        elif isinstance(layer, Flatten):
            y = y.transpose(0, 2, 1, 3).reshape(len(y), -1)
    outputs = []
    for softmax in arch.heads:
        out = linear(y)
        outputs.append(_softmax(out) if softmax else out)
    arrays.done()
    return outputs


@dataclass(frozen=True)
class ReferenceNet:
    """One network in float64 NumPy, called like the Keras model by converter.mtcnn.verify_network."""

    weights: NetworkWeights

    def __call__(self, x: np.ndarray, training: bool = False) -> list[np.ndarray]:
        return reference_forward(self.weights, x)


# --------------------------------------------------------------------------- the command


def run_mtcnn_numpy_conversion(output: Path, source: Path | None, progress: Any, photos: Path | None) -> MtcnnSummary:
    """read -> write all three from NumPy -> verify each against its NumPy reference -> write all four files."""
    started = time.perf_counter()
    images = check_images(photos)
    progress.step()
    weights = read_weights(source)
    progress.step()
    exported = {name: build_tflite(weights[name]) for name in NETWORKS}
    progress.step()
    references = {name: ReferenceNet(weights[name]) for name in NETWORKS}
    tools = backend_tools("converter/mtcnn_numpy_export.py")
    return check_and_write(
        output, weights, exported, references, images, photos, source is None, tools, progress, started
    )
