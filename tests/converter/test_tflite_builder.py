"""converter/tflite_builder.py: hand-written TFLite tables, read back by LiteRT's generated schema and run on LiteRT.

No TensorFlow: the schema constants and field slots are checked against the
generated Python schema that ships inside ai-edge-litert, and a small graph with
every op the dlib network uses is run on the LiteRT interpreter against NumPy.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from converter.tflite_builder import (
    BUILTIN_OPERATORS,
    BUILTIN_OPTIONS,
    TENSOR_TYPES,
    AddOptions,
    Conv2DOptions,
    FullyConnectedOptions,
    GraphBuilder,
    PadOptions,
    Pool2DOptions,
    ReducerOptions,
    ReshapeOptions,
    SoftmaxOptions,
)
from converter.tflite_export import _LiteRTRunner, tflite_ops

schema = pytest.importorskip("ai_edge_litert.schema_py_generated")


def test_enum_values_match_litert_schema() -> None:
    for name, code in BUILTIN_OPERATORS.items():
        assert getattr(schema.BuiltinOperator, name) == code, name
    for name, index in BUILTIN_OPTIONS.items():
        assert getattr(schema.BuiltinOptions, name) == index, name
    for name, code in TENSOR_TYPES.items():
        assert getattr(schema.TensorType, name.upper()) == code, name


def _rng_array(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.normal(size=shape).astype(np.float32)


def _small_graph() -> tuple[bytes, dict[str, np.ndarray]]:
    """x -> conv3x3 s2 VALID + relu -> maxpool 2 -> pad channel -> add(relu) -> avgpool -> mean -> fc -> softmax."""
    rng = np.random.default_rng(3)
    w = {
        "kernel": _rng_array(rng, 4, 3, 3, 2),  # (out, kh, kw, in)
        "bias": _rng_array(rng, 4),
        "other": _rng_array(rng, 1, 4, 4, 6),
        "fc": _rng_array(rng, 5, 6),  # (out, in)
        "fc_bias": _rng_array(rng, 5),
    }
    g = GraphBuilder()
    x = g.input((1, 9, 9, 2), "x")
    y = g.op(
        "CONV_2D",
        [x, g.constant(w["kernel"], "k"), g.constant(w["bias"], "b")],
        (1, 4, 4, 4),
        "conv",
        Conv2DOptions("VALID", (2, 2), "RELU"),
    )
    y = g.op(
        "PAD",
        [y, g.constant(np.array([[0, 0], [0, 0], [0, 0], [0, 2]], np.int32), "p")],
        (1, 4, 4, 6),
        "pad",
        PadOptions(),
    )
    y = g.op("ADD", [y, g.constant(w["other"], "o")], (1, 4, 4, 6), "add", AddOptions("RELU"))
    y = g.op("MAX_POOL_2D", [y], (1, 3, 3, 6), "max", Pool2DOptions((2, 2), (1, 1)))
    y = g.op("AVERAGE_POOL_2D", [y], (1, 2, 2, 6), "avg", Pool2DOptions((2, 2), (1, 1)))
    y = g.op("MEAN", [y, g.constant(np.array([1, 2], np.int32), "axes")], (1, 6), "mean", ReducerOptions())
    y = g.op(
        "FULLY_CONNECTED",
        [y, g.constant(w["fc"], "fc"), g.constant(w["fc_bias"], "fcb")],
        (1, 5),
        "fc",
        FullyConnectedOptions(),
    )
    y = g.op("RESHAPE", [y, g.constant(np.array([1, 5], np.int32), "shape")], (1, 5), "reshape", ReshapeOptions((1, 5)))
    y = g.op("SOFTMAX", [y], (1, 5), "softmax", SoftmaxOptions(1.0))
    return g.to_bytes([y], "test"), w


def _numpy_small_graph(x: np.ndarray, w: dict[str, np.ndarray]) -> np.ndarray:
    x = x.astype(np.float64)
    win = sliding_window_view(x, (3, 3), axis=(1, 2))[:, ::2, ::2]  # (1, 4, 4, in, kh, kw)
    y = np.maximum(np.einsum("nhwcij,oijc->nhwo", win, w["kernel"]) + w["bias"], 0)
    y = np.pad(y, [(0, 0), (0, 0), (0, 0), (0, 2)])
    y = np.maximum(y + w["other"], 0)
    y = sliding_window_view(y, (2, 2), axis=(1, 2)).max(axis=(4, 5))
    y = sliding_window_view(y, (2, 2), axis=(1, 2)).mean(axis=(4, 5))
    y = y.mean(axis=(1, 2)) @ w["fc"].T + w["fc_bias"]
    e = np.exp(y - y.max())
    return (e / e.sum()).reshape(-1)


def test_small_graph_runs_on_litert_like_numpy() -> None:
    data, weights = _small_graph()
    assert data[4:8] == b"TFL3"
    assert set(tflite_ops(data)) == {
        "ADD",
        "AVERAGE_POOL_2D",
        "CONV_2D",
        "FULLY_CONNECTED",
        "MAX_POOL_2D",
        "MEAN",
        "PAD",
        "RESHAPE",
        "SOFTMAX",
    }
    runner = _LiteRTRunner(data)
    x = np.random.default_rng(4).normal(size=(1, 9, 9, 2)).astype(np.float32)
    np.testing.assert_allclose(runner.run(x), _numpy_small_graph(x, weights), atol=1e-6)


def test_tables_read_back_with_litert_generated_schema() -> None:
    """Every field slot written by hand lands where the generated reader looks for it."""
    data, weights = _small_graph()
    model = schema.ModelT.InitFromPackedBuf(data, 0)
    assert model.version == 3 and model.description == b"test"
    assert len(model.buffers[0].data if model.buffers[0].data is not None else []) == 0  # the empty sentinel
    graph = model.subgraphs[0]
    ops = {model.operatorCodes[o.opcodeIndex].builtinCode: o for o in graph.operators}
    conv = ops[schema.BuiltinOperator.CONV_2D].builtinOptions
    assert (conv.padding, conv.strideH, conv.strideW, conv.fusedActivationFunction) == (
        schema.Padding.VALID,
        2,
        2,
        schema.ActivationFunctionType.RELU,
    )
    pool = ops[schema.BuiltinOperator.MAX_POOL_2D].builtinOptions
    assert (pool.filterHeight, pool.filterWidth, pool.strideH, pool.strideW) == (2, 2, 1, 1)
    add = ops[schema.BuiltinOperator.ADD].builtinOptions
    assert add.fusedActivationFunction == schema.ActivationFunctionType.RELU
    assert list(ops[schema.BuiltinOperator.RESHAPE].builtinOptions.newShape) == [1, 5]
    assert ops[schema.BuiltinOperator.SOFTMAX].builtinOptions.beta == 1.0
    kernel = graph.tensors[ops[schema.BuiltinOperator.CONV_2D].inputs[1]]
    assert list(kernel.shape) == [4, 3, 3, 2] and kernel.type == schema.TensorType.FLOAT32
    raw = np.asarray(model.buffers[kernel.buffer].data, np.uint8).tobytes()
    np.testing.assert_array_equal(np.frombuffer(raw, "<f4").reshape(4, 3, 3, 2), weights["kernel"])
    assert [graph.tensors[i].name for i in graph.inputs] == [b"x"]
    assert [graph.tensors[i].name for i in graph.outputs] == [b"softmax"]


def test_weight_buffers_are_16_byte_aligned() -> None:
    """schema.fbs force_align: 16 on Buffer.data: XNNPACK may read weights in place."""
    data, weights = _small_graph()
    for name in ("kernel", "other", "fc"):
        at = data.find(weights[name].tobytes())
        assert at > 0 and at % 16 == 0, (name, at)


def test_unknown_operator_is_refused() -> None:
    g = GraphBuilder()
    x = g.input((1, 2), "x")
    with pytest.raises(ValueError, match="LSTM"):
        g.op("LSTM", [x], (1, 2), "y")


def test_dynamic_axes_become_the_shape_signature() -> None:
    """MTCNN's P-Net takes any H x W: the input's shape_signature says so, constants keep their shape."""
    g = GraphBuilder(dynamic_axes=(0, 1, 2))
    x = g.input((1, 12, 12, 3), "x")
    y = g.op("MAX_POOL_2D", [x], (1, 6, 6, 3), "max", Pool2DOptions((2, 2), (2, 2), "SAME"))
    model = schema.Model.GetRootAs(g.to_bytes([y]), 0)
    graph = model.Subgraphs(0)
    for i in range(graph.TensorsLength()):  # both activations; a constant would have none
        assert list(graph.Tensors(i).ShapeSignatureAsNumpy()) == [-1, -1, -1, 3]
    runner = _LiteRTRunner(g.to_bytes([y]))
    assert list(runner.inp["shape_signature"]) == [-1, -1, -1, 3]
