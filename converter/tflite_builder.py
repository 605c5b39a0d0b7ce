"""A small writer of TFLite flatbuffers from NumPy arrays: no TensorFlow, only the `flatbuffers` runtime.

Why: the device's default model (dlib's ResNet) uses a handful of builtin ops, and
TensorFlow (1.6 GB, slow or absent under emulation) is only needed to *write* the
file. The tables below are written by hand with the field slots of TensorFlow
Lite's schema.fbs (tensorflow/lite/schema/schema.fbs; slot n is vtable offset
4 + 2n). Only the ops our networks use are known here; tests/converter check the
constants against the generated schema LiteRT ships (ai_edge_litert.schema_py_generated)
and every written model is run on LiteRT before it is kept.

The caller keeps track of shapes (it knows its network); this module only records
tensors, constant buffers and operators, and serialises them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import flatbuffers
import numpy as np

FILE_IDENTIFIER = b"TFL3"
SCHEMA_VERSION = 3

# schema.fbs enum BuiltinOperator (int32).
BUILTIN_OPERATORS: dict[str, int] = {
    "ADD": 0,
    "AVERAGE_POOL_2D": 1,
    "CONV_2D": 3,
    "DEPTHWISE_CONV_2D": 4,
    "FULLY_CONNECTED": 9,
    "L2_NORMALIZATION": 11,
    "MAX_POOL_2D": 17,
    "RELU": 19,
    "RESHAPE": 22,
    "SOFTMAX": 25,
    "PAD": 34,
    "TRANSPOSE": 39,
    "MEAN": 40,
    "SUB": 41,
    "PRELU": 54,
}

# schema.fbs union BuiltinOptions (ubyte): the index of each options table we write.
BUILTIN_OPTIONS: dict[str, int] = {
    "Conv2DOptions": 1,
    "Pool2DOptions": 5,
    "FullyConnectedOptions": 8,
    "SoftmaxOptions": 9,
    "AddOptions": 11,
    "ReshapeOptions": 17,
    "PadOptions": 22,
    "ReducerOptions": 27,
}

# schema.fbs enum TensorType (byte).
TENSOR_TYPES: dict[str, int] = {"float32": 0, "int32": 2}

Padding = Literal["SAME", "VALID"]
Activation = Literal["NONE", "RELU"]
_PADDING = {"SAME": 0, "VALID": 1}
_ACTIVATION = {"NONE": 0, "RELU": 1}

# Field slots (schema.fbs declaration order) of the tables this writer emits.
_MODEL_VERSION, _MODEL_OPCODES, _MODEL_SUBGRAPHS, _MODEL_DESCRIPTION, _MODEL_BUFFERS = range(5)
_SUBGRAPH_TENSORS, _SUBGRAPH_INPUTS, _SUBGRAPH_OUTPUTS, _SUBGRAPH_OPERATORS, _SUBGRAPH_NAME = range(5)
_TENSOR_SHAPE, _TENSOR_TYPE, _TENSOR_BUFFER, _TENSOR_NAME = range(4)
_TENSOR_SHAPE_SIGNATURE = 7  # after quantization, is_variable, sparsity
_OP_OPCODE_INDEX, _OP_INPUTS, _OP_OUTPUTS, _OP_OPTIONS_TYPE, _OP_OPTIONS = range(5)
_OPCODE_DEPRECATED_BUILTIN, _OPCODE_CUSTOM, _OPCODE_VERSION, _OPCODE_BUILTIN = range(4)
_BUFFER_DATA = 0
BUFFER_ALIGNMENT = 16  # schema.fbs: data:[ubyte] (force_align: 16)


# --------------------------------------------------------------------------- options tables


@dataclass(frozen=True)
class Conv2DOptions:
    padding: Padding = "VALID"
    stride: tuple[int, int] = (1, 1)  # (h, w)
    activation: Activation = "NONE"

    def write(self, b: flatbuffers.Builder) -> int:
        b.StartObject(7)
        b.PrependInt8Slot(0, _PADDING[self.padding], 0)
        b.PrependInt32Slot(1, self.stride[1], 0)
        b.PrependInt32Slot(2, self.stride[0], 0)
        b.PrependInt8Slot(3, _ACTIVATION[self.activation], 0)
        b.PrependInt32Slot(4, 1, 1)  # dilation_w_factor
        b.PrependInt32Slot(5, 1, 1)  # dilation_h_factor
        return b.EndObject()


@dataclass(frozen=True)
class Pool2DOptions:
    filter: tuple[int, int]  # (h, w)
    stride: tuple[int, int]  # (h, w)
    padding: Padding = "VALID"
    activation: Activation = "NONE"

    def write(self, b: flatbuffers.Builder) -> int:
        b.StartObject(6)
        b.PrependInt8Slot(0, _PADDING[self.padding], 0)
        b.PrependInt32Slot(1, self.stride[1], 0)
        b.PrependInt32Slot(2, self.stride[0], 0)
        b.PrependInt32Slot(3, self.filter[1], 0)
        b.PrependInt32Slot(4, self.filter[0], 0)
        b.PrependInt8Slot(5, _ACTIVATION[self.activation], 0)
        return b.EndObject()


@dataclass(frozen=True)
class FullyConnectedOptions:
    activation: Activation = "NONE"
    keep_num_dims: bool = False

    def write(self, b: flatbuffers.Builder) -> int:
        b.StartObject(3)
        b.PrependInt8Slot(0, _ACTIVATION[self.activation], 0)
        b.PrependInt8Slot(1, 0, 0)  # weights_format DEFAULT
        b.PrependBoolSlot(2, self.keep_num_dims, False)
        return b.EndObject()


@dataclass(frozen=True)
class SoftmaxOptions:
    beta: float = 1.0

    def write(self, b: flatbuffers.Builder) -> int:
        b.StartObject(1)
        b.PrependFloat32Slot(0, self.beta, 0.0)
        return b.EndObject()


@dataclass(frozen=True)
class AddOptions:
    activation: Activation = "NONE"

    def write(self, b: flatbuffers.Builder) -> int:
        b.StartObject(1)
        b.PrependInt8Slot(0, _ACTIVATION[self.activation], 0)
        return b.EndObject()


@dataclass(frozen=True)
class ReshapeOptions:
    new_shape: tuple[int, ...]

    def write(self, b: flatbuffers.Builder) -> int:
        shape = b.CreateNumpyVector(np.asarray(self.new_shape, np.int32))
        b.StartObject(1)
        b.PrependUOffsetTRelativeSlot(0, shape, 0)
        return b.EndObject()


@dataclass(frozen=True)
class PadOptions:
    def write(self, b: flatbuffers.Builder) -> int:
        b.StartObject(0)
        return b.EndObject()


@dataclass(frozen=True)
class ReducerOptions:
    keep_dims: bool = False

    def write(self, b: flatbuffers.Builder) -> int:
        b.StartObject(1)
        b.PrependBoolSlot(0, self.keep_dims, False)
        return b.EndObject()


Options = (
    Conv2DOptions
    | Pool2DOptions
    | FullyConnectedOptions
    | SoftmaxOptions
    | AddOptions
    | ReshapeOptions
    | PadOptions
    | ReducerOptions
)


# --------------------------------------------------------------------------- graph


@dataclass(frozen=True)
class Tensor:
    shape: tuple[int, ...]
    dtype: str  # a key of TENSOR_TYPES
    name: str
    buffer: int  # 0: no data (activations); > 0: index into the constant buffers
    signature: tuple[int, ...] | None = None  # shape_signature: -1 where the runtime may resize


@dataclass(frozen=True)
class Operator:
    op: str  # a key of BUILTIN_OPERATORS
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: Options | None


class GraphBuilder:
    """One subgraph of float32 activations and float32/int32 constants, serialised by `to_bytes`.

    `dynamic_axes`: axes recorded as -1 in every activation's shape_signature (MTCNN's
    P-Net takes any H x W, R-/O-Net any batch), as TensorFlow's converter records them;
    the shapes given are then only the ones the interpreter first allocates for.
    """

    def __init__(self, dynamic_axes: tuple[int, ...] = ()) -> None:
        self.dynamic_axes = dynamic_axes
        self.tensors: list[Tensor] = []
        self.operators: list[Operator] = []
        self.buffers: list[bytes] = [b""]  # buffer 0: the empty sentinel every activation points at
        self.inputs: list[int] = []

    def _tensor(self, shape: tuple[int, ...], dtype: str, name: str, buffer: int = 0) -> int:
        if dtype not in TENSOR_TYPES:
            raise ValueError(f"tensor {name!r}: unsupported dtype {dtype}")
        dims = tuple(int(d) for d in shape)
        signature = None
        if buffer == 0 and self.dynamic_axes:
            signature = tuple(-1 if i in self.dynamic_axes else d for i, d in enumerate(dims))
        self.tensors.append(Tensor(dims, dtype, name, buffer, signature))
        return len(self.tensors) - 1

    def shape(self, tensor: int) -> tuple[int, ...]:
        return self.tensors[tensor].shape

    def input(self, shape: tuple[int, ...], name: str) -> int:
        index = self._tensor(shape, "float32", name)
        self.inputs.append(index)
        return index

    def constant(self, array: np.ndarray, name: str) -> int:
        """A constant tensor; float arrays are stored as float32, integer arrays as int32 (little-endian)."""
        data = np.asarray(array)
        dtype = "float32" if data.dtype.kind == "f" else "int32"
        data = np.ascontiguousarray(data, dtype="<f4" if dtype == "float32" else "<i4")
        self.buffers.append(data.tobytes())
        return self._tensor(data.shape, dtype, name, len(self.buffers) - 1)

    def op(
        self, op: str, inputs: list[int], output_shape: tuple[int, ...], name: str, options: Options | None = None
    ) -> int:
        """Append one builtin operator with a new float32 output tensor of `output_shape`; returns its index."""
        if op not in BUILTIN_OPERATORS:
            raise ValueError(f"operator {op} is not known to this writer")
        out = self._tensor(output_shape, "float32", name)
        self.operators.append(Operator(op, tuple(inputs), (out,), options))
        return out

    def to_bytes(self, outputs: list[int], description: str = "") -> bytes:
        """Serialise as a TFLite model (schema version 3, file identifier TFL3)."""
        total = sum(len(d) + BUFFER_ALIGNMENT for d in self.buffers)
        b = flatbuffers.Builder(total + 64 * 1024 * max(1, len(self.operators) // 64))
        buffer_offsets = [_write_buffer(b, data) for data in self.buffers]
        opcodes = sorted({o.op for o in self.operators}, key=lambda name: BUILTIN_OPERATORS[name])
        opcode_index = {name: i for i, name in enumerate(opcodes)}
        opcode_offsets = [_write_opcode(b, BUILTIN_OPERATORS[name]) for name in opcodes]
        tensor_offsets = [_write_tensor(b, t) for t in self.tensors]
        operator_offsets = [_write_operator(b, o, opcode_index[o.op]) for o in self.operators]

        tensors = _offset_vector(b, tensor_offsets)
        operators = _offset_vector(b, operator_offsets)
        graph_inputs = b.CreateNumpyVector(np.asarray(self.inputs, np.int32))
        graph_outputs = b.CreateNumpyVector(np.asarray(outputs, np.int32))
        graph_name = b.CreateString("main")
        b.StartObject(5)
        b.PrependUOffsetTRelativeSlot(_SUBGRAPH_TENSORS, tensors, 0)
        b.PrependUOffsetTRelativeSlot(_SUBGRAPH_INPUTS, graph_inputs, 0)
        b.PrependUOffsetTRelativeSlot(_SUBGRAPH_OUTPUTS, graph_outputs, 0)
        b.PrependUOffsetTRelativeSlot(_SUBGRAPH_OPERATORS, operators, 0)
        b.PrependUOffsetTRelativeSlot(_SUBGRAPH_NAME, graph_name, 0)
        subgraph = b.EndObject()

        subgraphs = _offset_vector(b, [subgraph])
        opcode_vector = _offset_vector(b, opcode_offsets)
        buffers = _offset_vector(b, buffer_offsets)
        desc = b.CreateString(description)
        b.StartObject(5)
        b.PrependUint32Slot(_MODEL_VERSION, SCHEMA_VERSION, 0)
        b.PrependUOffsetTRelativeSlot(_MODEL_OPCODES, opcode_vector, 0)
        b.PrependUOffsetTRelativeSlot(_MODEL_SUBGRAPHS, subgraphs, 0)
        b.PrependUOffsetTRelativeSlot(_MODEL_DESCRIPTION, desc, 0)
        b.PrependUOffsetTRelativeSlot(_MODEL_BUFFERS, buffers, 0)
        model = b.EndObject()
        b.Finish(model, file_identifier=FILE_IDENTIFIER)
        return bytes(b.Output())


def _offset_vector(b: flatbuffers.Builder, offsets: list[int]) -> int:
    b.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        b.PrependUOffsetTRelative(off)
    return b.EndVector()


def _write_buffer(b: flatbuffers.Builder, data: bytes) -> int:
    vector = None
    if data:
        # Written by hand (not CreateNumpyVector) for the schema's 16-byte alignment of weights.
        b.StartVector(1, len(data), BUFFER_ALIGNMENT)
        b.head -= len(data)
        b.Bytes[b.head : b.head + len(data)] = data
        b.vectorNumElems = len(data)
        vector = b.EndVector()
    b.StartObject(1)
    if vector is not None:
        b.PrependUOffsetTRelativeSlot(_BUFFER_DATA, vector, 0)
    return b.EndObject()


def _write_opcode(b: flatbuffers.Builder, code: int) -> int:
    b.StartObject(4)
    b.PrependInt8Slot(_OPCODE_DEPRECATED_BUILTIN, min(code, 127), 0)
    b.PrependInt32Slot(_OPCODE_VERSION, 1, 1)
    b.PrependInt32Slot(_OPCODE_BUILTIN, code, 0)
    return b.EndObject()


def _write_tensor(b: flatbuffers.Builder, t: Tensor) -> int:
    shape = b.CreateNumpyVector(np.asarray(t.shape, np.int32))
    name = b.CreateString(t.name)
    signature = None if t.signature is None else b.CreateNumpyVector(np.asarray(t.signature, np.int32))
    b.StartObject(_TENSOR_SHAPE_SIGNATURE + 1)
    b.PrependUOffsetTRelativeSlot(_TENSOR_SHAPE, shape, 0)
    if signature is not None:
        b.PrependUOffsetTRelativeSlot(_TENSOR_SHAPE_SIGNATURE, signature, 0)
    b.PrependInt8Slot(_TENSOR_TYPE, TENSOR_TYPES[t.dtype], 0)
    b.PrependUint32Slot(_TENSOR_BUFFER, t.buffer, 0)
    b.PrependUOffsetTRelativeSlot(_TENSOR_NAME, name, 0)
    return b.EndObject()


def _write_operator(b: flatbuffers.Builder, o: Operator, opcode_index: int) -> int:
    inputs = b.CreateNumpyVector(np.asarray(o.inputs, np.int32))
    outputs = b.CreateNumpyVector(np.asarray(o.outputs, np.int32))
    options = o.options.write(b) if o.options is not None else None
    b.StartObject(5)
    b.PrependUint32Slot(_OP_OPCODE_INDEX, opcode_index, 0)
    b.PrependUOffsetTRelativeSlot(_OP_INPUTS, inputs, 0)
    b.PrependUOffsetTRelativeSlot(_OP_OUTPUTS, outputs, 0)
    if options is not None and o.options is not None:
        b.PrependUint8Slot(_OP_OPTIONS_TYPE, BUILTIN_OPTIONS[type(o.options).__name__], 0)
        b.PrependUOffsetTRelativeSlot(_OP_OPTIONS, options, 0)
    return b.EndObject()
