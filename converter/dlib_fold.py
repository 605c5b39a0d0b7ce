"""The TensorFlow-free parts of rebuilding dlib's network, shared by both export backends.

Why a module of its own: converter/dlib_model.py (Keras) and
converter/dlib_numpy_export.py (flatbuffers, no TensorFlow) must fold the same
affine layers the same way and record the same normalisation and notes, so a
model made by either is the same model to the device.
"""

from __future__ import annotations

import numpy as np

from converter.dlib_dat import Affine, Conv, DlibNet
from device.vision.model_card import Normalisation


class ModelBuildError(ValueError):
    """The parsed network uses a layer arrangement this builder does not reproduce."""


def fold_affine(conv: Conv, affine: Affine) -> tuple[np.ndarray, np.ndarray]:
    """Fold y = gamma * (W*x + b) + beta into one conv; returns a Keras (kh, kw, in, out) kernel and bias.

    Done in float64 and rounded once, so folding adds at most one float32 rounding per weight.
    """
    if affine.gamma.shape[0] != conv.filters.shape[0]:
        raise ModelBuildError(
            f"affine_ at byte offset {affine.offset} has {affine.gamma.shape[0]} channels, "
            f"the conv before it {conv.filters.shape[0]}"
        )
    gamma = affine.gamma.astype(np.float64)
    filters = conv.filters.astype(np.float64) * gamma[:, None, None, None]
    bias = conv.bias.astype(np.float64) * gamma + affine.beta.astype(np.float64)
    return filters.transpose(2, 3, 1, 0).astype(np.float32), bias.astype(np.float32)


def uses_same_padding(conv: Conv) -> bool:
    """dlib conv output size is 1 + (n + 2p - k) // s, which is VALID on the zero-padded input.

    Stride-1 convs with p == k // 2 (odd k) equal TFLite SAME exactly and need no PAD op.
    """
    kh, kw = conv.filters.shape[2:]
    return conv.stride == (1, 1) and bool(kh % 2) and bool(kw % 2) and conv.pad == (kh // 2, kw // 2)


def normalisation_of(net: DlibNet) -> Normalisation:
    """dlib's input_rgb_image_sized: (pixel - mean) / 256, with the mean read from the file."""
    # Shortest decimal that round-trips to the file's float32 (122.782, not 122.78199768066406).
    r, g, b = (float(str(np.float32(m))) for m in net.input.mean)
    return Normalisation(mean=(r, g, b), scale=1.0 / 256.0)


def notes_of(net: DlibNet) -> str:
    """The sidecar's notes: the same text whichever backend wrote the file."""
    return (
        f"dlib ResNet v1 rebuilt from the .dat ({net.count(Conv)} conv, {net.count(Affine)} affine folded, "
        f"{net.num_params} parameters); input (pixel - mean) / 256 in RGB"
    )
