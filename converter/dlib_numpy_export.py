"""dlib's face network (converter.dlib_dat) -> TFLite bytes, without TensorFlow.

The same graph converter/dlib_model.py gets out of Keras + TFLiteConverter:
affine layers folded into the conv before them (converter.dlib_fold), ReLU fused
into the CONV_2D/ADD before it (as the TFLite converter does), dlib's
zero-filled add_prev as PAD + ADD, the global average pool as MEAN. Input float32
(1, 150, 150, 3), already normalised; output (1, 128).

`reference_forward` is the independent side of the check: the *source* network
run in float64 NumPy, layer by layer as dlib defines it (conv, then affine,
unfolded), so a folding or layout mistake in the writer cannot hide in both.

Why it exists: a Raspberry Pi can make its own default model with only NumPy,
flatbuffers and LiteRT (`clockface convert dlib-resnet-v1 --backend numpy`).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from converter.dlib_dat import AddPrev, Affine, Conv, DlibNet, Fc, Pool, Relu, Skip, Tag
from converter.dlib_fold import ModelBuildError, fold_affine, normalisation_of, notes_of, uses_same_padding
from converter.tflite_builder import (
    AddOptions,
    Conv2DOptions,
    FullyConnectedOptions,
    GraphBuilder,
    Padding,
    PadOptions,
    Pool2DOptions,
    ReducerOptions,
)
from device.vision.model_card import Normalisation

Shape = tuple[int, ...]


@dataclass(frozen=True)
class NumpyBuilt:
    """What the numpy backend hands the generic check-and-write step (cf. dlib_model.BuiltModel)."""

    tflite_bytes: bytes
    reference: ReferenceNet
    normalisation: Normalisation
    notes: str
    tools: str  # the sidecar's converter_version: what wrote these bytes


# --------------------------------------------------------------------------- writer


def _conv_out(n: int, k: int, s: int, p: int) -> int:
    return 1 + (n + 2 * p - k) // s


class _Writer:
    """Walks the dlib layer list once, emitting TFLite ops and tracking NHWC shapes."""

    def __init__(self, net: DlibNet) -> None:
        self.net = net
        self.g = GraphBuilder()
        self.counts: dict[str, int] = {}

    def name(self, kind: str) -> str:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        return f"{kind}{self.counts[kind]}"

    def pad(self, x: int, before: Shape, after: Shape, name: str) -> int:
        shape = self.g.shape(x)
        paddings = np.asarray([[b, a] for b, a in zip(before, after, strict=True)], np.int32)
        target = tuple(d + b + a for d, b, a in zip(shape, before, after, strict=True))
        return self.g.op("PAD", [x, self.g.constant(paddings, f"{name}/paddings")], target, name, PadOptions())

    def conv(self, conv: Conv, affine: Affine, x: int, relu: bool) -> int:
        kernel, bias = fold_affine(conv, affine)  # (kh, kw, in, out): the Keras path's exact float32 values
        kh, kw, cin, cout = kernel.shape
        _, h, w, c = self.g.shape(x)
        if c != cin:
            raise ModelBuildError(f"con_4 at byte offset {conv.offset} expects {cin} channels, got {c}")
        name = self.name("conv")
        padding: Padding
        if uses_same_padding(conv):
            padding, out_hw = "SAME", (h, w)
        else:
            padding = "VALID"
            out_hw = (
                _conv_out(h, kh, conv.stride[0], conv.pad[0]),
                _conv_out(w, kw, conv.stride[1], conv.pad[1]),
            )
            if conv.pad != (0, 0):
                py, px = conv.pad
                x = self.pad(x, (0, py, px, 0), (0, py, px, 0), f"{name}_pad")
        weights = self.g.constant(kernel.transpose(3, 0, 1, 2), f"{name}/kernel")  # TFLite: (out, kh, kw, in)
        b = self.g.constant(bias, f"{name}/bias")
        options = Conv2DOptions(padding, conv.stride, "RELU" if relu else "NONE")
        return self.g.op("CONV_2D", [x, weights, b], (1, *out_hw, cout), name, options)

    def pool(self, pool: Pool, x: int) -> int:
        _, h, w, c = self.g.shape(x)
        if pool.is_global:
            if pool.kind != "avg":
                raise ModelBuildError(f"global max pool at byte offset {pool.offset} is not supported")
            axes = self.g.constant(np.asarray([1, 2], np.int32), "mean/axes")
            return self.g.op("MEAN", [x, axes], (1, c), self.name("mean"), ReducerOptions(keep_dims=False))
        if pool.pad != (0, 0):
            raise ModelBuildError(
                f"{pool.kind} pool with padding {pool.pad} at byte offset {pool.offset} is not supported"
            )
        (kh, kw), (sh, sw) = pool.size, pool.stride
        out = (1, _conv_out(h, kh, sh, 0), _conv_out(w, kw, sw, 0), c)
        op = "MAX_POOL_2D" if pool.kind == "max" else "AVERAGE_POOL_2D"
        return self.g.op(op, [x], out, self.name(f"{pool.kind}pool"), Pool2DOptions(pool.size, pool.stride))

    def add_prev(self, x: int, prev: int, relu: bool) -> int:
        """dlib add_prev: max shape in every dimension, zero-filled, aligned top-left."""
        name = self.name("add")
        target = tuple(max(a, b) for a, b in zip(self.g.shape(x), self.g.shape(prev), strict=True))
        operands = []
        for tensor, side in ((x, "a"), (prev, "b")):
            shape = self.g.shape(tensor)
            if shape != target:
                after = tuple(t - s for t, s in zip(target, shape, strict=True))
                tensor = self.pad(tensor, (0,) * len(shape), after, f"{name}_pad_{side}")
            operands.append(tensor)
        return self.g.op("ADD", operands, target, name, AddOptions("RELU" if relu else "NONE"))

    def fc(self, fc: Fc, x: int) -> int:
        shape = self.g.shape(x)
        if len(shape) != 2:
            raise ModelBuildError(f"fc_2 at byte offset {fc.offset} on a spatial input {shape} is not supported")
        if shape[1] != fc.weights.shape[0]:
            raise ModelBuildError(
                f"fc_2 at byte offset {fc.offset} expects {fc.weights.shape[0]} inputs, got {shape[1]}"
            )
        weights = self.g.constant(np.asarray(fc.weights, np.float32).T, "fc/weights")  # TFLite: (out, in)
        bias = -1 if fc.bias is None else self.g.constant(np.asarray(fc.bias, np.float32), "fc/bias")
        return self.g.op(
            "FULLY_CONNECTED", [x, weights, bias], (1, fc.weights.shape[1]), "embedding", FullyConnectedOptions()
        )

    def build(self) -> bytes:
        layers = self.net.layers
        x = self.g.input((1, self.net.input.rows, self.net.input.cols, 3), "chip")
        tags: dict[int, int] = {}
        i = 0
        while i < len(layers):
            layer = layers[i]
            if isinstance(layer, Conv):
                affine = layers[i + 1] if i + 1 < len(layers) else None
                if not isinstance(affine, Affine):
                    raise ModelBuildError(f"con_4 at byte offset {layer.offset} is not followed by affine_")
                relu = i + 2 < len(layers) and isinstance(layers[i + 2], Relu)
                x = self.conv(layer, affine, x, relu)
                i += 3 if relu else 2
                continue
            if isinstance(layer, AddPrev):
                relu = i + 1 < len(layers) and isinstance(layers[i + 1], Relu)
                x = self.add_prev(x, tags[layer.tag], relu)
                i += 2 if relu else 1
                continue
            if isinstance(layer, Affine):
                raise ModelBuildError(f"affine_ at byte offset {layer.offset} does not follow a con_4")
            if isinstance(layer, Relu):
                raise ModelBuildError(f"relu_ at byte offset {layer.offset} follows neither a conv nor an add_prev")
            if isinstance(layer, Pool):
                x = self.pool(layer, x)
            elif isinstance(layer, Tag):
                tags[layer.id] = x
            elif isinstance(layer, Skip):
                x = tags[layer.tag]
            elif isinstance(layer, Fc):
                x = self.fc(layer, x)
            else:  # pragma: no cover - the reader only yields the types above
                raise ModelBuildError(f"unsupported layer {type(layer).__name__}")
            i += 1
        return self.g.to_bytes([x], description="clockface converter.dlib_numpy_export (no TensorFlow)")


def build_tflite(net: DlibNet) -> bytes:
    """TFLite bytes of `net` without its loss layer: float32 in, float32 embedding out."""
    return _Writer(net).build()


# --------------------------------------------------------------------------- reference


def _pad_to(x: np.ndarray, target: Shape) -> np.ndarray:
    return np.pad(x, [(0, t - s) for s, t in zip(x.shape, target, strict=True)])


def _conv_nhwc(x: np.ndarray, conv: Conv) -> np.ndarray:
    """dlib con_4 on (1, H, W, C) float64: zero padding, cross-correlation, bias."""
    py, px = conv.pad
    sy, sx = conv.stride
    filters = conv.filters.astype(np.float64)  # (out, in, kh, kw)
    kh, kw = filters.shape[2:]
    padded = np.pad(x, [(0, 0), (py, py), (px, px), (0, 0)])
    windows = sliding_window_view(padded, (kh, kw), axis=(1, 2))[:, ::sy, ::sx]  # (1, oh, ow, C, kh, kw)
    return np.tensordot(windows, filters, axes=([3, 4, 5], [1, 2, 3])) + conv.bias.astype(np.float64)


def _pool_nhwc(x: np.ndarray, pool: Pool) -> np.ndarray:
    if pool.is_global:
        return x.mean(axis=(1, 2))
    windows = sliding_window_view(x, pool.size, axis=(1, 2))[:, :: pool.stride[0], :: pool.stride[1]]
    return windows.max(axis=(4, 5)) if pool.kind == "max" else windows.mean(axis=(4, 5))


@dataclass(frozen=True)
class ReferenceNet:
    """The source network in float64 NumPy; called like the Keras model by tflite_export.verify_export."""

    net: DlibNet

    def __call__(self, batch: np.ndarray, training: bool = False) -> np.ndarray:
        return np.concatenate([reference_forward(self.net, x[None]) for x in np.asarray(batch)])


def reference_forward(net: DlibNet, x: np.ndarray) -> np.ndarray:
    """dlib's forward pass of (1, H, W, 3) normalised input, layer by layer, unfolded; returns (1, D) float64."""
    y = np.asarray(x, np.float64)
    tags: dict[int, np.ndarray] = {}
    for layer in net.layers:
        if isinstance(layer, Conv):
            y = _conv_nhwc(y, layer)
        elif isinstance(layer, Affine):
            y = y * layer.gamma.astype(np.float64) + layer.beta.astype(np.float64)
        elif isinstance(layer, Relu):
            y = np.maximum(y, 0.0)
        elif isinstance(layer, Pool):
            y = _pool_nhwc(y, layer)
        elif isinstance(layer, Tag):
            tags[layer.id] = y
        elif isinstance(layer, Skip):
            y = tags[layer.tag]
        elif isinstance(layer, AddPrev):
            prev = tags[layer.tag]
            target = tuple(max(a, b) for a, b in zip(y.shape, prev.shape, strict=True))
            y = _pad_to(y, target) + _pad_to(prev, target)
        elif isinstance(layer, Fc):
            y = y.reshape(1, -1) @ layer.weights.astype(np.float64)
            if layer.bias is not None:
                y = y + layer.bias.astype(np.float64)
    return y.reshape(1, -1)


# --------------------------------------------------------------------------- registry hook


def backend_tools(writer: str = "converter/dlib_numpy_export.py") -> str:
    """The sidecar's converter_version for files `writer` wrote (no TensorFlow was involved)."""
    parts = []
    for dist in ("clockface", "numpy", "flatbuffers"):
        try:
            parts.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            continue
    return "; ".join([*parts, f"numpy backend ({writer})"])


def build(net: DlibNet) -> NumpyBuilt:
    """Registry hook (converter.models, `numpy_builder`): parsed .dat -> TFLite bytes + what checks them."""
    return NumpyBuilt(
        tflite_bytes=build_tflite(net),
        reference=ReferenceNet(net),
        normalisation=normalisation_of(net),
        notes=notes_of(net),
        tools=backend_tools(),
    )
