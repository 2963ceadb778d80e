"""ONNX import hardening: NaN and inf weights are named, without numpy warnings on the way."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from controller.onnx_import import import_onnx
from dcia.errors import ModelImportError

W = np.ones((4, 3), np.float32)


def const(name, value, dtype=np.float32):
    return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)


def graph(nodes, inits, *, width=4, out="y"):
    g = helper.make_graph(
        nodes, "test", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, width])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, [None, None])], inits,
    )
    return helper.make_model(
        g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)]
    )


def refused(model, *fragments) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ModelImportError) as e:
            import_onnx(model)
    message = str(e.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


def with_value(array, index, value):
    array = np.array(array, dtype=np.float32)
    array[index] = value
    return array


@pytest.mark.parametrize(("value", "word"), [(np.nan, "NaN"), (np.inf, "inf"), (-np.inf, "inf")])
def test_non_finite_matmul_weights_are_named(value, word):
    model = graph([helper.make_node("MatMul", ["x", "fc.weight"], ["y"], name="fc")],
                  [const("fc.weight", with_value(W, (1, 2), value))])
    refused(model, "'fc.weight'", "'fc'", word)


def test_non_finite_gemm_bias_is_named():
    model = graph([helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="gemm")],
                  [const("w", W), const("b", [0.0, np.nan, 0.0])])
    refused(model, "'b'", "NaN")


def test_non_finite_constant_node_is_named():
    c = helper.make_node("Constant", [], ["c"], value=const("cv", [1.0, np.inf, 1.0, 1.0]))
    model = graph([c, helper.make_node("Add", ["x", "c"], ["y"], name="add")], [])
    refused(model, "'c'", "inf")


def test_non_finite_embedding_table_is_named():
    table = with_value(np.ones((5, 3)), (2, 1), np.nan)
    g = helper.make_graph(
        [helper.make_node("Gather", ["table", "id"], ["y"], name="emb")], "test",
        [helper.make_tensor_value_info("id", TensorProto.INT64, [None])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])], [const("table", table)],
    )
    refused(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), "'table'", "NaN")


@pytest.mark.parametrize("attribute", ["offset", "scale"])
def test_non_finite_scaler_attributes_are_named(attribute):
    values = {"offset": [0.0] * 4, "scale": [1.0] * 4}
    values[attribute][1] = float("nan")
    node = helper.make_node("Scaler", ["x"], ["y"], domain="ai.onnx.ml", name="scaler", **values)
    refused(graph([node], []), f"attribute {attribute}", "'scaler'", "NaN")


@pytest.mark.parametrize("attribute", ["alpha", "beta"])
def test_non_finite_gemm_scalars_are_named(attribute):
    node = helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="gemm", **{attribute: float("inf")})
    refused(graph([node], [const("w", W), const("b", [1.0, 1.0, 1.0])]), f"attribute {attribute}", "inf")


def test_folding_that_overflows_is_refused():
    big = np.full((4, 3), 1e300)
    model = graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"], name="fc"),
         helper.make_node("Mul", ["h", "c"], ["y"], name="mul")],
        [const("w", big, np.float64), const("c", [1e300] * 3, np.float64)],
    )
    refused(model, "'mul'", "inf")


def test_dividing_by_a_tiny_constant_overflows():
    model = graph([helper.make_node("Div", ["x", "c"], ["y"], name="div")],
                  [const("c", [1e-320] * 4, np.float64)])
    refused(model, "'div'", "inf")
