"""The demo model: committed, small, importable like any user's model, and reproducible."""

import numpy as np
import pytest

from controller import cli
from controller.demo_model import MODEL_PATH, digits_split
from controller.onnx_import import import_onnx
from controller.quantize import quantize


@pytest.fixture(scope="module")
def split():
    return digits_split()


@pytest.fixture(scope="module")
def model():
    return import_onnx(MODEL_PATH)


def test_committed_file_is_small_and_imports(model):
    assert MODEL_PATH.stat().st_size < 64 * 1024
    assert [(layer.kind, layer.n_in, layer.n_out) for layer in model.layers] == [
        ("elementwise", 64, 64),
        ("dense", 64, 16),
        ("dense", 16, 16),
        ("dense", 16, 16),
        ("dense", 16, 10),
    ]
    assert [layer.relu for layer in model.layers] == [False, True, True, True, False]
    assert model.output == "softmax"


def test_float_accuracy_on_the_held_out_images(model, split):
    assert len(split.y_test) == 360
    assert np.mean(model.predict(split.x_test) == split.y_test) >= 0.95


def test_import_agrees_with_onnxruntime(model, split):
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(MODEL_PATH), providers=["CPUExecutionProvider"])
    (probabilities,) = session.run(None, {"X": split.x_test.astype(np.float32)})
    np.testing.assert_allclose(model.run(split.x_test), probabilities, atol=1e-5)


def test_every_layer_after_the_edge_fits_a_switch(model, split):
    quantized = quantize(model, split.x_train)
    assert [layer.kind for layer in quantized.layers] == ["dense"] * 4
    assert set(quantized.switch_problems()) == {0}  # 64 inputs: the edge runs it


def test_training_again_reproduces_the_committed_model(model, split, tmp_path, capsys):
    assert cli.main(["demo-model", "--out", str(tmp_path / "digits.onnx")]) == 0
    assert "test accuracy: 96.67% as imported" in capsys.readouterr().out
    again = import_onnx(tmp_path / "digits.onnx")
    for a, b in zip(again.layers, model.layers):
        for name in ("weights", "bias", "scale", "offset"):
            if hasattr(a, name):
                np.testing.assert_allclose(getattr(a, name), getattr(b, name), atol=1e-5)
