"""The vehicle demo's model: two views fused by ONNX Max, imported as a dense layer over the
views side by side and a fusion layer, quantized with the fusion in the integer model."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from controller.onnx_import import import_onnx
from controller.quantize import quantize
from dcia.errors import ModelImportError
from dcia.layers import FusionLayer, LayerKind
from dcia.model import FloatDense, FloatFusion, FloatModel
from demos.vehicle.model import MODEL_PATH, VIEWS, load_vehicle, member_inputs, views


@pytest.fixture(scope="module")
def vehicle():
    return load_vehicle()


def two_views(bias_right=None, shared_input=False):
    rng = np.random.default_rng(3)
    inits = [numpy_helper.from_array(rng.normal(size=(3, 2)).astype(np.float32), f"w_{v}")
             for v in "ab"]
    inits.append(numpy_helper.from_array(np.array([0.5, -0.5], np.float32), "b"))
    if bias_right is not None:
        inits.append(numpy_helper.from_array(np.array(bias_right, np.float32), "b_right"))
    nodes = []
    for v in "ab":
        source = "x_a" if shared_input else f"x_{v}"
        bias = "b_right" if v == "b" and bias_right is not None else "b"
        nodes += [helper.make_node("MatMul", [source, f"w_{v}"], [f"m_{v}"]),
                  helper.make_node("Add", [f"m_{v}", bias], [f"z_{v}"]),
                  helper.make_node("Relu", [f"z_{v}"], [f"h_{v}"])]
    nodes.append(helper.make_node("Max", ["h_a", "h_b"], ["y"]))
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(f"x_{v}", TensorProto.FLOAT, [None, 3])
                                       for v in "ab"],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])], inits)
    return helper.make_model(g), inits


def test_max_of_two_views_is_a_dense_layer_over_both_and_a_fusion():
    model, inits = two_views()
    fm = import_onnx(model)
    assert [type(layer) for layer in fm.layers] == [FloatDense, FloatFusion]
    assert (fm.layers[0].n_in, fm.layers[0].n_out, fm.layers[0].relu) == (6, 2, True)
    assert fm.layers[1].members == 2
    rng = np.random.default_rng(4)
    xa, xb = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    wa, wb = (numpy_helper.to_array(t) for t in inits[:2])
    want = np.maximum(np.maximum(xa @ wa + [0.5, -0.5], 0), np.maximum(xb @ wb + [0.5, -0.5], 0))
    got = fm.forward_group([member_inputs(xa, 0), member_inputs(xb, 1)])
    assert np.allclose(got, want)


@pytest.mark.parametrize("kwargs, match", [
    ({"bias_right": [0.0, 1.0]}, "another bias"),
    ({"shared_input": True}, "same graph input"),
])
def test_views_that_are_not_one_sensor_each_are_refused(kwargs, match):
    model, _ = two_views(**kwargs)
    with pytest.raises(ModelImportError, match=match):
        import_onnx(model)


def test_max_with_a_constant_is_refused():
    g = helper.make_graph([helper.make_node("Max", ["x", "c"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])],
                          [numpy_helper.from_array(np.zeros(2, np.float32), "c")])
    with pytest.raises(ModelImportError, match="maximum with a constant"):
        import_onnx(helper.make_model(g))


def test_fusion_keeps_its_scale_and_calibration_sees_fused_groups():
    fm = FloatModel("f", [FloatDense(np.eye(2), np.zeros(2), relu=True), FloatFusion(2, 2),
                          FloatDense(np.array([[1.0, 1.0]]), np.zeros(1))])
    samples = np.array([[4.0, 0.0], [0.0, 4.0]])
    alone = quantize(fm, samples)
    fused = quantize(fm, samples, groups=np.array([[0, 1]]), fusion_timeout_us=5000)
    assert alone.scales[1] == alone.scales[2] == fused.scales[1] == fused.scales[2]
    assert fused.layers[1] == FusionLayer(2, 2, 5000)
    assert fused.scales[3] == pytest.approx(2 * alone.scales[3])  # 4 + 4 fused, 4 alone


def test_the_committed_model_imports_as_edge_fusion_and_two_dense_layers(vehicle):
    qm = vehicle.quantized
    assert [(layer.kind, layer.n_in, layer.n_out) for layer in qm.layers] == [
        (LayerKind.DENSE, 64, 16), (LayerKind.FUSION, 16, 16),
        (LayerKind.DENSE, 16, 16), (LayerKind.DENSE, 16, 10)]
    assert qm.fusion_index == 1 and qm.layers[1].members == len(VIEWS)
    assert qm.switch_problems() == {0: qm.switch_problems()[0]}  # only the edge stage is too wide


def test_the_integer_model_fuses_exactly_what_each_member_sends(vehicle):
    qm = vehicle.quantized
    members = [qm.quantize_input(x[:40]) for x in vehicle.test_members()]
    sent = [qm.forward_int(x, 0, 1) for x in members]  # what each onboard unit sends
    fused = np.maximum(sent[0], sent[1])
    assert np.array_equal(qm.forward_int(fused, 1), qm.forward_int_group(members))
    for g in range(5):  # one group at a time, with the scalar reference of the fusion layer
        one = qm.layers[1].fuse([sent[0][g].tolist(), sent[1][g].tolist()])
        assert qm.forward_int(np.array(one), 2).tolist() == qm.forward_int_group(
            [m[g:g + 1] for m in members])[0].tolist()
    # a partial group is the fusion of the member present: its tensor, unchanged
    assert np.array_equal(qm.forward_int_group([members[1]]), qm.forward_int(sent[1], 1))


def test_the_views_are_the_halves_of_each_image_and_fusion_pays(vehicle):
    image = np.arange(64)[None]
    left, right = views(image)
    assert sorted(np.concatenate([left[0], right[0]])) == list(range(64))
    qm, y = vehicle.quantized, vehicle.split.y_test
    members = [qm.quantize_input(x) for x in vehicle.test_members()]
    both = np.mean(qm.forward_int_group(members).argmax(1) == y)
    one = max(np.mean(qm.forward_int_group([m]).argmax(1) == y) for m in members)
    assert both > 0.95 and both > one + 0.05
    assert MODEL_PATH.exists() and onnx.load(str(MODEL_PATH)).graph.input[0].name == "left"
