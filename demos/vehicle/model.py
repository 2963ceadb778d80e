"""The vehicle demo's model: two onboard sensors, fused at the roadside, finished in the cloud.

Data: scikit-learn's handwritten digits (``load_digits``, the same fixed split as the
digits demo: 1,437 images to train, 360 to test). Each 8x8 image is one scene seen by two
sensors: the **left view** is the image's columns 0..3 (32 pixels), the **right view**
its columns 4..7. Neither view is the whole digit (a 3 and a 9, a 1 and a 7 differ in one
half), so the decision needs both, as a vehicle's decision needs the other vehicle's
view of a crossing. The views are cut from real images and are disjoint; nothing is
synthesised.

Model (``views_model``): per view, a first stage ``dense 32 -> 16, ReLU`` with its own
weights and a shared bias (each onboard unit runs its own view's stage); the fusion, the
element-wise maximum of the two 16-element features; then ``dense 16 -> 16, ReLU`` and
``dense 16 -> 10``. Trained in float with numpy (Adam, cross-entropy) with the fusion in
the graph; a fifth of the training steps see one view only (the other sensor missing),
so a partial group (a timed-out fusion) still gets a sensible answer. Exported with
onnx.helper as two graph inputs ``left`` and ``right`` whose branches meet in ``Max``;
controller.onnx_import reads that as a dense layer over both views side by side and a
fusion layer of two members (member 0: left, member 1: right).

    python -m demos.vehicle.model          # train again, write models/vehicle_fusion.onnx

Running it again writes the same file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from controller.demo_model import DigitsSplit, digits_split
from controller.onnx_import import import_onnx
from controller.quantize import quantize
from dcia.model import FloatModel, QuantizedModel

MODEL_PATH = Path(__file__).resolve().parents[2] / "models" / "vehicle_fusion.onnx"
VIEWS = ("left", "right")
"""The sensors, in member order: member ``k`` sees ``VIEWS[k]``."""
VIEW_WIDTH = 32
FEATURES = 16
HIDDEN = 16
CLASSES = 10
PIXEL_MAX = 16.0
SEED = 0
EPOCHS = 300
BATCH = 64
LEARNING_RATE = 0.005
ONE_VIEW_SHARE = 0.2
"""Share of training samples that see one view only (the other sensor missing)."""
MODEL_ID = 2
"""The model id the demo deploys (the digits demo is 1)."""


def views(images: np.ndarray) -> list[np.ndarray]:
    """The two views of 8x8 images given as rows of 64 pixels: columns 0..3 and 4..7.

    >>> [v.shape for v in views(np.arange(128).reshape(2, 64))]
    [(2, 32), (2, 32)]
    >>> views(np.arange(64)[None])[1][0, :4].tolist()
    [4, 5, 6, 7]
    """
    grid = np.asarray(images).reshape(len(images), 8, 8)
    return [grid[:, :, :4].reshape(len(images), VIEW_WIDTH),
            grid[:, :, 4:].reshape(len(images), VIEW_WIDTH)]


def member_inputs(view: np.ndarray, member: int, members: int = len(VIEWS)) -> np.ndarray:
    """What member ``member`` feeds the model: its view in its own columns, zeros elsewhere
    (the imported model's input is the views side by side; a member has only its own).

    >>> member_inputs(np.ones((1, 2)), 1).tolist()
    [[0.0, 0.0, 1.0, 1.0]]
    """
    view = np.asarray(view, dtype=np.float64)
    width = view.shape[1]
    out = np.zeros((len(view), width * members))
    out[:, member * width:(member + 1) * width] = view
    return out


def members_of(images: np.ndarray) -> list[np.ndarray]:
    """Each member's model inputs for ``images`` (64-pixel rows): member_inputs of each view."""
    return [member_inputs(v, k) for k, v in enumerate(views(images))]


@dataclass(frozen=True, eq=False)
class Weights:
    """The float parameters: per view ``w1[k]`` (16 x 32, on pixels 0..1), shared ``b1``."""

    w1: list[np.ndarray]
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray
    w3: np.ndarray
    b3: np.ndarray


def forward(p: Weights, xs: list[np.ndarray], present: np.ndarray | None = None):
    """Logits of views ``xs`` (pixels 0..1); ``present`` (n, views) masks missing sensors.

    A missing view's features are zero, which fuses as no member at all: every feature is
    a ReLU output, at least 0.
    """
    hs = [np.maximum(x @ w.T + p.b1, 0.0) for x, w in zip(xs, p.w1)]
    if present is not None:
        hs = [h * present[:, [k]] for k, h in enumerate(hs)]
    fused = np.maximum.reduce(hs)
    h2 = np.maximum(fused @ p.w2.T + p.b2, 0.0)
    return hs, fused, h2, h2 @ p.w3.T + p.b3


def train(split: DigitsSplit) -> Weights:
    """Fit the model on the training images (numpy, Adam; the same result every run)."""
    rng = np.random.default_rng(SEED)
    xs_all = [v / PIXEL_MAX for v in views(split.x_train)]
    y_all = split.y_train.astype(np.int64)

    def init(n_out, n_in):
        return rng.normal(0.0, np.sqrt(2.0 / n_in), (n_out, n_in))

    params = [init(FEATURES, VIEW_WIDTH), init(FEATURES, VIEW_WIDTH), np.zeros(FEATURES),
              init(HIDDEN, FEATURES), np.zeros(HIDDEN), init(CLASSES, HIDDEN), np.zeros(CLASSES)]
    m = [np.zeros_like(q) for q in params]
    v = [np.zeros_like(q) for q in params]
    step = 0
    for _ in range(EPOCHS):
        order = rng.permutation(len(y_all))
        for start in range(0, len(order), BATCH):
            idx = order[start:start + BATCH]
            xs, y = [x[idx] for x in xs_all], y_all[idx]
            present = np.ones((len(idx), 2))
            lone = rng.random(len(idx)) < ONE_VIEW_SHARE
            present[lone, rng.integers(0, 2, lone.sum())] = 0.0
            p = Weights([params[0], params[1]], *params[2:])
            hs, fused, h2, logits = forward(p, xs, present)
            prob = np.exp(logits - logits.max(axis=1, keepdims=True))
            prob /= prob.sum(axis=1, keepdims=True)
            d_logits = prob
            d_logits[np.arange(len(y)), y] -= 1.0
            d_logits /= len(y)
            g_w3, g_b3 = d_logits.T @ h2, d_logits.sum(0)
            d_h2 = d_logits @ p.w3 * (h2 > 0)
            g_w2, g_b2 = d_h2.T @ fused, d_h2.sum(0)
            d_fused = d_h2 @ p.w2
            left_wins = hs[0] >= hs[1]
            grads_w1, g_b1 = [], np.zeros(FEATURES)
            for k, (x, h) in enumerate(zip(xs, hs)):
                d_h = d_fused * (left_wins if k == 0 else ~left_wins) * (h > 0)
                grads_w1.append(d_h.T @ x)
                g_b1 += d_h.sum(0)
            grads = [*grads_w1, g_b1, g_w2, g_b2, g_w3, g_b3]
            step += 1
            for i, (q, g) in enumerate(zip(params, grads)):
                m[i] = 0.9 * m[i] + 0.1 * g
                v[i] = 0.999 * v[i] + 0.001 * g * g
                q -= LEARNING_RATE * (m[i] / (1 - 0.9 ** step)) / (np.sqrt(v[i] / (1 - 0.999 ** step)) + 1e-8)
    return Weights([params[0], params[1]], *params[2:])


def export(p: Weights, path: Path = MODEL_PATH) -> Path:
    """Write the model as ONNX: inputs ``left`` and ``right`` (pixels 0..16), output
    ``probabilities``; the 1/16 pixel scale is folded into the first stage's weights."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def init(name, value):
        return numpy_helper.from_array(np.asarray(value, np.float32), name)

    initializers = [init("b1", p.b1), init("w2", p.w2.T), init("b2", p.b2),
                    init("w3", p.w3.T), init("b3", p.b3)]
    nodes = []
    for view, w in zip(VIEWS, p.w1):
        initializers.append(init(f"w1_{view}", w.T / PIXEL_MAX))
        nodes += [helper.make_node("MatMul", [view, f"w1_{view}"], [f"{view}_mm"], name=f"{view}_dense"),
                  helper.make_node("Add", [f"{view}_mm", "b1"], [f"{view}_z"], name=f"{view}_bias"),
                  helper.make_node("Relu", [f"{view}_z"], [f"{view}_features"], name=f"{view}_relu")]
    nodes += [
        helper.make_node("Max", [f"{v}_features" for v in VIEWS], ["fused"], name="fusion"),
        helper.make_node("MatMul", ["fused", "w2"], ["h2_mm"], name="dense2"),
        helper.make_node("Add", ["h2_mm", "b2"], ["h2_z"], name="bias2"),
        helper.make_node("Relu", ["h2_z"], ["h2"], name="relu2"),
        helper.make_node("MatMul", ["h2", "w3"], ["h3_mm"], name="dense3"),
        helper.make_node("Add", ["h3_mm", "b3"], ["logits"], name="bias3"),
        helper.make_node("Softmax", ["logits"], ["probabilities"], name="softmax", axis=1),
    ]
    graph = helper.make_graph(
        nodes, "vehicle_fusion",
        [helper.make_tensor_value_info(v, TensorProto.FLOAT, [None, VIEW_WIDTH]) for v in VIEWS],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, CLASSES])],
        initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="dcia demos.vehicle.model")
    model.ir_version = 8
    model.doc_string = ("DCIA vehicle demo: two views (left, right halves of scikit-learn's "
                        "digits), dense 32->16 each, Max fusion, 16->16->10; demos/vehicle/model.py")
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


@dataclass(frozen=True, eq=False)
class VehicleModel:
    """The imported float model, its int8 form (fusion layer included) and the data split."""

    float_model: FloatModel
    quantized: QuantizedModel
    split: DigitsSplit

    def test_members(self) -> list[np.ndarray]:
        """Each member's float inputs of the test images (member_inputs of its view)."""
        return members_of(self.split.x_test)


def load_vehicle(path: str | Path = MODEL_PATH, *, timeout_us: int = 100_000) -> VehicleModel:
    """Import ``path`` and quantize it: calibrated on the training images' members, and the
    layers after the fusion on their fused groups (each image's two views one group)."""
    split = digits_split()
    float_model = import_onnx(path, name="vehicle_fusion")
    members = members_of(split.x_train)
    n = len(split.x_train)
    groups = np.stack([np.arange(n), np.arange(n) + n], axis=1)
    quantized = quantize(float_model, np.concatenate(members), model_id=MODEL_ID,
                         groups=groups, fusion_timeout_us=timeout_us)
    return VehicleModel(float_model, quantized, split)


def accuracy_table(model: VehicleModel) -> dict[str, float]:
    """Test accuracy of the float and int8 models with both views fused and with one view."""
    y = model.split.y_test
    qm, fm = model.quantized, model.float_model
    members = model.test_members()
    q_members = [qm.quantize_input(x) for x in members]
    acc = {"float, both views fused": fm.forward_group(members).argmax(1),
           "int8, both views fused": qm.forward_int_group(q_members).argmax(1)}
    for k, view in enumerate(VIEWS):
        acc[f"int8, {view} view only"] = qm.forward_int_group([q_members[k]]).argmax(1)
    return {name: float(np.mean(pred == y)) for name, pred in acc.items()}


def main() -> int:
    split = digits_split()
    path = export(train(split))
    model = load_vehicle(path)
    print(f"wrote {path}")
    for name, value in accuracy_table(model).items():
        print(f"  {name:28s} {100 * value:6.2f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
