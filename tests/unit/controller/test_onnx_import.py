"""Model import: each supported operator on a small graph, and the errors for everything else."""

import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from dcia.model import FloatDense, FloatElementwise, FloatEmbedding
from controller.onnx_import import SUPPORTED, import_onnx
from dcia.errors import ModelImportError

RNG = np.random.default_rng(7)
X = RNG.normal(size=(5, 4))


def const(name, value, dtype=np.float32):
    return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)


def graph(nodes, inits, *, inp=("x", TensorProto.FLOAT, [None, 4]), out="y", outputs=None):
    """A model of ``nodes`` from input ``x`` to output ``out``."""
    outputs = outputs or [helper.make_tensor_value_info(out, TensorProto.FLOAT, [None, None])]
    g = helper.make_graph(nodes, "test", [helper.make_tensor_value_info(*inp)], outputs, inits)
    return helper.make_model(
        g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)]
    )


def run_onnxruntime(model, x):
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


W = RNG.normal(size=(4, 3)).astype(np.float32)  # (n_in, n_out) as MatMul takes it
B = RNG.normal(size=3).astype(np.float32)


class TestDenseOperators:
    def test_matmul_add_relu_is_one_dense_layer_with_relu(self):
        model = graph(
            [
                helper.make_node("MatMul", ["x", "w"], ["h"]),
                helper.make_node("Add", ["h", "b"], ["a"]),
                helper.make_node("Relu", ["a"], ["y"]),
            ],
            [const("w", W), const("b", B)],
        )
        m = import_onnx(model)
        assert len(m.layers) == 1 and isinstance(m.layers[0], FloatDense) and m.layers[0].relu
        np.testing.assert_allclose(
            m.run(X), run_onnxruntime(model, X.astype(np.float32)), atol=1e-5
        )

    @pytest.mark.parametrize("trans_b", [0, 1])
    def test_gemm_with_alpha_beta_and_transposed_weights(self, trans_b):
        weights = W.T if trans_b else W
        model = graph(
            [helper.make_node("Gemm", ["x", "w", "c"], ["y"], alpha=0.5, beta=2.0, transB=trans_b)],
            [const("w", weights), const("c", B.reshape(1, 3))],
        )
        m = import_onnx(model)
        assert [(layer.n_in, layer.n_out) for layer in m.layers] == [(4, 3)]
        np.testing.assert_allclose(
            m.run(X), run_onnxruntime(model, X.astype(np.float32)), atol=1e-5
        )

    def test_gemm_without_bias(self):
        model = graph([helper.make_node("Gemm", ["x", "w"], ["y"])], [const("w", W)])
        np.testing.assert_allclose(import_onnx(model).run(X), X @ W, atol=1e-5)

    def test_layer_widths_must_match(self):
        model = graph(
            [
                helper.make_node("MatMul", ["x", "w"], ["h"]),
                helper.make_node("MatMul", ["h", "w"], ["y"]),
            ],
            [const("w", W)],
        )
        with pytest.raises(ModelImportError, match="takes 4 inputs but the tensor before it has 3"):
            import_onnx(model)

    def test_weights_on_the_left_are_refused(self):
        model = graph([helper.make_node("MatMul", ["w", "x"], ["y"])], [const("w", W.T)])
        with pytest.raises(ModelImportError, match="constant weight matrix on its right"):
            import_onnx(model)


