"""The convolution layer kind: its integer reference (scalar and batch), the float layer,
the ONNX import of Conv, quantization, the model file, and the planner keeping it off the
switches; and the evaluation's convolutional model (evaluation.conv_model)."""

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from controller.onnx_import import import_onnx
from controller.planner import Constraints, Forbid, plan
from controller.quantize import quantize
from controller.topology import load_topology
from dcia import arithmetic
from dcia.arithmetic import Activation
from dcia.capability import DCIA_PROGRAM, Capability, NodeKind
from dcia.errors import ModelImportError, ParameterRangeError, PlanError
from dcia.layers import ConvLayer, DenseLayer, LayerKind
from dcia.model import FloatConv, FloatModel, QuantizedModel
from evaluation.conv_model import MODEL_PATH, load_conv
from evaluation.strategies import Strategy, plan_for

SHAPES = [((1, 8, 8), 3, 1, 1), ((3, 5, 6), 3, 2, 1), ((2, 4, 4), 2, 1, 0), ((4, 7, 7), 3, 2, 0)]


def direct_conv(x: np.ndarray, in_shape, w: np.ndarray, b: np.ndarray, stride: int, pad: int):
    """An independent convolution: np.pad and loops, (c_out, out_h, out_w) flattened."""
    c, h, wd = in_shape
    img = np.pad(x.reshape(c, h, wd), ((0, 0), (pad, pad), (pad, pad)))
    k = w.shape[2]
    out_h, out_w = (h + 2 * pad - k) // stride + 1, (wd + 2 * pad - k) // stride + 1
    y = np.zeros((w.shape[0], out_h, out_w), dtype=w.dtype)
    for co in range(w.shape[0]):
        for oy in range(out_h):
            for ox in range(out_w):
                window = img[:, oy * stride:oy * stride + k, ox * stride:ox * stride + k]
                y[co, oy, ox] = (window * w[co]).sum() + b[co]
    return y.reshape(-1)


def random_conv(rng, in_shape, k, stride, pad, c_out=3, act=Activation.RELU) -> ConvLayer:
    patch = in_shape[0] * k * k
    return ConvLayer(rng.integers(-128, 128, (c_out, patch)).tolist(),
                     rng.integers(-5000, 5000, c_out).tolist(),
                     rng.integers(1, 1 << 16, c_out).tolist(), rng.integers(8, 20, c_out).tolist(),
                     act, in_shape, k, stride, pad)


@pytest.mark.parametrize("in_shape,k,stride,pad", SHAPES)
def test_the_reference_is_a_convolution_requantized_per_channel(in_shape, k, stride, pad):
    rng = np.random.default_rng(1)
    n_in = int(np.prod(in_shape))
    w = rng.integers(-128, 128, (2, in_shape[0], k, k))
    b = rng.integers(-1000, 1000, 2)
    x = rng.integers(-128, 128, n_in)
    acc = direct_conv(x, in_shape, w, b, stride, pad)
    conv = ConvLayer(w.reshape(2, -1).tolist(), b.tolist(), [1, 1], [0, 0], Activation.IDENTITY,
                     in_shape, k, stride, pad)
    assert conv.forward(x.tolist()) == np.clip(acc, -128, 127).tolist()
    assert conv.n_out == len(acc) and conv.n_in == n_in


@pytest.mark.parametrize("in_shape,k,stride,pad", SHAPES)
def test_batch_and_scalar_reference_agree_bit_for_bit(in_shape, k, stride, pad):
    rng = np.random.default_rng(2)
    conv = random_conv(rng, in_shape, k, stride, pad)
    x = rng.integers(-128, 128, (20, conv.n_in))
    x[0], x[1] = 127, -128  # extremes saturate
    batch = conv.forward_batch(x)
    assert batch.dtype == np.int8 and batch.shape == (20, conv.n_out)
    assert batch.tolist() == [conv.forward(row.tolist()) for row in x]


