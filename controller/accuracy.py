"""What quantization and splitting cost: test accuracy of the float, int8 and split model.

``dcia accuracy [--model models/digits.onnx]`` prints a table of the
variants below with their accuracy, its difference to the float model's, and how often
each predicts what the float model predicts.

* float: the imported model, float64 numpy.
* int8: every layer with the integer reference (dcia.arithmetic), as one piece.
* split: the model split as deployed. The edge quantizes the input and computes layers
  [0, a), the switches [a, b) and the cloud [b, n), each stage with the integer
  reference on the int8 tensor the one before sent. Nothing runs in float but the
  edge's input quantization and the final arg max. Its predictions equal the int8
  model's: staging changes where layers run, never what they compute.
* split, float cloud: the same, but the cloud dequantizes the tensor it receives and
  finishes layers [b, n) in float, on the float layers they were quantized from; what a
  cloud with no reason to stay in integers could do.

The default split puts the leading layers a switch cannot run on the edge (at least one,
so raw inputs never leave it) and the last layer in the cloud.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich import box
from rich.table import Table

from controller.demo_model import MODEL_PATH, load_demo
from controller.quantize import Method
from dcia.errors import DciaError
from dcia.model import FloatModel, QuantizedModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VariantAccuracy:
    """One way of running the model, and how it did."""

    name: str
    arithmetic: str
    """Which layers run in which arithmetic, e.g. ``int8 [0,3) + float [3,4)``."""
    accuracy: float
    agreement: float
    """Fraction of inputs on which it predicts what the float model predicts."""


@dataclass(frozen=True)
class AccuracyReport:
    """The variants measured on ``samples`` held-out inputs; the split is [0,a) [a,b) [b,n)."""

    model: str
    samples: int
    layers: int
    edge_stop: int
    cloud_start: int
    calibration: str
    float: VariantAccuracy
    quantized: VariantAccuracy
    split: VariantAccuracy
    split_float_cloud: VariantAccuracy | None
    """None when the cloud runs no layer."""

    @property
    def variants(self) -> list[VariantAccuracy]:
        rows = [self.float, self.quantized, self.split, self.split_float_cloud]
        return [row for row in rows if row is not None]

    @property
    def split_gap_pp(self) -> float:
        """How many percentage points the deployed split model is below the float model."""
        return 100 * (self.float.accuracy - self.split.accuracy)

    @property
    def split_description(self) -> str:
        a, b, n = self.edge_stop, self.cloud_start, self.layers
        parts = [f"edge [0,{a})"]
        if b > a:
            parts.append(f"switches [{a},{b})")
        if n > b:
            parts.append(f"cloud [{b},{n})")
        return " · ".join(parts)


def default_split(model: QuantizedModel) -> tuple[int, int]:
    """``(a, b)``: the edge runs the leading layers no switch can run (at least one), the
    cloud the last layer, the network everything between."""
    problems = model.switch_problems()
    n = len(model.layers)
    a = 1
    while a < n and a in problems:
        a += 1
    return a, max(a, n - 1)


def split_predict(
    model: QuantizedModel,
    x: np.ndarray,
    edge_stop: int,
    cloud_start: int,
    *,
    float_cloud: bool = False,
) -> np.ndarray:
    """Class indices with the model split into edge, switch and cloud stages."""
    n = len(model.layers)
    if not 0 < edge_stop <= cloud_start <= n:
        raise DciaError(
            f"split [0,{edge_stop}) [{edge_stop},{cloud_start}) [{cloud_start},{n}) "
            f"is not a valid split of {n} layers (need 0 < a <= b <= n)"
        )
    edge = model.forward_int(model.quantize_input(x), 0, edge_stop)
    network = model.forward_int(edge, edge_stop, cloud_start)
    if not float_cloud:
        return model.forward_int(network, cloud_start).argmax(axis=1)
    cloud_in = model.dequantize(network, cloud_start)
    return model.float_model.forward(cloud_in, start=cloud_start).argmax(axis=1)


def evaluate(
    float_model: FloatModel,
    quantized: QuantizedModel,
    x: np.ndarray,
    y: np.ndarray,
    *,
    edge_stop: int | None = None,
    cloud_start: int | None = None,
) -> AccuracyReport:
    """Measure every variant on the labelled test set ``(x, y)``."""
    a, b = default_split(quantized)
    a = a if edge_stop is None else edge_stop
    b = max(a, b) if cloud_start is None else cloud_start
    n = len(quantized.layers)
    reference = float_model.predict(x)

    def variant(name: str, arithmetic: str, predicted: np.ndarray) -> VariantAccuracy:
        return VariantAccuracy(
            name, arithmetic, float(np.mean(predicted == y)), float(np.mean(predicted == reference))
        )

    return AccuracyReport(
        model=float_model.name,
        samples=len(y),
        layers=n,
        edge_stop=a,
        cloud_start=b,
        calibration=quantized.calibration,
        float=variant("float", "float64", reference),
        quantized=variant("int8", f"int8 [0,{n})", quantized.predict(x)),
        split=variant("split", f"int8 [0,{n})", split_predict(quantized, x, a, b)),
        split_float_cloud=variant(
            "split, cloud float",
            f"int8 [0,{b}), float [{b},{n})",
            split_predict(quantized, x, a, b, float_cloud=True),
        )
        if b < n
        else None,
    )


def digits_report(
    model_path: str | Path = MODEL_PATH,
    *,
    method: Method = "max",
    edge_stop: int | None = None,
    cloud_start: int | None = None,
) -> AccuracyReport:
    """The report for a model of the 64 digit features, calibrated on the training images."""
    demo = load_demo(model_path, method=method)
    return evaluate(
        demo.float_model,
        demo.quantized,
        demo.split.x_test,
        demo.split.y_test,
        edge_stop=edge_stop,
        cloud_start=cloud_start,
    )


def render(report: AccuracyReport) -> Table:
    """The report as a rich table: one row per variant."""
    table = Table(
        title=f"{report.model}: accuracy on {report.samples} held-out inputs",
        caption=f"split: {report.split_description}\n"
        "agreement: share of inputs predicted as the float model predicts them\n"
        f"int8 activation scales: {report.calibration}",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
    )
    table.add_column("variant", no_wrap=True)
    table.add_column("arithmetic", no_wrap=True)
    for column in ("accuracy", "Δ float", "agreement"):
        table.add_column(column, justify="right", no_wrap=True)
    for row in report.variants:
        if row is report.float:
            table.add_row(row.name, row.arithmetic, f"{row.accuracy:.2%}", "", "")
            continue
        gap = 100 * (row.accuracy - report.float.accuracy)
        table.add_row(
            row.name,
            row.arithmetic,
            f"{row.accuracy:.2%}",
            f"{gap:+.2f} pp",
            f"{row.agreement:.2%}",
        )
    return table