class TestElementwiseOperators:
    @pytest.mark.parametrize(
        "op, tensor_first",
        [
            ("Add", True),
            ("Add", False),
            ("Sub", True),
            ("Sub", False),
            ("Mul", True),
            ("Mul", False),
            ("Div", True),
        ],
    )
    def test_arithmetic_with_a_constant_becomes_an_elementwise_layer(self, op, tensor_first):
        c = np.array([0.5, -2.0, 4.0, 1.5], np.float32)
        inputs = ["x", "c"] if tensor_first else ["c", "x"]
        model = graph([helper.make_node(op, inputs, ["y"])], [const("c", c)])
        m = import_onnx(model)
        assert [type(layer) for layer in m.layers] == [FloatElementwise]
        np.testing.assert_allclose(
            m.run(X), run_onnxruntime(model, X.astype(np.float32)), atol=1e-5
        )

    def test_scalar_constant_broadcasts(self):
        model = graph([helper.make_node("Mul", ["x", "c"], ["y"])], [const("c", 3.0)])
        np.testing.assert_allclose(import_onnx(model).run(X), 3 * X)

    def test_scaler_as_skl2onnx_writes_it(self):
        node = helper.make_node(
            "Scaler",
            ["x"],
            ["y"],
            domain="ai.onnx.ml",
            offset=[1.0, 2.0, 3.0, 4.0],
            scale=[0.5, 0.25, 2.0, 1.0],
        )
        model = graph([node], [])
        np.testing.assert_allclose(
            import_onnx(model).run(X), run_onnxruntime(model, X.astype(np.float32)), atol=1e-5
        )

    def test_affine_after_a_dense_layer_folds_into_it(self):
        model = graph(
            [
                helper.make_node("MatMul", ["x", "w"], ["h"]),
                helper.make_node("Mul", ["h", "s"], ["m"]),
                helper.make_node("Sub", ["m", "b"], ["y"]),
            ],
            [const("w", W), const("s", [2.0, 3.0, 4.0]), const("b", B)],
        )
        m = import_onnx(model)
        assert [layer.kind for layer in m.layers] == ["dense"]
        np.testing.assert_allclose(
            m.run(X), run_onnxruntime(model, X.astype(np.float32)), atol=1e-5
        )

    def test_affine_after_relu_is_a_new_layer(self):
        model = graph(
            [
                helper.make_node("MatMul", ["x", "w"], ["h"]),
                helper.make_node("Relu", ["h"], ["r"]),
                helper.make_node("Add", ["r", "b"], ["y"]),
            ],
            [const("w", W), const("b", B)],
        )
        assert [layer.kind for layer in import_onnx(model).layers] == ["dense", "elementwise"]

    def test_relu_on_the_input_is_an_identity_elementwise_layer_with_relu(self):
        m = import_onnx(graph([helper.make_node("Relu", ["x"], ["y"])], []))
        np.testing.assert_allclose(m.run(X), np.maximum(X, 0))

    def test_constant_divided_by_the_tensor_is_refused(self):
        model = graph([helper.make_node("Div", ["c", "x"], ["y"])], [const("c", 2.0)])
        with pytest.raises(ModelImportError, match="not an affine transform"):
            import_onnx(model)

    def test_constant_node_operands_count_as_constants(self):
        c = helper.make_node("Constant", [], ["c"], value=const("v", [1.0, 2.0, 3.0, 4.0]))
        model = graph([c, helper.make_node("Add", ["x", "c"], ["y"])], [])
        np.testing.assert_allclose(import_onnx(model).run(X), X + [1, 2, 3, 4])


