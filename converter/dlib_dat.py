"""Pure-NumPy reader of dlib's DNN serialisation (`*.dat` written by `dlib::serialize(net)`).

Why a reader of our own: dlib takes ~10 minutes to build from source and is not
needed on the device, while the format is simple (see shared/notes/dlib-dat-format.md;
source of truth: dlib's serialize.h, cuda/tensor.h, dnn/core.h, layers.h, input.h,
loss.h). No TensorFlow here, so a bad file is rejected before TensorFlow loads.

Layout, outermost first: the loss layer (version 1, its tag and details, then its
subnetwork); every `add_layer` writes its version (2) and then its subnetwork
*before* its own details; tag/skip layers write version 1 and their subnetwork only;
the bottom add_layer (version 3) carries the input layer. So the file opens with a
run of versions and the layer payloads then follow in input -> output order, which
is the order `DlibNet.layers` uses.

Tensors are returned as read-only `np.frombuffer` views of the file bytes (no
per-float Python loop, no copy of the 22 MB of weights).

Why one module over 300 lines: it is one file format's reader (layer records, tensor layout, tag resolution); split, the format would be scattered across files that are only ever read together.
"""

from __future__ import annotations

import builtins
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

__all__ = [
    "AddPrev",
    "Affine",
    "Conv",
    "DatFormatError",
    "DlibNet",
    "Fc",
    "InputRGB",
    "Layer",
    "LossMetric",
    "Pool",
    "Relu",
    "Skip",
    "Tag",
    "parse_dat",
    "read_dat",
]

# dlib's float_details exponent codes for the non-finite values.
_EXP_INF, _EXP_NINF, _EXP_NAN = 32000, 32001, 32002

LOSS_TAG = "loss_metric_2"
INPUT_TAG = "input_rgb_image_sized"
LAYER_TAGS = ("con_4", "affine_", "relu_", "add_prev_", "max_pool_2", "avg_pool_2", "fc_2")


class DatFormatError(ValueError):
    """The bytes are not (or no longer) a dlib DNN file this reader understands.

    Always one line: what was expected, what was found, and the byte offset.
    """

    def __init__(self, message: str, offset: int | None = None) -> None:
        self.offset = offset
        super().__init__(message)


# --------------------------------------------------------------------------- layers


@dataclass(frozen=True)
class LossMetric:
    """`loss_metric_2`: only recorded for the sidecar; inference stops before the loss."""

    margin: float
    distance_threshold: float


@dataclass(frozen=True)
class InputRGB:
    """`input_rgb_image_sized`: network input = (pixel - mean) / 256, RGB order."""

    mean: tuple[float, float, float]
    rows: int
    cols: int


@dataclass(frozen=True, eq=False)
class Conv:
    """`con_4`: cross-correlation with bias, explicit symmetric zero padding."""

    filters: np.ndarray  # (out, in, kh, kw) float32
    bias: np.ndarray  # (out,) float32
    stride: tuple[int, int]  # (y, x)
    pad: tuple[int, int]  # (y, x)
    offset: int = field(default=0, compare=False)


@dataclass(frozen=True, eq=False)
class Affine:
    """`affine_`: frozen batch norm, y = gamma * x + beta (mode 0: per channel)."""

    gamma: np.ndarray  # (C,) float32
    beta: np.ndarray  # (C,) float32
    mode: int
    offset: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Relu:
    offset: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Pool:
    """`max_pool_2` / `avg_pool_2`. A 0x0 average pool is dlib's avg_pool_everything."""

    kind: Literal["max", "avg"]
    size: tuple[int, int]  # (rows, cols); (0, 0) = whole input
    stride: tuple[int, int]
    pad: tuple[int, int]
    offset: int = field(default=0, compare=False)

    @property
    def is_global(self) -> bool:
        return self.size == (0, 0)