def test_shapes_and_macs():
    conv = random_conv(np.random.default_rng(0), (8, 8, 8), 3, 2, 1, c_out=16)
    assert conv.out_shape == (16, 4, 4) and (conv.n_in, conv.n_out) == (512, 256)
    assert conv.macs == 256 * 8 * 9 == 18_432
    assert conv.kind is LayerKind.CONV


@pytest.mark.parametrize("kwargs,message", [
    (dict(weights=[[1] * 8]), "filter 0 has 8 weights, expected 9"),
    (dict(in_shape=(1, 2)), "(channels, height, width)"),
    (dict(pad=3), "0 <= pad < kernel"),
    (dict(in_shape=(1, 1, 1), pad=0), "does not fit"),
    (dict(bias=[0, 0]), "has 2 biases"),
    (dict(weights=[[200] * 9]), "is not an int8"),
])
def test_bad_convolutions_are_refused(kwargs, message):
    base = dict(weights=[[1] * 9], bias=[0], mult=[1], shift=[0], in_shape=(1, 3, 3), kernel=3,
                pad=1)
    with pytest.raises(ParameterRangeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ConvLayer(**{**base, **kwargs})


@pytest.mark.parametrize("in_shape,k,stride,pad", SHAPES)
def test_the_float_layer_is_the_same_convolution(in_shape, k, stride, pad):
    rng = np.random.default_rng(3)
    w, b = rng.normal(size=(2, in_shape[0], k, k)), rng.normal(size=2)
    layer = FloatConv(w, b, in_shape, stride, pad, relu=False)
    x = rng.normal(size=(3, int(np.prod(in_shape))))
    expected = np.array([direct_conv(row, in_shape, w, b, stride, pad) for row in x])
    np.testing.assert_allclose(layer.forward(x), expected, atol=1e-12)
    assert layer.n_out == expected.shape[1]


def conv_graph(pads=(1, 1, 1, 1), strides=(2, 2), reshape=True, group=1):
    rng = np.random.default_rng(4)
    inits = [numpy_helper.from_array(np.array([-1, 2, 4, 4], np.int64), "shape"),
             numpy_helper.from_array(rng.normal(size=(3, 2, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.normal(size=3).astype(np.float32), "b"),
             numpy_helper.from_array(rng.normal(size=(12, 5)).astype(np.float32), "d")]
    nodes = ([helper.make_node("Reshape", ["x", "shape"], ["img"])] if reshape else []) + [
        helper.make_node("Conv", ["img" if reshape else "x", "w", "b"], ["c"], kernel_shape=[3, 3],
                         pads=list(pads), strides=list(strides), group=group),
        helper.make_node("Relu", ["c"], ["h"]),
        helper.make_node("Flatten", ["h"], ["f"], axis=1),
        helper.make_node("MatMul", ["f", "d"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 32])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 5])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_conv_imports_as_a_layer_on_the_reshaped_input():
    model = import_onnx(conv_graph())
    conv, dense = model.layers
    assert isinstance(conv, FloatConv) and conv.relu
    assert (conv.in_shape, conv.stride, conv.pad, conv.n_out) == ((2, 4, 4), 2, 1, 12)
    assert (dense.n_in, dense.n_out) == (12, 5)
    ort = pytest.importorskip("onnxruntime")
    x = np.random.default_rng(5).normal(size=(4, 32)).astype(np.float32)
    expected = ort.InferenceSession(conv_graph().SerializeToString()).run(None, {"x": x})[0]
    np.testing.assert_allclose(model.forward(x), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("graph,message", [
    (dict(reshape=False), "reshape the input vector to \\(batch, c, h, w\\)"),
    (dict(pads=(1, 0, 1, 0)), "one stride and one padding"),
    (dict(strides=(1, 2)), "one stride and one padding"),
])
def test_convolutions_dcia_cannot_import_are_refused(graph, message):
    with pytest.raises(ModelImportError, match=message):
        import_onnx(conv_graph(**graph))


@pytest.fixture(scope="module")
def conv_model():
    return load_conv()


def test_the_conv_model_imports_and_quantizes(conv_model):
    q = conv_model.quantized
    assert [(str(l.kind), l.n_in, l.n_out) for l in q.layers] == [
        ("conv", 64, 512), ("conv", 512, 256), ("dense", 256, 16), ("dense", 16, 16),
        ("dense", 16, 10)]
    assert sum(l.macs for l in q.layers) == 27_552
    split = conv_model.split
    y = split.y_test
    float_acc = np.mean(conv_model.float_model.predict(split.x_test) == y)
    int_acc = np.mean(q.predict(split.x_test) == y)
    assert float_acc > 0.95 and abs(float_acc - int_acc) < 0.01


def test_int8_layers_follow_the_float_layers(conv_model):
    q, x = conv_model.quantized, conv_model.split.x_test[:100]
    ints = q.quantize_input(x).astype(np.int64)
    floats = np.asarray(x, dtype=np.float64)
    for i, layer in enumerate(conv_model.quantized.float_model.layers):
        ints = q.forward_int(ints, i, i + 1).astype(np.int64)
        floats = layer.forward(q.dequantize(q.quantize_input(x) if i == 0 else prev, i))
        prev = ints
        error = np.abs(q.dequantize(ints, i + 1) - floats).mean() / np.abs(floats).mean()
        assert error < 0.05, f"layer {i} ({layer.kind}): {error:.3f}"


def test_the_conv_model_round_trips_through_its_file(conv_model, tmp_path):
    q = conv_model.quantized
    loaded = QuantizedModel.load(q.save(tmp_path / "m.json"))
    assert loaded.layers == q.layers and loaded.content_hash == q.content_hash
    x = q.quantize_input(conv_model.split.x_test[:10])
    assert (loaded.forward_int(x) == q.forward_int(x)).all()
    assert isinstance(loaded.float_model.layers[0], FloatConv)


def test_a_switch_cannot_run_a_convolution(conv_model):
    conv = conv_model.quantized.layers[1]
    assert DCIA_PROGRAM.can_run(conv) is not None
    s1 = Capability.nominal("s1", "switch")
    assert s1.can_run(conv).startswith("is a conv layer but switch s1 runs only")
    small = ConvLayer([[1] * 4], [0], [1], [0], in_shape=(1, 2, 2), kernel=2)  # 4 in, 1 out
    assert "is a conv layer" in s1.can_run(small)
    assert Capability.nominal("e", "edge").can_run(conv) is None
    assert s1.can_run(DenseLayer([[1] * 16] * 16, [0] * 16, [1] * 16, [0] * 16)) is None


def test_the_planner_never_puts_a_host_only_layer_on_a_switch(conv_model):
    layers = conv_model.quantized.layers
    topology = load_topology("topologies/eval.toml")
    route = topology.route()
    every = frozenset(range(len(layers)))
    with pytest.raises(PlanError):
        plan(layers, route, Constraints(min_edge_layers=0, forbid=(
            Forbid(NodeKind.EDGE, every, "test"), Forbid(NodeKind.CLOUD, every, "test"))))
    for strategy in Strategy:
        assignment = plan_for(strategy, layers, topology, model_id=3).assignment
        assert not any(node.startswith("sw") for node in assignment[:3]), (strategy, assignment)
    assert plan_for(Strategy.DCIA_NETWORK, layers, topology).assignment[:3] == ("ed1",) * 3


def test_the_committed_model_is_the_one_the_script_makes():
    assert MODEL_PATH.name == "digits_conv.onnx" and MODEL_PATH.exists()
    model = import_onnx(MODEL_PATH)
    assert isinstance(model, FloatModel) and model.output == "softmax"
    assert [layer.kind for layer in model.layers][:2] == [LayerKind.CONV, LayerKind.CONV]
    assert arithmetic.conv_output_shape((1, 8, 8), 8, 3, 1, 1) == (8, 8, 8)
