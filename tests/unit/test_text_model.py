"""The text demo's model: the corpus, the tokenizer, the ONNX embedding-bag import and
its quantization, all through the project's import path."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from controller.onnx_import import import_onnx
from dcia.arithmetic import BAG_PAD, BagMode
from dcia.errors import ModelImportError
from dcia.layers import LayerKind
from dcia.model import FloatEmbeddingBag
from demos.text.model import (
    CATEGORIES,
    MODEL_PATH,
    TOKENS,
    Tokenizer,
    load_text,
    text_split,
    words,
)


@pytest.fixture(scope="module")
def text():
    return load_text()


def test_the_split_is_fixed_and_every_category_is_in_both_halves():
    a, b = text_split(), text_split()
    assert a.train_texts == b.train_texts and a.test_texts == b.test_texts
    assert (len(a.train_texts), len(a.test_texts)) == (743, 185)
    assert set(a.y_test) == set(range(len(CATEGORIES))) == set(a.y_train)


def test_tokenizer_keeps_known_words_in_order_pads_and_truncates():
    tok = Tokenizer(("beam", "scotty", "law"))
    assert tok.encode("Beam me up, Scotty!") == [1, 2] + [BAG_PAD] * (TOKENS - 2)
    assert tok.encode("nothing known") == [BAG_PAD] * TOKENS
    assert tok.encode("law " * 40) == [3] * TOKENS


def test_the_vocabulary_is_built_from_the_training_texts_only(text):
    split = text.split
    assert len(text.tokenizer.vocabulary) == 255
    assert Tokenizer.build(split.train_texts, split.y_train) == text.tokenizer
    train_words = {w for t in split.train_texts for w in words(t)}
    assert set(text.tokenizer.vocabulary) <= train_words


def test_the_model_file_imports_as_a_bag_and_two_dense_layers(text):
    qm = text.quantized
    assert [layer.kind for layer in qm.layers] == [LayerKind.EMBEDDING_BAG, LayerKind.DENSE,
                                                   LayerKind.DENSE]
    assert (qm.layers[0].n_in, qm.layers[0].n_out, len(qm.layers[0].table)) == (16, 16, 255)
    assert qm.layers[0].mode is BagMode.MEAN and qm.takes_tokens
    assert not qm.switch_problems()
    tokens = text.test_tokens()
    onnx_out = ReferenceEvaluator(onnx.load(str(MODEL_PATH))).run(None, {"tokens": tokens})[0]
    assert np.allclose(onnx_out, text.float_model.run(tokens), atol=1e-5)


def test_int8_is_close_to_float_and_far_above_chance(text):
    tokens, y = text.test_tokens(), text.split.y_test
    f = np.mean(text.float_model.predict(tokens) == y)
    q = np.mean(text.quantized.predict(tokens) == y)
    assert f > 0.6 and abs(f - q) < 0.03
    x = text.quantized.quantize_input(tokens)
    assert x.dtype == np.int8 and x.shape == tokens.shape
    assert text.quantized.forward_int(x[3]).tolist() == text.quantized.forward_int(x[3:4])[0].tolist()


def bag_graph(mode="mean", pad_row=0.0, keepdims=0):
    table = np.arange(12, dtype=np.float32).reshape(4, 3)
    table[0] = pad_row
    inits = [numpy_helper.from_array(table, "t"),
             numpy_helper.from_array(np.array([1], np.int64), "axes"),
             numpy_helper.from_array(np.array(0, np.int64), "zero"),
             numpy_helper.from_array(np.array(1.0, np.float32), "one")]
    nodes = [helper.make_node("Gather", ["t", "ids"], ["v"]),
             helper.make_node("ReduceSum", ["v", "axes"], ["s"], keepdims=keepdims)]
    out = "s"
    if mode == "mean":
        nodes += [helper.make_node("Greater", ["ids", "zero"], ["m"]),
                  helper.make_node("Cast", ["m"], ["mf"], to=TensorProto.FLOAT),
                  helper.make_node("ReduceSum", ["mf", "axes"], ["c0"], keepdims=1),
                  helper.make_node("Max", ["c0", "one"], ["c"]),
                  helper.make_node("Div", ["s", "c"], ["y"])]
        out = "y"
    g = helper.make_graph(nodes, "bag", [helper.make_tensor_value_info("ids", TensorProto.INT64, [None, 5])],
                          [helper.make_tensor_value_info(out, TensorProto.FLOAT, [None, 3])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("mode", ["mean", "sum"])
def test_gather_reduce_sum_imports_as_an_embedding_bag(mode):
    model = bag_graph(mode)
    fm = import_onnx(model)
    assert len(fm.layers) == 1 and isinstance(fm.layers[0], FloatEmbeddingBag)
    assert fm.layers[0].mode is (BagMode.MEAN if mode == "mean" else BagMode.SUM)
    ids = np.array([[1, 2, 0, 0, 3], [0, 0, 0, 0, 0], [3, 3, 3, 1, 2]])
    want = ReferenceEvaluator(model).run(None, {"ids": ids})[0]
    assert np.allclose(fm.forward(ids), want)


def test_a_padding_row_that_is_not_zero_is_refused():
    with pytest.raises(ModelImportError, match="row 0"):
        import_onnx(bag_graph(pad_row=1.0))
    with pytest.raises(ModelImportError, match="keepdims 0"):
        import_onnx(bag_graph("sum", keepdims=1))