@dataclass(frozen=True, eq=False)
class Fc:
    """`fc_2`: y = x . weights (+ bias); weights stored (num_inputs, num_outputs)."""

    weights: np.ndarray  # (num_inputs, num_outputs) float32
    bias: np.ndarray | None  # (num_outputs,) or None (bias_mode 1 = FC_NO_BIAS)
    offset: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Tag:
    """dlib `tagN`: remembers the output at this point under id N."""

    id: int
    offset: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Skip:
    """dlib `skipN`: continue from the output remembered by tag N."""

    tag: int
    offset: int = field(default=0, compare=False)


@dataclass(frozen=True)
class AddPrev:
    """`add_prev_`: current output + output of tag N (max-shape, zero-filled; see dlib_model)."""

    tag: int
    offset: int = field(default=0, compare=False)


Layer = Conv | Affine | Relu | Pool | Fc | Tag | Skip | AddPrev


@dataclass(frozen=True)
class DlibNet:
    """A parsed network: layers in input -> output order (the order to evaluate them)."""

    loss: LossMetric
    input: InputRGB
    layers: tuple[Layer, ...]
    sample_expansion_factor: int
    size_bytes: int

    @property
    def num_params(self) -> int:
        total = 0
        for layer in self.layers:
            if isinstance(layer, Conv):
                total += layer.filters.size + layer.bias.size
            elif isinstance(layer, Affine):
                total += layer.gamma.size + layer.beta.size
            elif isinstance(layer, Fc):
                total += layer.weights.size + (0 if layer.bias is None else layer.bias.size)
        return total

    def count(self, kind: type) -> int:
        return sum(isinstance(layer, kind) for layer in self.layers)

    @property
    def embedding_size(self) -> int:
        fcs = [layer for layer in self.layers if isinstance(layer, Fc)]
        return int(fcs[-1].weights.shape[1]) if fcs else 0


# --------------------------------------------------------------------------- primitives


