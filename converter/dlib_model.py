"""Rebuild a parsed dlib network (converter.dlib_dat) as a Keras 3 functional model.

Input: float32 (1, rows, cols, 3), ALREADY normalised as dlib does it
((pixel - mean) / 256, RGB), so the device's generic `chip_to_tensor` feeds it
and the TFLite graph holds no preprocessing. Output: (1, embedding_size).

Only layers that TFLite lowers to builtin ops are used (CONV_2D, ADD, PAD,
MAX/AVERAGE_POOL_2D, MEAN, FULLY_CONNECTED), so the device needs no Flex ops.
The TensorFlow-free twin is converter/dlib_numpy_export.py; both share converter/dlib_fold.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from converter.dlib_dat import AddPrev, Affine, Conv, DlibNet, Fc, Pool, Relu, Skip, Tag
from converter.dlib_fold import ModelBuildError, fold_affine, normalisation_of, notes_of, uses_same_padding
from device.vision.model_card import Normalisation


@keras.saving.register_keras_serializable(package="clockface")
class ZeroPadTo(keras.layers.Layer):
    """Zero-pad bottom/right/channel-end up to a target (H, W, C): one TFLite PAD op.

    Why: dlib's add_prev sums tensors of different shapes by taking the max of
    each dimension and treating missing elements as zero, aligned at the
    top-left (dlib/cuda/tensor_tools add(dest, src1, src2)). Downsampling blocks
    rely on it: channels grow 32 -> 64 with zeros and 3x3 + 4x4 -> 4x4.
    """

    def __init__(self, target: tuple[int, int, int], **kwargs) -> None:
        super().__init__(**kwargs)
        self.target = tuple(int(t) for t in target)

    def call(self, x):
        h, w, c = x.shape[1:]
        th, tw, tc = self.target
        return keras.ops.pad(x, [[0, 0], [0, th - h], [0, tw - w], [0, tc - c]])

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.target)

    def get_config(self) -> dict:
        return {**super().get_config(), "target": self.target}


@dataclass(frozen=True)
class BuiltModel:
    """What the generic exporter needs from a model-specific builder."""

    model: keras.Model
    normalisation: Normalisation
    notes: str = ""


def _conv_layer(conv: Conv, kernel: np.ndarray, bias: np.ndarray, x, name: str):
    """SAME where dlib's padding equals it (converter.dlib_fold.uses_same_padding), else PAD + VALID."""
    kh, kw = kernel.shape[:2]
    if uses_same_padding(conv):
        padding = "same"
    else:
        padding = "valid"
        if conv.pad != (0, 0):
            x = keras.layers.ZeroPadding2D(conv.pad, name=f"{name}_pad")(x)
    layer = keras.layers.Conv2D(kernel.shape[3], (kh, kw), strides=conv.stride, padding=padding, name=name)
    y = layer(x)
    layer.set_weights([kernel, bias])
    return y


def _pool_layer(pool: Pool, x, name: str):
    if pool.is_global:
        if pool.kind != "avg":
            raise ModelBuildError(f"global max pool at byte offset {pool.offset} is not supported")
        return keras.layers.GlobalAveragePooling2D(name=name)(x)
    if pool.pad != (0, 0):
        # dlib excludes padding from averages and maxima; no network here needs it.
        raise ModelBuildError(f"{pool.kind} pool with padding {pool.pad} at byte offset {pool.offset} is not supported")
    cls = keras.layers.MaxPooling2D if pool.kind == "max" else keras.layers.AveragePooling2D
    return cls(pool.size, strides=pool.stride, padding="valid", name=name)(x)


def _add_prev(x, prev, name: str):
    """dlib add_prev: max shape in every dimension, zero-filled, aligned top-left."""
    target = tuple(max(a, b) for a, b in zip(x.shape[1:], prev.shape[1:], strict=True))
    if tuple(x.shape[1:]) != target:
        x = ZeroPadTo(target, name=f"{name}_pad_a")(x)
    if tuple(prev.shape[1:]) != target:
        prev = ZeroPadTo(target, name=f"{name}_pad_b")(prev)
    return keras.layers.Add(name=name)([x, prev])


def _fc_layer(fc: Fc, x, name: str):
    if len(x.shape) != 2:
        # dlib flattens NCHW; a spatial input would need a transpose to match. Not used by this family.
        raise ModelBuildError(f"fc_2 at byte offset {fc.offset} on a spatial input {tuple(x.shape)} is not supported")
    if x.shape[1] != fc.weights.shape[0]:
        raise ModelBuildError(f"fc_2 at byte offset {fc.offset} expects {fc.weights.shape[0]} inputs, got {x.shape[1]}")
    layer = keras.layers.Dense(fc.weights.shape[1], use_bias=fc.bias is not None, name=name)
    y = layer(x)
    layer.set_weights(
        [np.asarray(fc.weights, np.float32)] + ([] if fc.bias is None else [np.asarray(fc.bias, np.float32)])
    )
    return y


def build_keras(net: DlibNet, name: str = "dlib_resnet_v1") -> keras.Model:
    """Functional Keras model of `net` (without its loss layer), weights set, affines folded."""
    inputs = keras.Input((net.input.rows, net.input.cols, 3), batch_size=1, dtype="float32", name="chip")
    x = inputs
    tags: dict[int, object] = {}
    layers = net.layers
    counts: dict[str, int] = {}

    def uname(kind: str) -> str:
        counts[kind] = counts.get(kind, 0) + 1
        return f"{kind}{counts[kind]}"

    i = 0
    while i < len(layers):
        layer = layers[i]
        if isinstance(layer, Conv):
            nxt = layers[i + 1] if i + 1 < len(layers) else None
            if not isinstance(nxt, Affine):
                raise ModelBuildError(f"con_4 at byte offset {layer.offset} is not followed by affine_")
            kernel, bias = fold_affine(layer, nxt)
            x = _conv_layer(layer, kernel, bias, x, uname("conv"))
            i += 2
            continue
        if isinstance(layer, Affine):
            raise ModelBuildError(f"affine_ at byte offset {layer.offset} does not follow a con_4")
        if isinstance(layer, Relu):
            x = keras.layers.ReLU(name=uname("relu"))(x)
        elif isinstance(layer, Pool):
            x = _pool_layer(layer, x, uname(f"{layer.kind}pool"))
        elif isinstance(layer, Tag):
            tags[layer.id] = x
        elif isinstance(layer, Skip):
            x = tags[layer.tag]
        elif isinstance(layer, AddPrev):
            x = _add_prev(x, tags[layer.tag], uname("add"))
        elif isinstance(layer, Fc):
            x = _fc_layer(layer, x, uname("fc"))
        else:  # pragma: no cover - the reader only yields the types above
            raise ModelBuildError(f"unsupported layer {type(layer).__name__}")
        i += 1
    return keras.Model(inputs, x, name=name)


def build(net: DlibNet) -> BuiltModel:
    """Registry hook (converter.models): parsed .dat -> Keras model + the normalisation it expects."""
    model = build_keras(net)
    return BuiltModel(
        model=model,
        normalisation=normalisation_of(net),
        notes=notes_of(net),
    )