class TestShapeOperatorsAndHeads:
    def test_flatten_reshape_identity_cast_change_nothing(self):
        model = graph(
            [
                helper.make_node("Flatten", ["x"], ["f"]),
                helper.make_node("Reshape", ["f", "s"], ["r"]),
                helper.make_node("Identity", ["r"], ["i"]),
                helper.make_node("Cast", ["i"], ["c"], to=TensorProto.FLOAT),
                helper.make_node("MatMul", ["c", "w"], ["y"]),
            ],
            [const("s", [-1, 4], np.int64), const("w", W)],
        )
        np.testing.assert_allclose(
            import_onnx(model).run(X), run_onnxruntime(model, X.astype(np.float32)), atol=1e-5
        )

    def test_reshape_to_another_shape_is_refused(self):
        model = graph(
            [helper.make_node("Reshape", ["x", "s"], ["y"])], [const("s", [-1, 2, 2], np.int64)]
        )
        with pytest.raises(ModelImportError, match="reshapes a vector of 4 elements"):
            import_onnx(model)

    def test_softmax_at_the_end(self):
        model = graph(
            [
                helper.make_node("MatMul", ["x", "w"], ["h"]),
                helper.make_node("Softmax", ["h"], ["y"], axis=-1),
            ],
            [const("w", W)],
        )
        m = import_onnx(model)
        assert m.output == "softmax"
        np.testing.assert_allclose(
            m.run(X), run_onnxruntime(model, X.astype(np.float32)), atol=1e-5
        )

    def test_argmax_at_the_end(self):
        out = [helper.make_tensor_value_info("y", TensorProto.INT64, [None])]
        model = graph(
            [
                helper.make_node("MatMul", ["x", "w"], ["h"]),
                helper.make_node("ArgMax", ["h"], ["y"], axis=1, keepdims=0),
            ],
            [const("w", W)],
            outputs=out,
        )
        m = import_onnx(model)
        assert m.output == "argmax"
        np.testing.assert_array_equal(m.run(X), run_onnxruntime(model, X.astype(np.float32)))

    def test_layers_after_softmax_are_refused(self):
        model = graph(
            [
                helper.make_node("Softmax", ["x"], ["s"]),
                helper.make_node("MatMul", ["s", "w"], ["y"]),
            ],
            [const("w", W)],
        )
        with pytest.raises(ModelImportError, match="comes after Softmax"):
            import_onnx(model)


class TestEmbedding:
    TABLE = RNG.normal(size=(6, 3)).astype(np.float32)

    def test_gather_of_a_table_by_the_input_id(self):
        model = graph(
            [
                helper.make_node("Gather", ["t", "x"], ["e"], axis=0),
                helper.make_node("Relu", ["e"], ["y"]),
            ],
            [const("t", self.TABLE)],
            inp=("x", TensorProto.INT64, [None]),
        )
        m = import_onnx(model)
        assert isinstance(m.layers[0], FloatEmbedding) and (
            m.layers[0].n_in,
            m.layers[0].n_out,
        ) == (1, 3)
        ids = np.array([0, 5, 2], np.int64)
        np.testing.assert_allclose(m.run(ids), run_onnxruntime(model, ids), atol=1e-6)

    def test_embedding_after_other_layers_is_refused(self):
        model = graph(
            [
                helper.make_node("Gather", ["t", "x"], ["e"]),
                helper.make_node("Gather", ["t", "e"], ["y"]),
            ],
            [const("t", self.TABLE)],
            inp=("x", TensorProto.INT64, [None]),
        )
        with pytest.raises(ModelImportError, match="it must come first"):
            import_onnx(model)

    def test_integer_cast_of_computed_values_is_refused(self):
        model = graph(
            [
                helper.make_node("Relu", ["x"], ["r"]),
                helper.make_node("Cast", ["r"], ["y"], to=TensorProto.INT64),
            ],
            [],
        )
        with pytest.raises(
            ModelImportError, match=r"\(Cast\) casts computed values to an integer type"
        ):
            import_onnx(model)


