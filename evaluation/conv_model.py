"""The evaluation's second model: a convolutional feature extractor whose early layers are a
real cost on a weak edge (issue 12), then the digits demo's switch-sized dense tail.

Data: scikit-learn's handwritten digits (``load_digits``, the digits demo's fixed split:
1,437 images to train, 360 to test), each 8x8 image one input of 64 pixels 0..16.

Model (``models/digits_conv.onnx``):

    pixels (64) -> as 1 x 8 x 8
    conv 3x3, 1 -> 8 channels, padding 1, ReLU       8 x 8 x 8 = 512    4,608 MACs
    conv 3x3, 8 -> 16 channels, stride 2, padding 1, ReLU  16 x 4 x 4 = 256   18,432 MACs
    dense 256 -> 16, ReLU                                                 4,096 MACs
    dense 16 -> 16, ReLU                                                    256 MACs
    dense 16 -> 10                                                          160 MACs

27,552 multiply-accumulates, 16 times the demo MLP's 1,696. The two convolutions and the
256-input dense layer are wider than a switch computes (at most 16 elements) and the
convolution is no operation of the P4 program: the planner keeps them on the edge or the
cloud; only the last two layers fit a switch. Trained in float with numpy (Adam,
cross-entropy, the convolutions as patch gathers), exported with onnx.helper (Reshape,
Conv, Relu, Conv, Relu, Flatten, MatMul/Add/Relu ..., Softmax) and imported and quantized
through controller.onnx_import and controller.quantize like every model.

    python -m evaluation.conv_model        # train again, write models/digits_conv.onnx

Running it again writes the same file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from controller.demo_model import DemoModel, digits_split
from controller.onnx_import import import_onnx
from controller.quantize import quantize
from dcia.arithmetic import conv_patch_index

MODEL_PATH = Path(__file__).resolve().parent.parent / "models" / "digits_conv.onnx"
NAME = "digits_conv"
MODEL_ID = 3
"""The model id the evaluation deploys it under (the digits demo is 1, the vehicle demo 2)."""
IMAGE = (1, 8, 8)
CONV1 = 8
CONV2 = 16
HIDDEN = 16
CLASSES = 10
PIXEL_MAX = 16.0
SEED = 0
EPOCHS = 40
BATCH = 64
LEARNING_RATE = 0.003


@dataclass(frozen=True)
class ConvSpec:
    """One convolution of the model: its input shape, output channels, stride, padding."""

    in_shape: tuple[int, int, int]
    c_out: int
    stride: int
    pad: int
    kernel: int = 3

    @property
    def out_shape(self) -> tuple[int, int, int]:
        c, h, w = self.in_shape
        size = lambda n: (n + 2 * self.pad - self.kernel) // self.stride + 1  # noqa: E731
        return self.c_out, size(h), size(w)


CONVS = (ConvSpec(IMAGE, CONV1, stride=1, pad=1), ConvSpec((CONV1, 8, 8), CONV2, stride=2, pad=1))
FLAT = int(np.prod(CONVS[-1].out_shape))


def _conv_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray, spec: ConvSpec):
    """Convolution of the channel-major flattened batch ``x``: (output, patches)."""
    index = conv_patch_index(spec.in_shape, spec.kernel, spec.stride, spec.pad)
    padded = np.concatenate([x, np.zeros((len(x), 1))], axis=1)
    patches = padded[:, index]  # (batch, positions, c_in * k * k)
    y = patches @ w.reshape(len(w), -1).T + b  # (batch, positions, c_out)
    return y.transpose(0, 2, 1).reshape(len(x), -1), patches


def _conv_backward(d_y: np.ndarray, patches: np.ndarray, w: np.ndarray, spec: ConvSpec,
                   need_input: bool):
    """Gradients of the filters, the bias and (``need_input``) the input."""
    n, positions = len(d_y), patches.shape[1]
    d = d_y.reshape(n, len(w), positions).transpose(0, 2, 1)  # (batch, positions, c_out)
    g_w = np.einsum("npo,npk->ok", d, patches).reshape(w.shape)
    g_b = d.sum(axis=(0, 1))
    if not need_input:
        return g_w, g_b, None
    d_patches = d @ w.reshape(len(w), -1)  # (batch, positions, c_in * k * k)
    index = conv_patch_index(spec.in_shape, spec.kernel, spec.stride, spec.pad)
    d_padded = np.zeros((n, int(np.prod(spec.in_shape)) + 1))
    for k in range(index.shape[1]):  # positions repeat within a column only through padding
        np.add.at(d_padded, (slice(None), index[:, k]), d_patches[:, :, k])
    return g_w, g_b, d_padded[:, :-1]


def forward(params: list[np.ndarray], x: np.ndarray):
    """Logits of pixels ``x`` (0..1) and what backpropagation needs."""
    w1, b1, w2, b2, w3, b3, w4, b4, w5, b5 = params
    z1, p1 = _conv_forward(x, w1, b1, CONVS[0])
    h1 = np.maximum(z1, 0.0)
    z2, p2 = _conv_forward(h1, w2, b2, CONVS[1])
    h2 = np.maximum(z2, 0.0)
    h3 = np.maximum(h2 @ w3.T + b3, 0.0)
    h4 = np.maximum(h3 @ w4.T + b4, 0.0)
    return h4 @ w5.T + b5, (p1, h1, p2, h2, h3, h4)


def train(x_train: np.ndarray, y_train: np.ndarray) -> list[np.ndarray]:
    """Fit the model on the training images (numpy, Adam; the same result every run)."""
    rng = np.random.default_rng(SEED)

    def init(*shape):
        fan_in = int(np.prod(shape[1:]))
        return rng.normal(0.0, np.sqrt(2.0 / fan_in), shape)

    params = [init(CONV1, 1, 3, 3), np.zeros(CONV1), init(CONV2, CONV1, 3, 3), np.zeros(CONV2),
              init(HIDDEN, FLAT), np.zeros(HIDDEN), init(HIDDEN, HIDDEN), np.zeros(HIDDEN),
              init(CLASSES, HIDDEN), np.zeros(CLASSES)]
    m = [np.zeros_like(q) for q in params]
    v = [np.zeros_like(q) for q in params]
    x_all, y_all = x_train / PIXEL_MAX, y_train.astype(np.int64)
    step = 0
    for _ in range(EPOCHS):
        order = rng.permutation(len(y_all))
        for start in range(0, len(order), BATCH):
            idx = order[start:start + BATCH]
            x, y = x_all[idx], y_all[idx]
            logits, (p1, h1, p2, h2, h3, h4) = forward(params, x)
            prob = np.exp(logits - logits.max(axis=1, keepdims=True))
            prob /= prob.sum(axis=1, keepdims=True)
            d = prob
            d[np.arange(len(y)), y] -= 1.0
            d /= len(y)
            w1, _, w2, _, w3, _, w4, _, w5, _ = params
            g_w5, g_b5 = d.T @ h4, d.sum(0)
            d4 = d @ w5 * (h4 > 0)
            g_w4, g_b4 = d4.T @ h3, d4.sum(0)
            d3 = d4 @ w4 * (h3 > 0)
            g_w3, g_b3 = d3.T @ h2, d3.sum(0)
            d2 = d3 @ w3 * (h2 > 0)
            g_w2, g_b2, d_h1 = _conv_backward(d2, p2, w2, CONVS[1], need_input=True)
            g_w1, g_b1, _ = _conv_backward(d_h1 * (h1 > 0), p1, w1, CONVS[0], need_input=False)
            grads = [g_w1, g_b1, g_w2, g_b2, g_w3, g_b3, g_w4, g_b4, g_w5, g_b5]
            step += 1
            for i, (q, g) in enumerate(zip(params, grads)):
                m[i] = 0.9 * m[i] + 0.1 * g
                v[i] = 0.999 * v[i] + 0.001 * g * g
                q -= LEARNING_RATE * (m[i] / (1 - 0.9 ** step)) / (
                    np.sqrt(v[i] / (1 - 0.999 ** step)) + 1e-8)
    return params


def export(params: list[np.ndarray], path: Path = MODEL_PATH) -> Path:
    """Write the model as ONNX: input ``X`` (64 pixels 0..16), output ``probabilities``; the
    1/16 pixel scale is folded into the first convolution's filters."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w1, b1, w2, b2, w3, b3, w4, b4, w5, b5 = params

    def init(name, value, dtype=np.float32):
        return numpy_helper.from_array(np.asarray(value, dtype), name)

    initializers = [
        init("image_shape", [-1, *IMAGE], np.int64), init("w1", w1 / PIXEL_MAX), init("b1", b1),
        init("w2", w2), init("b2", b2), init("w3", w3.T), init("b3", b3), init("w4", w4.T),
        init("b4", b4), init("w5", w5.T), init("b5", b5)]
    nodes = [
        helper.make_node("Reshape", ["X", "image_shape"], ["image"], name="as_image"),
        helper.make_node("Conv", ["image", "w1", "b1"], ["c1"], name="conv1", kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1], strides=[1, 1]),
        helper.make_node("Relu", ["c1"], ["h1"], name="relu1"),
        helper.make_node("Conv", ["h1", "w2", "b2"], ["c2"], name="conv2", kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c2"], ["h2"], name="relu2"),
        helper.make_node("Flatten", ["h2"], ["features"], name="flatten", axis=1),
    ]
    for i, source in ((3, "features"), (4, "h3"), (5, "h4")):
        out = "logits" if i == 5 else f"h{i}"
        nodes += [helper.make_node("MatMul", [source, f"w{i}"], [f"mm{i}"], name=f"dense{i}"),
                  helper.make_node("Add", [f"mm{i}", f"b{i}"], [f"z{i}" if i < 5 else out],
                                   name=f"bias{i}")]
        if i < 5:
            nodes.append(helper.make_node("Relu", [f"z{i}"], [out], name=f"relu{i}"))
    nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], name="softmax", axis=1))
    graph = helper.make_graph(
        nodes, NAME, [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 64])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, CLASSES])],
        initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="dcia evaluation.conv_model")
    model.ir_version = 8
    model.doc_string = ("DCIA evaluation model: scikit-learn's digits, conv 3x3 1->8, conv 3x3 "
                        "8->16 stride 2, dense 256->16->16->10; evaluation/conv_model.py")
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def load_conv(path: str | Path = MODEL_PATH) -> DemoModel:
    """Import ``path`` and quantize it (max-abs calibration on the training images)."""
    split = digits_split()
    float_model = import_onnx(path, name=NAME)
    return DemoModel(float_model, quantize(float_model, split.x_train, model_id=MODEL_ID), split)


def main() -> int:
    split = digits_split()
    params = train(split.x_train, split.y_train)
    path = export(params)
    model = load_conv(path)
    y = split.y_test
    float_acc = float(np.mean(model.float_model.predict(split.x_test) == y))
    int_acc = float(np.mean(model.quantized.predict(split.x_test) == y))
    print(f"wrote {path}")
    print(f"  layers: {', '.join(f'{l.kind} {l.n_in}->{l.n_out}' for l in model.quantized.layers)}")
    print(f"  accuracy on the 360 test images: float {100 * float_acc:.2f} %, "
          f"int8 {100 * int_acc:.2f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
