import pytest

from controller.demo_model import MODEL_PATH, digits_split
from controller.onnx_import import import_onnx
from controller.quantize import quantize


@pytest.fixture(scope="session")
def digits():
    return digits_split()


@pytest.fixture(scope="session")
def model(digits):
    """The demo model, quantized as the testbed does."""
    return quantize(import_onnx(MODEL_PATH), digits.x_train)
