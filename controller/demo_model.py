"""The demo model: a small MLP on scikit-learn's handwritten digits, exported to ONNX.

``dcia demo-model`` trains it (deterministically, in a few seconds), writes
models/digits.onnx, imports that file back through controller.onnx_import, the path any
user's model takes, and prints its test accuracy. ``load_demo`` is the one place the
toolkit quantizes it: calibrated on the training images, as ``dcia deploy --calibration
digits``, ``dcia accuracy`` and the testbed use it.

The model is MinMaxScaler -> 64->16 ReLU -> 16->16 ReLU -> 16->16 ReLU -> 16->10 softmax.
Its hidden layers are 16 wide, so every layer after the first fits a switch. The scaler
is min-max rather than standard: StandardScaler divides the pixels that are almost
always blank by a tiny deviation, and the first layer's weights then span too wide a
range for int8 (the quantized model loses over 10 points); min-max scaling keeps the
range of every pixel the same.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from controller.onnx_import import import_onnx
from controller.quantize import Method, quantize
from dcia.model import FloatModel, QuantizedModel

MODEL_PATH = Path(__file__).resolve().parent.parent / "models" / "digits.onnx"
SEED = 0
TEST_SIZE = 0.2
HIDDEN = (16, 16, 16)
OUTPUT = "probabilities"
"""The graph output kept in the file; skl2onnx also writes a ``label`` branch, dropped."""


@dataclass(frozen=True, eq=False)
class DigitsSplit:
    """The fixed train/test split of load_digits (8x8 images as 64 features 0..16)."""

    x_train: np.ndarray
    x_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray


def digits_split() -> DigitsSplit:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=TEST_SIZE, random_state=SEED
    )
    return DigitsSplit(x_train, x_test, y_train, y_test)


@dataclass(frozen=True, eq=False)
class DemoModel:
    """A float model of the 64 digit features, its quantized form and the data split."""

    float_model: FloatModel
    quantized: QuantizedModel
    split: DigitsSplit


def load_demo(path: str | Path = MODEL_PATH, *, method: Method = "max") -> DemoModel:
    """Import ``path`` (default: the demo model) and quantize it on the digits training images."""
    split = digits_split()
    float_model = import_onnx(path)
    return DemoModel(float_model, quantize(float_model, split.x_train, method=method), split)


def train(split: DigitsSplit):
    """The fitted scikit-learn pipeline (MinMaxScaler + MLPClassifier), same every run."""
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler

    pipeline = make_pipeline(
        MinMaxScaler(), MLPClassifier(hidden_layer_sizes=HIDDEN, max_iter=1000, random_state=SEED)
    )
    pipeline.fit(split.x_train, split.y_train)
    return pipeline


def export(pipeline, path: Path) -> Path:
    """Write ``pipeline`` as ONNX with the single output ``probabilities``."""
    import onnx
    from skl2onnx import to_onnx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skl2onnx's notes on opset versions
        full = to_onnx(
            pipeline, np.zeros((1, 64), np.float32), options={"zipmap": False}, target_opset=17
        )
    model = onnx.utils.Extractor(full).extract_model([full.graph.input[0].name], [OUTPUT])
    model.graph.name = "digits"
    model.doc_string = (
        "DCIA demo: MLP (64-16-16-16-10) on scikit-learn's digits; controller/demo_model.py"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def write_demo(out: Path = MODEL_PATH) -> tuple[Path, float, float]:
    """Train the demo model, write it as ONNX to ``out`` and import it back.

    Returns the file and the test accuracy as imported and in scikit-learn.
    """
    split = digits_split()
    pipeline = train(split)
    path = export(pipeline, out)
    model = import_onnx(path)
    accuracy = float(np.mean(model.predict(split.x_test) == split.y_test))
    return path, accuracy, float(pipeline.score(split.x_test, split.y_test))