class TestErrors:
    def test_unsupported_operator_names_the_operator_the_node_and_the_alternatives(self):
        model = graph([helper.make_node("Tanh", ["x"], ["y"], name="n7")], [])
        with pytest.raises(ModelImportError) as err:
            import_onnx(model)
        message = str(err.value)
        assert "model node 'n7' uses operator Tanh, which DCIA cannot import" in message
        assert "supported: " in message and all(op in message for op in SUPPORTED)

    def test_operator_from_another_domain_is_named_with_its_domain(self):
        node = helper.make_node(
            "LinearClassifier",
            ["x"],
            ["label", "y"],
            domain="ai.onnx.ml",
            name="clf",
            coefficients=[1.0] * 8,
            classlabels_ints=[0, 1],
        )
        with pytest.raises(ModelImportError, match="uses operator ai.onnx.ml.LinearClassifier"):
            import_onnx(graph([node], []))

    def test_two_computed_inputs_are_not_a_chain(self):
        model = graph(
            [
                helper.make_node("MatMul", ["x", "w"], ["h"]),
                helper.make_node("Relu", ["x"], ["r"]),  # a branch that joins again
                helper.make_node("MatMul", ["r", "w"], ["r2"]),
                helper.make_node("Add", ["h", "r2"], ["y"]),
            ],
            [const("w", W)],
        )
        with pytest.raises(ModelImportError, match="takes 2 computed tensors .*single chain"):
            import_onnx(model)

    def test_several_outputs_need_a_choice(self):
        outs = [
            helper.make_tensor_value_info(n, TensorProto.FLOAT, [None, None]) for n in ("h", "y")
        ]
        model = graph(
            [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
            [const("w", W)],
            outputs=outs,
        )
        with pytest.raises(ModelImportError, match=r"2 outputs \(h, y\); choose"):
            import_onnx(model)
        assert import_onnx(model, output="h").layers[0].relu is False
        assert import_onnx(model, output="y").layers[0].relu is True

    def test_missing_file(self, tmp_path):
        with pytest.raises(
            ModelImportError, match="does not exist; pass the path of an .onnx file"
        ):
            import_onnx(tmp_path / "nope.onnx")

    def test_corrupt_file(self, tmp_path):
        path = tmp_path / "bad.onnx"
        path.write_bytes(b"\x08\x07this is not protobuf\xff\xff\xff")
        with pytest.raises(ModelImportError) as err:
            import_onnx(path)
        assert str(err.value).count("\n") == 0 and "export the model again" in str(err.value)

    def test_empty_file(self, tmp_path):
        path = tmp_path / "empty.onnx"
        path.write_bytes(b"")
        with pytest.raises(ModelImportError, match="export the model again"):
            import_onnx(path)

    def test_model_without_layers(self):
        with pytest.raises(ModelImportError, match="no layer DCIA can run"):
            import_onnx(graph([helper.make_node("Identity", ["x"], ["y"])], []))

    def test_serialized_bytes_import_like_a_file(self):
        model = graph([helper.make_node("MatMul", ["x", "w"], ["y"])], [const("w", W)])
        assert import_onnx(model.SerializeToString()).layers[0].n_out == 3
        with pytest.raises(ModelImportError, match="model bytes are not a valid ONNX model"):
            import_onnx(b"\xff\xff\xff")

    def test_file_path_names_the_model(self, tmp_path):
        path = tmp_path / "tiny.onnx"
        onnx.save(
            graph([helper.make_node("MatMul", ["x", "w"], ["y"])], [const("w", W)]), str(path)
        )
        assert import_onnx(path).name == "tiny"


@pytest.fixture(scope="module")
def fitted():
    """A small StandardScaler + MLPClassifier pipeline and its training inputs."""
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = RNG.normal(size=(120, 6))
    y = (x[:, 0] + x[:, 1] > 0).astype(int) + (x[:, 2] > 1)
    pipeline = make_pipeline(StandardScaler(), MLPClassifier((8,), max_iter=300, random_state=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence: the test needs some fit, not a good one
        pipeline.fit(x, y)
    return pipeline, x


class TestScikitLearnExports:
    """Models as skl2onnx writes them, the way a user's model arrives."""

    @staticmethod
    def export(pipeline, **options):
        from skl2onnx import to_onnx

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return to_onnx(pipeline, np.zeros((1, 6), np.float32), options=options, target_opset=17)

    def test_classifier_probabilities_match_scikit_learn(self, fitted):
        pipeline, x = fitted
        m = import_onnx(self.export(pipeline, zipmap=False), output="probabilities")
        assert [layer.kind for layer in m.layers] == ["elementwise", "dense", "dense"]
        np.testing.assert_allclose(m.run(x), pipeline.predict_proba(x), atol=1e-5)

    def test_zipmap_output_says_how_to_export(self, fitted):
        pipeline, _ = fitted
        with pytest.raises(ModelImportError, match=r"operator ai.onnx.ml.ZipMap.*'zipmap': False"):
            import_onnx(self.export(pipeline), output="output_probability")
