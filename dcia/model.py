"""Model records: the float model an import produces and the quantized model DCIA deploys.

A :class:`FloatModel` is a chain of float layers with a numpy forward; quantization
(controller/quantize.py) turns it into a :class:`QuantizedModel`, whose ``layers`` are
the integer records of dcia.layers that the edge, the switches and the cloud run.

    >>> m = FloatModel("tiny", [FloatDense(np.array([[1.0, -1.0]]), np.array([0.5]), relu=True)])
    >>> m.forward(np.array([[2.0, 1.0], [0.0, 3.0]])).tolist()
    [[1.5], [0.0]]

A quantized model is saved as JSON with the SHA-256 of its content; loading checks it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from dcia import arithmetic
from dcia.arithmetic import Activation, BagMode
from dcia.capability import DCIA_PROGRAM, Capability
from dcia.errors import DciaError, ModelFileError, ModelIntegrityError, ParameterRangeError
from dcia.layers import (
    ConvLayer,
    DenseLayer,
    ElementwiseLayer,
    EmbeddingBagLayer,
    EmbeddingLayer,
    FusionLayer,
    Layer,
    LayerKind,
    check_chain,
    mac_count,
)

log = logging.getLogger(__name__)

OUTPUTS = ("logits", "softmax", "argmax")
"""What a model's graph hands back: the last layer's values, their softmax, or the class."""

FILE_FORMAT = "dcia.quantized-model"
FILE_FORMAT_VERSION = 1


# ------------------------------------------------------------------ float layers --


def non_finite(values: np.ndarray, what: str, *, plural: bool = True,
               axes: Sequence[str] = ()) -> str | None:
    """Why ``values`` are not all finite, as a clause about ``what``; None when they are.

    ``axes`` names the dimensions in the position of the first bad value.

    >>> non_finite(np.array([[1.0, np.nan], [np.inf, np.nan]]), "weights")
    'weights have 2 NaN and 1 inf values (first at [0, 1])'
    >>> non_finite(np.full(3, np.nan), "the table", plural=False)
    'the table is all NaN (3 values)'
    >>> non_finite(np.ones(2), "weights") is None
    True
    """
    values = np.asarray(values)
    if values.dtype.kind not in "fc":
        return None
    bad = ~np.isfinite(values)
    if not bad.any():
        return None
    nan, inf = int(np.isnan(values).sum()), int(np.isinf(values).sum())
    for count, word in ((nan, "NaN"), (inf, "inf")):
        if count == values.size:
            return f"{what} {'are' if plural else 'is'} all {word} ({count} value{'s' * (count > 1)})"
    counts = " and ".join(f"{n} {w}" for n, w in ((nan, "NaN"), (inf, "inf")) if n)
    first = [int(i) for i in np.argwhere(bad)[0]]
    where = (", ".join(f"{a} {i}" for a, i in zip(axes, first)) if len(axes) == len(first)
             else f"[{', '.join(map(str, first))}]")
    return (f"{what} {'have' if plural else 'has'} {counts} value{'s' * (nan + inf > 1)} "
            f"(first at {where})")


def _check_finite(*named: tuple[str, np.ndarray, bool]) -> None:
    for what, values, plural in named:
        problem = non_finite(values, what, plural=plural)
        if problem:
            raise ParameterRangeError(problem)



@dataclass(frozen=True, eq=False)
class FloatDense:
    """``y = W x + b``, then ReLU if ``relu``; ``weights`` has shape (n_out, n_in)."""

    weights: np.ndarray
    bias: np.ndarray
    relu: bool = False
    kind: LayerKind = field(default=LayerKind.DENSE, init=False)

    def __post_init__(self) -> None:
        if self.weights.ndim != 2 or self.bias.shape != (self.weights.shape[0],):
            raise ParameterRangeError(
                f"dense layer weights {self.weights.shape} and bias {self.bias.shape} do not match"
            )
        _check_finite(("dense layer weights", self.weights, True), ("dense layer bias", self.bias, False))

    @property
    def n_in(self) -> int:
        return self.weights.shape[1]

    @property
    def n_out(self) -> int:
        return self.weights.shape[0]

    @property
    def macs(self) -> int:
        return mac_count(self.kind, self.n_in, self.n_out)

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = x @ self.weights.T + self.bias
        return np.maximum(y, 0.0) if self.relu else y


@dataclass(frozen=True, eq=False)
class FloatElementwise:
    """``y_i = scale_i * x_i + offset_i``, then ReLU if ``relu``: a per-feature transform."""

    scale: np.ndarray
    offset: np.ndarray
    relu: bool = False
    kind: LayerKind = field(default=LayerKind.ELEMENTWISE, init=False)

    def __post_init__(self) -> None:
        if self.scale.ndim != 1 or self.scale.shape != self.offset.shape:
            raise ParameterRangeError(
                f"element-wise layer scales {self.scale.shape} and offsets {self.offset.shape} "
                "do not match"
            )
        _check_finite(("element-wise layer scales", self.scale, True),
                      ("element-wise layer offsets", self.offset, True))

    @property
    def n_in(self) -> int:
        return self.scale.shape[0]

    n_out = n_in

    @property
    def macs(self) -> int:
        return mac_count(self.kind, self.n_in, self.n_out)

    def forward(self, x: np.ndarray) -> np.ndarray:
        y = x * self.scale + self.offset
        return np.maximum(y, 0.0) if self.relu else y


@dataclass(frozen=True, eq=False)
class FloatEmbedding:
    """Id -> row of ``table`` (shape (vocabulary, dim)); the input is one integer id."""

    table: np.ndarray
    kind: LayerKind = field(default=LayerKind.EMBEDDING, init=False)

    def __post_init__(self) -> None:
        if self.table.ndim != 2:
            raise ParameterRangeError(f"embedding table has shape {self.table.shape}, not 2-D")
        _check_finite(("embedding table", self.table, False))

    n_in = 1

    @property
    def n_out(self) -> int:
        return self.table.shape[1]

    @property
    def macs(self) -> int:
        return mac_count(self.kind, self.n_in, self.n_out)

    def forward(self, x: np.ndarray) -> np.ndarray:
        ids = np.asarray(x).reshape(len(x), -1)[:, 0].astype(np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= len(self.table)):
            raise ParameterRangeError(f"embedding ids must be in 0..{len(self.table) - 1}")
        return self.table[ids]


@dataclass(frozen=True, eq=False)
class FloatEmbeddingBag:
    """``n_in`` token ids (0 padding) -> the sum or mean of their rows of ``table`` (shape
    (vocabulary, dim); row 0, the padding's, is never read). An empty bag is all zeros.

    >>> bag = FloatEmbeddingBag(np.array([[9.0, 9.0], [1.0, 2.0], [3.0, 0.0]]), n_in=3)
    >>> bag.forward(np.array([[1, 2, 0], [0, 0, 0]])).tolist()
    [[2.0, 1.0], [0.0, 0.0]]
    """

    table: np.ndarray
    n_in: int
    mode: BagMode = BagMode.MEAN
    kind: LayerKind = field(default=LayerKind.EMBEDDING_BAG, init=False)

    def __post_init__(self) -> None:
        if self.table.ndim != 2 or len(self.table) < 2:
            raise ParameterRangeError(f"embedding-bag table has shape {self.table.shape}; it "
                                      "needs 2-D rows, the padding's and at least one token's")
        if len(self.table) > arithmetic.BAG_MAX_ID + 1:
            raise ParameterRangeError(
                f"embedding-bag table has {len(self.table)} rows; token ids are one element, "
                f"at most {arithmetic.BAG_MAX_ID + 1} rows (padding included)")
        object.__setattr__(self, "mode", BagMode(self.mode))
        _check_finite(("embedding-bag table", self.table, False))

    @property
    def n_out(self) -> int:
        return self.table.shape[1]

    @property
    def macs(self) -> int:
        return mac_count(self.kind, self.n_in, self.n_out)

    def forward(self, x: np.ndarray) -> np.ndarray:
        ids = np.asarray(x).reshape(len(x), -1).astype(np.int64)
        if ids.shape[1] != self.n_in:
            raise ParameterRangeError(f"an embedding-bag of {self.n_in} tokens got {ids.shape[1]}")
        if ids.size and (ids.min() < 0 or ids.max() >= len(self.table)):
            raise ParameterRangeError(f"token ids must be in 0..{len(self.table) - 1}")
        mask = (ids != arithmetic.BAG_PAD)[:, :, None]
        sums = (self.table[ids] * mask).sum(axis=1)
        if self.mode == BagMode.SUM:
            return sums
        return sums / np.maximum(mask.sum(axis=1), 1)


@dataclass(frozen=True, eq=False)
class FloatConv:
    """A 2-D convolution on inputs of ``in_shape`` = (channels, height, width), flattened
    channel by channel; ``weights`` has shape (c_out, channels, kernel, kernel); then ReLU
    if ``relu``. The output is flattened channel by channel too.

    >>> conv = FloatConv(np.ones((1, 1, 2, 2)), np.zeros(1), (1, 2, 2))
    >>> conv.forward(np.array([[1.0, 2.0, 3.0, 4.0]])).tolist(), conv.n_out
    ([[10.0]], 1)
    """

    weights: np.ndarray
    bias: np.ndarray
    in_shape: tuple[int, int, int]
    stride: int = 1
    pad: int = 0
    relu: bool = False
    kind: LayerKind = field(default=LayerKind.CONV, init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "in_shape", tuple(int(v) for v in self.in_shape))
        w = self.weights
        if (w.ndim != 4 or w.shape[2] != w.shape[3] or len(self.in_shape) != 3
                or w.shape[1] != self.in_shape[0] or self.bias.shape != (w.shape[0],)):
            raise ParameterRangeError(
                f"convolution weights {w.shape}, bias {self.bias.shape} and input "
                f"{self.in_shape} do not match (weights: out, in, kernel, kernel)")
        arithmetic.conv_output_shape(self.in_shape, w.shape[0], w.shape[2], self.stride, self.pad)
        _check_finite(("convolution weights", w, True), ("convolution bias", self.bias, False))

    @property
    def kernel(self) -> int:
        return self.weights.shape[2]

    @property
    def n_in(self) -> int:
        return int(np.prod(self.in_shape))

    @property
    def n_out(self) -> int:
        return int(np.prod(arithmetic.conv_output_shape(
            self.in_shape, self.weights.shape[0], self.kernel, self.stride, self.pad)))

    @property
    def macs(self) -> int:
        return self.n_out * self.in_shape[0] * self.kernel ** 2

    def filters(self) -> np.ndarray:
        """The weights as one row per output channel, in ``(channel, ky, kx)`` order."""
        return self.weights.reshape(self.weights.shape[0], -1)

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        index = arithmetic.conv_patch_index(self.in_shape, self.kernel, self.stride, self.pad)
        padded = np.concatenate([x, np.zeros((len(x), 1))], axis=1)
        y = padded[:, index] @ self.filters().T + self.bias  # (batch, positions, c_out)
        y = y.transpose(0, 2, 1).reshape(len(x), -1)
        return np.maximum(y, 0.0) if self.relu else y


@dataclass(frozen=True, eq=False)
class FloatFusion:
    """The float twin of a fusion layer: the element-wise maximum over a group's members.

    ``forward`` runs a batch of groups of one (each row unchanged); ``fuse`` a group.
    """

    n: int
    members: int
    kind: LayerKind = field(default=LayerKind.FUSION, init=False)

    @property
    def n_in(self) -> int:
        return self.n

    n_out = n_in

    @property
    def macs(self) -> int:
        return mac_count(self.kind, self.n_in, self.n_out)

    def fuse(self, members: list[np.ndarray]) -> np.ndarray:
        return np.maximum.reduce([np.asarray(m, dtype=np.float64) for m in members])

    def forward(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float64)


FloatLayer = FloatDense | FloatElementwise | FloatEmbedding | FloatEmbeddingBag | FloatFusion | FloatConv


def with_affine(layer: FloatLayer, scale: np.ndarray, offset: np.ndarray) -> FloatLayer:
    """``layer`` followed by ``y * scale + offset`` as one layer (exact; ``layer`` has no ReLU)."""
    if isinstance(layer, FloatFusion | FloatEmbeddingBag):
        raise ValueError(f"cannot fold an affine transform into a {layer.kind} layer")
    if getattr(layer, "relu", False):
        raise ValueError("cannot fold an affine transform into a layer that ends in ReLU")
    if isinstance(layer, FloatConv):
        raise ValueError("cannot fold an element-wise affine transform into a convolution")
    scale = np.broadcast_to(scale, (layer.n_out,))
    offset = np.broadcast_to(offset, (layer.n_out,))
    if isinstance(layer, FloatDense):
        return FloatDense(layer.weights * scale[:, None], layer.bias * scale + offset)
    if isinstance(layer, FloatElementwise):
        return FloatElementwise(layer.scale * scale, layer.offset * scale + offset)
    return FloatEmbedding(layer.table * scale + offset)


def with_relu(layer: FloatLayer) -> FloatLayer:
    """``layer`` followed by ReLU as one layer."""
    if isinstance(layer, FloatFusion | FloatEmbeddingBag):
        raise ValueError(f"cannot fold ReLU into a {layer.kind} layer")
    if isinstance(layer, FloatEmbedding):
        return FloatEmbedding(np.maximum(layer.table, 0.0))
    return replace(layer, relu=True)


def fold_into_dense(transform: FloatElementwise, dense: FloatDense) -> FloatDense:
    """``dense(transform(x))`` as one dense layer (exact; ``transform`` has no ReLU)."""
    if transform.relu:
        raise ValueError("cannot fold an element-wise layer that ends in ReLU")
    return FloatDense(
        dense.weights * transform.scale[None, :],
        dense.weights @ transform.offset + dense.bias,
        relu=dense.relu,
    )


def softmax(y: np.ndarray) -> np.ndarray:
    e = np.exp(y - y.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# ------------------------------------------------------------------- float model --


@dataclass(frozen=True, eq=False)
class FloatModel:
    """A chain of float layers, as imported; ``output`` says what the graph ends with.

    Inputs are batches: shape (batch, input_size), or (batch,) of ids when the first
    layer is an embedding.
    """

    name: str
    layers: list[FloatLayer]
    output: str = "logits"

    def __post_init__(self) -> None:
        if not self.layers:
            raise ParameterRangeError(f"model {self.name!r} has no layers")
        if self.output not in OUTPUTS:
            raise ParameterRangeError(f"model output {self.output!r} is not one of {OUTPUTS}")
        for i, layer in enumerate(self.layers[1:], start=1):
            if isinstance(layer, FloatEmbedding | FloatEmbeddingBag):
                raise ParameterRangeError(f"layer {i} is an {layer.kind}; only the first layer may be")
        check_chain(self.layers)

    @property
    def input_size(self) -> int:
        return self.layers[0].n_in

    def forward(self, x: np.ndarray, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Run layers [start, stop) on the batch ``x``."""
        ids = start < len(self.layers) and isinstance(self.layers[start],
                                                      FloatEmbedding | FloatEmbeddingBag)
        y = np.asarray(x) if ids else np.asarray(x, dtype=np.float64)
        for layer in self.layers[start:stop]:
            y = layer.forward(y)
        return y

    def run(self, x: np.ndarray) -> np.ndarray:
        """What the original graph returns: logits, probabilities or class indices."""
        y = self.forward(x)
        if self.output == "softmax":
            return softmax(y)
        if self.output == "argmax":
            return y.argmax(axis=1)
        return y

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class indices: the arg max of the last layer."""
        return self.forward(x).argmax(axis=1)

    @property
    def fusion_index(self) -> int | None:
        return fusion_index(self.layers)

    def forward_group(self, members: Sequence[np.ndarray]) -> np.ndarray:
        """The model on fusion groups: ``members[k]`` is the batch of member ``k``'s inputs
        (the members present; one batch is a group of one); each member runs up to the
        fusion layer, which fuses them, and the rest runs on the fused batch."""
        f = _need_fusion(self.fusion_index, self.name)
        fused = self.layers[f].fuse([self.forward(x, 0, f) for x in members])
        return self.forward(fused, f + 1)


def fusion_index(layers: Sequence[Any]) -> int | None:
    """The index of the one fusion layer in ``layers`` (None when there is none).

    >>> fusion_index([FloatDense(np.eye(2), np.zeros(2)), FloatFusion(2, 2)])
    1
    """
    found = [i for i, layer in enumerate(layers) if layer.kind is LayerKind.FUSION]
    if len(found) > 1:
        raise ParameterRangeError(f"layers {found} are fusion layers; a model fuses once")
    return found[0] if found else None


def _need_fusion(index: int | None, name: str) -> int:
    if index is None:
        raise ParameterRangeError(f"model {name!r} has no fusion layer; run it on single inputs")
    return index


# --------------------------------------------------------------- quantized model --


@dataclass(frozen=True, eq=False)
class QuantizedModel:
    """The integer model DCIA deploys, layer ``i`` being ``layers[i]`` on the wire.

    ``scales[i]`` is the real value of one unit of the int8 tensor that enters layer
    ``i``; ``scales[-1]`` that of the output. ``float_model`` holds the float layers that
    ``layers`` were quantized from, one for one, for stages that run in float on purpose.
    """

    name: str
    model_id: int
    version: int
    layers: list[Layer]
    scales: list[float]
    float_model: FloatModel
    calibration: str = ""

    def __post_init__(self) -> None:
        for what, value in (("model id", self.model_id), ("model version", self.version)):
            if not 0 <= value <= 0xFFFF:
                raise ParameterRangeError(
                    f"{what} {value} is outside 0..65535 (16 bits on the wire)"
                )
        for i, scale in enumerate(self.scales):
            if not isinstance(scale, int | float) or not math.isfinite(scale) or scale <= 0:
                raise ParameterRangeError(
                    f"scale {i} (of the tensor {'entering layer ' + str(i) if i < len(self.layers) else 'out of the model'}) "
                    f"is {scale!r}; it must be a finite number greater than 0"
                )
        n = len(self.layers)
        if len(self.scales) != n + 1 or len(self.float_model.layers) != n:
            raise ParameterRangeError(
                f"quantized model with {n} layers has {len(self.scales)} scales and "
                f"{len(self.float_model.layers)} float layers (want {n + 1} and {n})"
            )
        check_chain(self.layers)

    @property
    def input_scale(self) -> float:
        return self.scales[0]

    @property
    def output_scale(self) -> float:
        return self.scales[-1]

    @property
    def output(self) -> str:
        return self.float_model.output

    @property
    def takes_ids(self) -> bool:
        """True when the input is an embedding id rather than a feature vector."""
        return self.layers[0].kind is LayerKind.EMBEDDING

    @property
    def takes_tokens(self) -> bool:
        """True when the input is a bag of token ids (an embedding-bag comes first)."""
        return self.layers[0].kind is LayerKind.EMBEDDING_BAG

    def switch_problems(self, switch: Capability = DCIA_PROGRAM) -> dict[int, str]:
        """Layers ``switch`` cannot run, with the reason (they run on the edge or the cloud)."""
        return {i: p for i, layer in enumerate(self.layers) if (p := switch.can_run(layer))}

    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        """Float features (batch, n) -> int8 tensors; ids (batch,) -> their two id elements.

        Features are divided by ``input_scale``, rounded half to even and saturated.
        """
        x = np.asarray(x)
        if self.takes_tokens:
            n = self.layers[0].n_in
            if x.ndim != 2 or x.shape[1] != n:
                raise ParameterRangeError(
                    f"model {self.name!r} takes bags of {n} token ids, shape (batch, {n}); got {x.shape}")
            if x.size and (x.min() < 0 or x.max() > arithmetic.BAG_MAX_ID):
                raise ParameterRangeError(f"token ids must be in 0..{arithmetic.BAG_MAX_ID}")
            return np.asarray(x, dtype=np.int64).astype(np.uint8).view(np.int8)
        if self.takes_ids:
            ids = x.reshape(len(x), -1)[:, 0]
            return np.array([arithmetic.id_elements(int(i)) for i in ids], dtype=np.int8).reshape(
                -1, 2
            )
        if x.ndim != 2 or x.shape[1] != self.layers[0].n_in:
            raise ParameterRangeError(
                f"model {self.name!r} takes inputs of shape (batch, {self.layers[0].n_in}), "
                f"got {x.shape}"
            )
        q = np.round(x.astype(np.float64) / self.input_scale)
        return np.clip(q, arithmetic.INT8_MIN, arithmetic.INT8_MAX).astype(np.int8)

    def dequantize(self, q: np.ndarray, index: int) -> np.ndarray:
        """The real values of the int8 tensor ``q`` that enters layer ``index``."""
        return np.asarray(q, dtype=np.float64) * self.scales[index]

    def forward_int(self, x: np.ndarray, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Run layers [start, stop) with the integer reference.

        ``x`` is one int8 tensor (1-D, computed with the scalar reference) or a batch
        (2-D, with each layer's ``forward_batch``); both agree bit for bit.
        """
        y = np.asarray(x, dtype=np.int64)
        for layer in self.layers[start:stop]:
            if y.ndim == 1:
                y = np.array(layer.forward([int(v) for v in y]), dtype=np.int64)
            else:
                y = layer.forward_batch(y).astype(np.int64)
        return y.astype(np.int8)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class indices of float inputs, every layer in integer arithmetic."""
        return self.forward_int(self.quantize_input(x)).argmax(axis=1)

    @property
    def fusion_index(self) -> int | None:
        return fusion_index(self.layers)

    def forward_int_group(self, members: Sequence[np.ndarray]) -> np.ndarray:
        """The integer reference on fusion groups: ``members[k]`` is the int8 batch (2-D)
        of member ``k``'s inputs, the members present; what edge, switch and cloud compute
        together for those groups (``FloatModel.forward_group`` in integers)."""
        f = _need_fusion(self.fusion_index, self.name)
        fused = np.maximum.reduce([self.forward_int(np.asarray(x), 0, f + 1) for x in members])
        return self.forward_int(fused, f + 1)

    # ----------------------------------------------------------- file format --

    def to_dict(self) -> dict[str, Any]:
        """The model as plain JSON values (the content the hash covers), a copy the caller owns."""
        return {
            "name": self.name,
            "model_id": self.model_id,
            "version": self.version,
            "output": self.output,
            "calibration": self.calibration,
            "scales": [float(s) for s in self.scales],
            "layers": [copy.deepcopy(_layer_to_dict(layer)) for layer in self.layers],
            "float_layers": [_float_layer_to_dict(layer) for layer in self.float_model.layers],
        }

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> QuantizedModel:
        return cls(
            name=body["name"],
            model_id=body["model_id"],
            version=body["version"],
            layers=[_layer_from_dict(d) for d in body["layers"]],
            scales=[float(s) for s in body["scales"]],
            float_model=FloatModel(
                body["name"],
                [_float_layer_from_dict(d) for d in body["float_layers"]],
                body["output"],
            ),
            calibration=body["calibration"],
        )

    @property
    def content_hash(self) -> str:
        """SHA-256 (hex) of the model's canonical JSON: names this exact model."""
        return _digest(self.to_dict())

    def save(self, path: str | Path) -> Path:
        """Write the model and its content hash as JSON; returns the path."""
        body = self.to_dict()
        doc = {
            "format": FILE_FORMAT,
            "format_version": FILE_FORMAT_VERSION,
            "sha256": _digest(body),
            "model": body,
        }
        path = Path(path)
        path.write_text(json.dumps(doc, sort_keys=True, indent=1, allow_nan=False) + "\n")
        log.info("saved quantized model %s (sha256 %s) to %s", self.name, doc["sha256"][:12], path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> QuantizedModel:
        """Read a model written by :meth:`save`, checking its content hash."""
        path = Path(path)
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            raise ModelFileError(f"quantized model file {path} does not exist") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ModelFileError(
                f"quantized model file {path} is not readable JSON ({e}); quantize the model again"
            ) from None
        except RecursionError:
            raise ModelFileError(
                f"quantized model file {path} is not readable JSON (nested too deeply); "
                "quantize the model again"
            ) from None
        if not isinstance(doc, dict) or doc.get("format") != FILE_FORMAT:
            raise ModelFileError(
                f"{path} is not a DCIA quantized model file (no {FILE_FORMAT!r} format)"
            )
        if doc.get("format_version") != FILE_FORMAT_VERSION:
            raise ModelFileError(
                f"{path} has format version {doc.get('format_version')}, "
                f"this toolkit reads version {FILE_FORMAT_VERSION}"
            )
        body, stored = doc.get("model"), doc.get("sha256")
        bad = _first_non_finite(body)
        if bad is not None:
            raise ModelFileError(
                f"quantized model file {path}: {_json_place(body, bad[0])} is {bad[1]}; a saved model "
                "holds only finite numbers: quantize the model again"
            )
        computed = _digest(body)
        if stored != computed:
            raise ModelIntegrityError(
                f"quantized model file {path} does not match its content hash "
                f"(stored {str(stored)[:12]}, computed {computed[:12]}): it was changed after it "
                "was saved; do not deploy it, quantize the model again"
            )
        try:
            return cls.from_dict(body)
        except (KeyError, TypeError, ValueError, AttributeError, DciaError) as e:
            raise ModelFileError(f"quantized model file {path} has an invalid model: {e}") from None


def _first_non_finite(value: Any, place: tuple = ()) -> tuple[tuple, str] | None:
    """Where in a parsed JSON document the first NaN or infinity is, and which it is."""
    if isinstance(value, float) and not math.isfinite(value):
        return place, "NaN" if math.isnan(value) else "inf"
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = _first_non_finite(item, (*place, key))
        if found is not None:
            return found
    return None


def _json_place(body: Any, place: tuple) -> str:
    """``float layer 1 (dense) weights[2][0]``: a place in a model body, as a person reads it."""
    head, rest = "model", list(place)
    if len(rest) >= 2 and rest[0] in ("layers", "float_layers") and isinstance(rest[1], int):
        layer = body[rest[0]][rest[1]]
        kind = layer.get("kind", "?") if isinstance(layer, dict) else "?"
        head = f"{'float layer' if rest[0] == 'float_layers' else 'layer'} {rest[1]} ({kind})"
        rest = rest[2:]
    text = "".join(f"[{k}]" if isinstance(k, int) else f" {k}" for k in rest)
    return head + text if head != "model" else text.strip() or head


def layer_digest(layer: Layer) -> str:
    """SHA-256 (hex) of one quantized layer's parameters, as the model file holds them:
    what a signed partition manifest names each layer by (controller.manifest)."""
    return _digest(_layer_to_dict(layer))


def _digest(body: Any) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _layer_to_dict(layer: Layer) -> dict[str, Any]:
    if isinstance(layer, (ConvLayer, DenseLayer)):
        d = {
            "kind": str(layer.kind),
            "weights": layer.weights,
            "bias": layer.bias,
            "mult": layer.mult,
            "shift": layer.shift,
            "act": int(layer.act),
        }
        if isinstance(layer, ConvLayer):  # a dense row per filter, and how it slides
            d.update(in_shape=list(layer.in_shape), kernel=layer.kernel, stride=layer.stride,
                     pad=layer.pad)
        return d
    if isinstance(layer, ElementwiseLayer):
        return {
            "kind": str(layer.kind),
            "scales": layer.scales,
            "offsets": layer.offsets,
            "mult": layer.mult,
            "shift": layer.shift,
            "act": int(layer.act),
        }
    if isinstance(layer, FusionLayer):
        return {
            "kind": str(layer.kind),
            "n": layer.n,
            "members": layer.members,
            "timeout_us": layer.timeout_us,
        }
    if isinstance(layer, EmbeddingBagLayer):
        return {
            "kind": str(layer.kind),
            "dim": layer.dim,
            "n_in": layer.n_in,
            "mode": int(layer.mode),
            "table": {str(k): v for k, v in sorted(layer.table.items())},
        }
    return {
        "kind": str(layer.kind),
        "dim": layer.dim,
        "table": {str(k): v for k, v in sorted(layer.table.items())},
    }


def _layer_from_dict(d: dict[str, Any]) -> Layer:
    kind = LayerKind(d["kind"])
    if kind is LayerKind.CONV:
        return ConvLayer(d["weights"], d["bias"], d["mult"], d["shift"], Activation(d["act"]),
                         tuple(d["in_shape"]), d["kernel"], d["stride"], d["pad"])
    if kind is LayerKind.DENSE:
        return DenseLayer(d["weights"], d["bias"], d["mult"], d["shift"], Activation(d["act"]))
    if kind is LayerKind.ELEMENTWISE:
        return ElementwiseLayer(
            d["scales"], d["offsets"], d["mult"], d["shift"], Activation(d["act"])
        )
    if kind is LayerKind.FUSION:
        return FusionLayer(d["n"], d["members"], d["timeout_us"])
    if kind is LayerKind.EMBEDDING_BAG:
        return EmbeddingBagLayer({int(k): v for k, v in d["table"].items()}, d["dim"], d["n_in"],
                                 BagMode(d["mode"]))
    return EmbeddingLayer({int(k): v for k, v in d["table"].items()}, d["dim"])


def _float_layer_to_dict(layer: FloatLayer) -> dict[str, Any]:
    d: dict[str, Any] = {"kind": str(layer.kind)}
    if isinstance(layer, FloatConv):
        d.update(weights=layer.weights.tolist(), bias=layer.bias.tolist(),
                 in_shape=list(layer.in_shape), stride=layer.stride, pad=layer.pad,
                 relu=layer.relu)
    elif isinstance(layer, FloatDense):
        d.update(weights=layer.weights.tolist(), bias=layer.bias.tolist(), relu=layer.relu)
    elif isinstance(layer, FloatElementwise):
        d.update(scale=layer.scale.tolist(), offset=layer.offset.tolist(), relu=layer.relu)
    elif isinstance(layer, FloatFusion):
        d.update(n=layer.n, members=layer.members)
    elif isinstance(layer, FloatEmbeddingBag):
        d.update(table=layer.table.tolist(), n_in=layer.n_in, mode=int(layer.mode))
    else:
        d.update(table=layer.table.tolist())
    return d


def _float_layer_from_dict(d: dict[str, Any]) -> FloatLayer:
    kind = LayerKind(d["kind"])
    if kind is LayerKind.CONV:
        return FloatConv(np.array(d["weights"], float), np.array(d["bias"], float),
                         tuple(d["in_shape"]), d["stride"], d["pad"], d["relu"])
    if kind is LayerKind.DENSE:
        return FloatDense(np.array(d["weights"], float), np.array(d["bias"], float), d["relu"])
    if kind is LayerKind.ELEMENTWISE:
        return FloatElementwise(
            np.array(d["scale"], float), np.array(d["offset"], float), d["relu"]
        )
    if kind is LayerKind.FUSION:
        return FloatFusion(d["n"], d["members"])
    if kind is LayerKind.EMBEDDING_BAG:
        return FloatEmbeddingBag(np.array(d["table"], float), d["n_in"], BagMode(d["mode"]))
    return FloatEmbedding(np.array(d["table"], float))