class Cursor:
    """A read position over the file bytes; every read checks bounds and names what it reads."""

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        self.buf = memoryview(data).cast("B")
        self.pos = 0

    @property
    def remaining(self) -> int:
        return len(self.buf) - self.pos

    def take(self, n: int, what: str) -> memoryview:
        if n < 0 or n > self.remaining:
            raise DatFormatError(
                f"truncated file: expected {n} bytes of {what} at byte offset {self.pos}, "
                f"but the file ends at byte {len(self.buf)}",
                self.pos,
            )
        chunk = self.buf[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def int(self, what: str) -> int:
        """dlib packed integer: control byte (low nibble = size, 0x80 = negative), little-endian magnitude."""
        start = self.pos
        control = self.take(1, what)[0]
        size = control & 0x0F
        if size > 8 or control & 0x70:
            raise DatFormatError(
                f"expected {what} (a dlib packed integer) at byte offset {start}, found control byte 0x{control:02x}",
                start,
            )
        value = int.from_bytes(self.take(size, what), "little")
        return -value if control & 0x80 else value

    # Inside this class `int` is the method above: annotations spell the type builtins.int.
    def expect_int(self, expected: builtins.int, what: str) -> builtins.int:
        start = self.pos
        value = self.int(what)
        if value != expected:
            raise DatFormatError(f"expected {what} {expected} at byte offset {start}, found {value}", start)
        return value

    def string(self, what: str, max_len: builtins.int = 4096) -> str:
        start = self.pos
        length = self.int(f"length of {what}")
        if length < 0 or length > max_len:
            raise DatFormatError(
                f"expected {what} (a short string) at byte offset {start}, found length {length}", start
            )
        raw = bytes(self.take(length, what))
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise DatFormatError(
                f"expected {what} (an ASCII string) at byte offset {start}, found {raw[:32]!r}", start
            ) from None

    def bool(self, what: str) -> bool:
        start = self.pos
        ch = self.take(1, what)[0]
        if ch not in (ord("0"), ord("1")):
            raise DatFormatError(f"expected {what} (ASCII '0' or '1') at byte offset {start}, found 0x{ch:02x}", start)
        return ch == ord("1")

    def float(self, what: str) -> float:
        """dlib float/double: packed int64 mantissa m, packed int16 exponent e; value m * 2**e."""
        mantissa = self.int(f"mantissa of {what}")
        start = self.pos
        exponent = self.int(f"exponent of {what}")
        if exponent == _EXP_INF:
            return math.inf
        if exponent == _EXP_NINF:
            return -math.inf
        if exponent == _EXP_NAN:
            return math.nan
        if not -32768 <= exponent <= 32767:
            raise DatFormatError(f"expected {what} exponent (int16) at byte offset {start}, found {exponent}", start)
        return math.ldexp(float(mantissa), exponent)

    def tensor(self, what: str) -> np.ndarray:
        """dlib resizable_tensor: version 2, (n, k, nr, nc), then n*k*nr*nc float32 little-endian."""
        start = self.pos
        self.expect_int(2, f"{what} tensor version")
        shape = tuple(self.int(f"{what} tensor dimension") for _ in range(4))
        if any(d < 0 for d in shape):
            raise DatFormatError(
                f"expected non-negative {what} tensor shape at byte offset {start}, found {shape}", start
            )
        count = math.prod(shape)
        raw = self.take(4 * count, f"{what} tensor data {shape}")
        return np.frombuffer(raw, dtype="<f4", count=count).reshape(shape)

    def alias_tensor(self, what: str) -> tuple[builtins.int, ...]:
        """dlib alias_tensor: version 1, then a shape (n, k, nr, nc) and no data."""
        self.expect_int(1, f"{what} alias tensor version")
        return tuple(self.int(f"{what} alias tensor dimension") for _ in range(4))


# --------------------------------------------------------------------------- layer payloads


def _lr_multipliers(cur: Cursor, n: int, what: str) -> None:
    """Training-only learning-rate / weight-decay multipliers: read and dropped."""
    for _ in range(n):
        cur.float(f"{what} multiplier")


def _read_conv(cur: Cursor, offset: int) -> Conv:
    params = cur.tensor("con_4 params").reshape(-1)
    num_filters = cur.int("con_4 num_filters")
    nr, nc = cur.int("con_4 rows"), cur.int("con_4 cols")
    stride = (cur.int("con_4 stride_y"), cur.int("con_4 stride_x"))
    pad = (cur.int("con_4 padding_y"), cur.int("con_4 padding_x"))
    fshape = cur.alias_tensor("con_4 filters")
    bshape = cur.alias_tensor("con_4 biases")
    _lr_multipliers(cur, 4, "con_4")
    n_f, n_b = math.prod(fshape), math.prod(bshape)
    if fshape[0] != num_filters or fshape[2:] != (nr, nc) or n_b != num_filters or n_f + n_b != params.size:
        raise DatFormatError(
            f"con_4 at byte offset {offset}: filters {fshape} + biases {bshape} do not match "
            f"{num_filters} filters of {nr}x{nc} and {params.size} parameters",
            offset,
        )
    if min(stride) < 1 or min(pad) < 0:
        raise DatFormatError(f"con_4 at byte offset {offset}: invalid stride {stride} or padding {pad}", offset)
    return Conv(params[:n_f].reshape(fshape), params[n_f:], stride, pad, offset)


def _read_affine(cur: Cursor, offset: int) -> Affine:
    params = cur.tensor("affine_ params").reshape(-1)
    gshape = cur.alias_tensor("affine_ gamma")
    bshape = cur.alias_tensor("affine_ beta")
    mode = cur.int("affine_ mode")
    n_g, n_b = math.prod(gshape), math.prod(bshape)
    if mode != 0 or n_g != n_b or n_g + n_b != params.size:
        raise DatFormatError(
            f"affine_ at byte offset {offset}: expected per-channel mode 0 with gamma and beta of equal size, "
            f"found mode {mode}, gamma {gshape}, beta {bshape}, {params.size} parameters",
            offset,
        )
    return Affine(params[:n_g], params[n_g:], mode, offset)


def _read_pool(cur: Cursor, kind: Literal["max", "avg"], offset: int) -> Pool:
    tag = f"{kind}_pool_2"
    size = (cur.int(f"{tag} rows"), cur.int(f"{tag} cols"))
    stride = (cur.int(f"{tag} stride_y"), cur.int(f"{tag} stride_x"))
    pad = (cur.int(f"{tag} padding_y"), cur.int(f"{tag} padding_x"))
    return Pool(kind, size, stride, pad, offset)


def _read_fc(cur: Cursor, offset: int) -> Fc:
    num_outputs = cur.int("fc_2 num_outputs")
    num_inputs = cur.int("fc_2 num_inputs")
    params = cur.tensor("fc_2 params").reshape(-1)
    cur.alias_tensor("fc_2 weights")
    cur.alias_tensor("fc_2 biases")
    bias_mode = cur.int("fc_2 bias_mode")
    _lr_multipliers(cur, 4, "fc_2")
    has_bias = bias_mode == 0
    rows = num_inputs + (1 if has_bias else 0)
    if bias_mode not in (0, 1) or params.size != rows * num_outputs:
        raise DatFormatError(
            f"fc_2 at byte offset {offset}: {params.size} parameters do not match {num_inputs} inputs, "
            f"{num_outputs} outputs and bias_mode {bias_mode}",
            offset,
        )
    matrix = params.reshape(rows, num_outputs)
    return Fc(matrix[:num_inputs], matrix[num_inputs] if has_bias else None, offset)


def _read_layer(cur: Cursor) -> Layer:
    offset = cur.pos
    tag = cur.string("layer tag", max_len=64)
    if tag == "con_4":
        return _read_conv(cur, offset)
    if tag == "affine_":
        return _read_affine(cur, offset)
    if tag == "relu_":
        return Relu(offset)
    if tag == "add_prev_":
        return AddPrev(0, offset)  # tag id resolved by _resolve_tags
    if tag == "max_pool_2":
        return _read_pool(cur, "max", offset)
    if tag == "avg_pool_2":
        return _read_pool(cur, "avg", offset)
    if tag == "fc_2":
        return _read_fc(cur, offset)
    raise DatFormatError(
        f"expected a layer tag ({', '.join(LAYER_TAGS)}) at byte offset {offset}, found {tag!r}", offset
    )


def _read_add_layer_state(cur: Cursor) -> None:
    """Training state after each layer's details: 3 bools, 3 tensors (empty in a saved net)."""
    for name in ("this_layer_setup_called", "gradient_input_is_stale", "get_output_and_gradient_input_disabled"):
        cur.bool(name)
    for name in ("x_grad", "cached_output", "params_grad"):
        cur.tensor(name)


def _read_input(cur: Cursor) -> InputRGB:
    offset = cur.pos
    tag = cur.string("input layer tag", max_len=64)
    if tag != INPUT_TAG:
        raise DatFormatError(f"expected input layer {INPUT_TAG!r} at byte offset {offset}, found {tag!r}", offset)
    mean = (cur.float("mean red"), cur.float("mean green"), cur.float("mean blue"))
    rows, cols = cur.int("input rows"), cur.int("input cols")
    if rows <= 0 or cols <= 0:
        raise DatFormatError(f"input layer at byte offset {offset}: invalid size {rows}x{cols}", offset)
    return InputRGB(mean, rows, cols)


# --------------------------------------------------------------------------- tag/skip ids


@dataclass(frozen=True)
class _Wrapper:
    """A version-1 layer in the nesting run: a tag or a skip. The file does not say which, nor the id."""

    offset: int


def _resolve_tags(layers: list[Layer | _Wrapper]) -> list[Layer]:
    """Give tag/skip/add_prev layers their ids, which dlib does not store (they are template arguments).

    dlib's ResNet templates (dnn_face_recognition_ex.cpp) use exactly two patterns:
      residual      = add_prev1<block<tag1<x>>>
      residual_down = add_prev2<avg_pool<skip1<tag2<block<tag1<x>>>>>>
    so, in input -> output order, a lone wrapper is `tag1`, a wrapper directly followed by
    another is `tag2` then `skip1`, and an add_prev adds the most recent tag. Anything the
    rules cannot explain (three wrappers in a row, add_prev or skip with no tag) is rejected.
    """
    out: list[Layer] = []
    i = 0
    last_tag: int | None = None
    while i < len(layers):
        item = layers[i]
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        if isinstance(item, _Wrapper):
            if isinstance(nxt, _Wrapper):
                after = layers[i + 2] if i + 2 < len(layers) else None
                if isinstance(after, _Wrapper) or not any(isinstance(t, Tag) and t.id == 1 for t in out):
                    raise DatFormatError(
                        f"unexpected tag/skip layer structure at byte offset {item.offset}", item.offset
                    )
                out += [Tag(2, item.offset), Skip(1, nxt.offset)]
                last_tag = 2
                i += 2
                continue
            out.append(Tag(1, item.offset))
            last_tag = 1
        elif isinstance(item, AddPrev):
            if last_tag is None:
                raise DatFormatError(f"add_prev_ at byte offset {item.offset} has no tag layer to add", item.offset)
            out.append(AddPrev(last_tag, item.offset))
            last_tag = None
        else:
            out.append(item)
        i += 1
    return out


# --------------------------------------------------------------------------- entry points


def parse_dat(data: bytes | bytearray | memoryview) -> DlibNet:
    """Parse a whole file's bytes. Raises DatFormatError (one line, with byte offset)."""
    cur = Cursor(data)
    try:
        cur.expect_int(1, "loss layer version")
    except DatFormatError as exc:
        raise DatFormatError(f"not a dlib DNN file: {exc}", exc.offset) from None
    offset = cur.pos
    loss_tag = cur.string("loss layer tag", max_len=64)
    if loss_tag != LOSS_TAG:
        raise DatFormatError(f"expected loss layer {LOSS_TAG!r} at byte offset {offset}, found {loss_tag!r}", offset)
    loss = LossMetric(cur.float("loss margin"), cur.float("loss distance threshold"))

    nesting: list[int] = []  # outermost first: 2 = add_layer, 1 = tag/skip
    while True:
        offset = cur.pos
        version = cur.int("layer version")
        if version == 3:
            break
        if version not in (1, 2):
            raise DatFormatError(
                f"expected a layer version (1, 2 or 3) at byte offset {offset}, found {version}", offset
            )
        nesting.append(version)

    input_layer = _read_input(cur)
    layers: list[Layer | _Wrapper] = [_read_layer(cur)]
    _read_add_layer_state(cur)
    sample_expansion_factor = cur.int("sample_expansion_factor")
    for version in reversed(nesting):
        if version == 1:
            layers.append(_Wrapper(cur.pos))
        else:
            layers.append(_read_layer(cur))
            _read_add_layer_state(cur)
    if cur.remaining:
        raise DatFormatError(
            f"expected end of file at byte offset {cur.pos}, found {cur.remaining} more bytes", cur.pos
        )
    return DlibNet(loss, input_layer, tuple(_resolve_tags(layers)), sample_expansion_factor, len(cur.buf))


def read_dat(path: Path | str) -> DlibNet:
    """Read and parse a .dat file; errors name the file and stay one line."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatFormatError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return parse_dat(data)
    except DatFormatError as exc:
        raise DatFormatError(f"{path.name}: {exc}", exc.offset) from None
