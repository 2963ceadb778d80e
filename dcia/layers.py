"""Quantized layers: the integer parameters of each in-network operation.

A quantized model is a list of these records. Every node that runs a layer, a switch
through its table entries or the edge and cloud in Python, computes ``forward`` of the
integer reference (dcia.arithmetic), so all of them agree bit for bit.

    >>> layer = DenseLayer(weights=[[1, 2], [3, 4]], bias=[0, 1], mult=[1, 1], shift=[0, 0])
    >>> layer.forward([5, 6]), layer.n_in, layer.n_out
    ([17, 40], 2, 2)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

import numpy as np

from dcia import arithmetic
from dcia.arithmetic import Activation, BagMode
from dcia.errors import ParameterRangeError
from dcia.wire import MAX_FUSION_MEMBERS


class LayerKind(StrEnum):
    """The operations of a layer, float or quantized, and of a layer list's entries."""

    DENSE = "dense"
    ELEMENTWISE = "elementwise"
    EMBEDDING = "embedding"
    EMBEDDING_BAG = "embedding_bag"
    FUSION = "fusion"
    CONV = "conv"
    """A 2-D convolution: hosts only (no switch program computes it)."""


class LayerShape(Protocol):
    """What planning and ``Capability.can_run`` need of a layer; every layer record has it."""

    @property
    def kind(self) -> LayerKind: ...

    @property
    def n_in(self) -> int: ...

    @property
    def n_out(self) -> int: ...

    @property
    def macs(self) -> int: ...


def mac_count(kind: LayerKind | str, n_in: int, n_out: int) -> int:
    """Multiply-accumulates of one layer: the one rule every layer record and the planner use.

    >>> mac_count("dense", 16, 10), mac_count("elementwise", 16, 16), mac_count("embedding", 2, 8)
    (160, 16, 0)
    >>> mac_count("fusion", 16, 16)   # comparisons, no multiply-accumulates
    0
    >>> mac_count("embedding_bag", 16, 8)   # an addition per token and element
    128
    """
    kind = LayerKind(kind)
    if kind in (LayerKind.DENSE, LayerKind.EMBEDDING_BAG):
        return n_in * n_out
    return n_in if kind is LayerKind.ELEMENTWISE else 0


def check_chain(layers: Sequence[LayerShape]) -> None:
    """Raise ParameterRangeError unless each layer takes as many inputs as the one before gives.

    >>> check_chain([DenseLayer([[1, 2]], [0], [1], [0]), DenseLayer([[1, 2]], [0], [1], [0])])
    Traceback (most recent call last):
    ...
    dcia.errors.ParameterRangeError: layer 0 has 1 outputs but layer 1 takes 2 inputs
    """
    for i, (a, b) in enumerate(zip(layers, layers[1:]), start=1):
        if a.n_out != b.n_in:
            raise ParameterRangeError(
                f"layer {i - 1} has {a.n_out} outputs but layer {i} takes {b.n_in} inputs"
            )


@dataclass(frozen=True)
class DenseLayer:
    """``y = requantize(W x + b)`` with per-output requantization."""

    weights: list[list[int]]
    bias: list[int]
    mult: list[int]
    shift: list[int]
    act: Activation = Activation.IDENTITY
    kind: LayerKind = field(default=LayerKind.DENSE, init=False)

    def __post_init__(self) -> None:
        if not self.weights or not self.weights[0]:
            raise ParameterRangeError("a dense layer needs at least one input and one output")
        widths = {len(row) for row in self.weights}
        if len(widths) != 1:
            raise ParameterRangeError(f"dense weight rows have different lengths {sorted(widths)}")
        for j, row in enumerate(self.weights):
            arithmetic.check_int8(row, f"weights[{j}]")
        for m, s in zip(self.mult, self.shift):
            arithmetic.check_requant(m, s)
        if not len(self.bias) == len(self.mult) == len(self.shift) == self.n_out:
            raise ParameterRangeError(
                f"dense layer with {self.n_out} outputs has {len(self.bias)} biases, "
                f"{len(self.mult)} multipliers and {len(self.shift)} shifts"
            )

    @property
    def n_in(self) -> int:
        return len(self.weights[0])

    @property
    def n_out(self) -> int:
        return len(self.weights)

    @property
    def macs(self) -> int:
        return mac_count(self.kind, self.n_in, self.n_out)

    def forward(self, x: list[int]) -> list[int]:
        return arithmetic.dense(x, self.weights, self.bias, self.mult, self.shift, self.act)

    def forward_batch(self, x: np.ndarray) -> np.ndarray:
        return arithmetic.dense_batch(
            x, np.array(self.weights), np.array(self.bias), np.array(self.mult),
            np.array(self.shift), self.act,
        )


@dataclass(frozen=True)
class ElementwiseLayer:
    """``y_i = requantize(scale_i * x_i + offset_i)``: per-feature scaling and shift."""

    scales: list[int]
    offsets: list[int]
    mult: int
    shift: int
    act: Activation = Activation.IDENTITY
    kind: LayerKind = field(default=LayerKind.ELEMENTWISE, init=False)

    def __post_init__(self) -> None:
        if len(self.scales) != len(self.offsets) or not self.scales:
            raise ParameterRangeError(
                f"element-wise layer has {len(self.scales)} scales and {len(self.offsets)} offsets"
            )
        arithmetic.check_int8(self.scales, "scales")
        for i, b in enumerate(self.offsets):
            if not arithmetic.INT16_MIN <= b <= arithmetic.INT16_MAX:
                raise ParameterRangeError(f"offsets[{i}] = {b} is not an int16")
        arithmetic.check_requant(self.mult, self.shift)

    @property
    def n_in(self) -> int:
        return len(self.scales)

    n_out = n_in

    @property
    def macs(self) -> int:
        return mac_count(self.kind, self.n_in, self.n_out)

    def forward(self, x: list[int]) -> list[int]:
        return arithmetic.elementwise(x, self.scales, self.offsets, self.mult, self.shift, self.act)

    def forward_batch(self, x: np.ndarray) -> np.ndarray:
        return np.array([self.forward(list(map(int, row))) for row in x], dtype=np.int8)


@dataclass(frozen=True)
class EmbeddingLayer:
    """Id (two elements, big-endian uint16) -> int8 vector of ``dim`` elements."""

    table: dict[int, list[int]]
    dim: int
    kind: LayerKind = field(default=LayerKind.EMBEDDING, init=False)

    def __post_init__(self) -> None:
        for ident, vec in self.table.items():
            if not 0 <= ident <= 0xFFFF:
                raise ParameterRangeError(f"embedding id {ident} is outside 0..65535")
            if len(vec) != self.dim:
                raise ParameterRangeError(
                    f"embedding vector of id {ident} has {len(vec)} elements, expected {self.dim}"
                )
            arithmetic.check_int8(vec, f"embedding[{ident}]")

    n_in = 2

    @property
    def n_out(self) -> int:
        return self.dim

    @property
    def macs(self) -> int:
        return mac_count(self.kind, self.n_in, self.n_out)

    def forward(self, x: list[int]) -> list[int]:
        return arithmetic.embedding(x, self.table)

    def forward_batch(self, x: np.ndarray) -> np.ndarray:
        return np.array([self.forward(list(map(int, row))) for row in x], dtype=np.int8)


@dataclass(frozen=True)
class EmbeddingBagLayer:
    """``n_in`` token ids (one element each, 0 padding) -> the pooled int8 vector of
    ``dim`` elements: the saturated sum or the rounded mean of their vectors
    (``arithmetic.embedding_bag``). ``table`` maps token ids 1..255 to vectors.

    >>> bag = EmbeddingBagLayer({1: [10, -3], 2: [5, 4]}, dim=2, n_in=4, mode=BagMode.MEAN)
    >>> bag.forward([1, 2, 2, 0]), bag.n_in, bag.n_out
    ([7, 2], 4, 2)
    """

    table: dict[int, list[int]]
    dim: int
    n_in: int
    mode: BagMode = BagMode.MEAN
    kind: LayerKind = field(default=LayerKind.EMBEDDING_BAG, init=False)

    def __post_init__(self) -> None:
        if not 1 <= self.n_in:
            raise ParameterRangeError(f"an embedding-bag takes at least one token, got {self.n_in}")
        if not 1 <= self.dim:
            raise ParameterRangeError(f"an embedding-bag vector needs at least one element, got {self.dim}")
        object.__setattr__(self, "mode", BagMode(self.mode))
        for ident, vec in self.table.items():
            if not 1 <= ident <= arithmetic.BAG_MAX_ID:
                raise ParameterRangeError(
                    f"embedding-bag token id {ident} is outside 1..{arithmetic.BAG_MAX_ID} "
                    f"({arithmetic.BAG_PAD} is padding)")
            if len(vec) != self.dim:
                raise ParameterRangeError(
                    f"embedding-bag vector of token {ident} has {len(vec)} elements, expected {self.dim}")
            arithmetic.check_int8(vec, f"embedding_bag[{ident}]")

    @property
    def n_out(self) -> int:
        return self.dim

    @property
    def macs(self) -> int:
        return mac_count(self.kind, self.n_in, self.n_out)

    def forward(self, x: list[int]) -> list[int]:
        if len(x) != self.n_in:
            raise ParameterRangeError(f"an embedding-bag of {self.n_in} tokens got {len(x)} elements")
        return arithmetic.embedding_bag(x, self.table, self.dim, self.mode)

    def forward_batch(self, x: np.ndarray) -> np.ndarray:
        return np.array([self.forward(list(map(int, row))) for row in x], dtype=np.int8).reshape(
            len(x), self.dim)


@dataclass(frozen=True)
class FusionLayer:
    """Fuse the tensors of ``members`` inputs (one fusion group) into one: the element-wise
    maximum (``arithmetic.fuse``), ``n`` elements in and out.

    A switch waits for a group's members in registers for up to ``timeout_us``
    microseconds and then lets the group go on fused over the members present
    (docs/wire-format.md, fusion). ``forward`` is the fusion of a group of one (its
    tensor unchanged); ``fuse`` takes the group.

    >>> FusionLayer(n=3, members=2).fuse([[1, -5, 7], [3, -9, 0]])
    [3, -5, 7]
    """

    n: int
    members: int
    timeout_us: int = 100_000
    kind: LayerKind = field(default=LayerKind.FUSION, init=False)

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ParameterRangeError(f"a fusion layer needs at least one element, got {self.n}")
        if not 2 <= self.members <= MAX_FUSION_MEMBERS:
            raise ParameterRangeError(
                f"a fusion group has 2..{MAX_FUSION_MEMBERS} members, got {self.members}")
        if not 0 <= self.timeout_us < 1 << 32:
            raise ParameterRangeError(
                f"fusion timeout {self.timeout_us} us is outside 0..{(1 << 32) - 1}")

    @property
    def n_in(self) -> int:
        return self.n

    n_out = n_in

    @property
    def macs(self) -> int:
        return mac_count(self.kind, self.n_in, self.n_out)

    def fuse(self, members: Sequence[Sequence[int]]) -> list[int]:
        if len(members) > self.members:
            raise ParameterRangeError(
                f"a fusion group of this layer has {self.members} members, got {len(members)}")
        for m, x in enumerate(members):
            if len(x) != self.n:
                raise ParameterRangeError(
                    f"fusion member {m} has {len(x)} elements, the layer takes {self.n}")
        return arithmetic.fuse(members)

    def forward(self, x: list[int]) -> list[int]:
        return self.fuse([x])

    def forward_batch(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.int8).copy()


@dataclass(frozen=True)
class ConvLayer:
    """A 2-D convolution over an input of ``in_shape`` = (channels, height, width),
    flattened channel by channel: ``arithmetic.conv2d``. ``weights`` holds one row of
    ``channels * kernel**2`` int8 per output channel, ``bias``, ``mult`` and ``shift`` one
    value per output channel: at every position, a dense layer on the patch.

    Its tensors (``n_in``, ``n_out``) are wider than a switch computes and no switch program
    has the operation: edge and cloud run it (``Capability.can_run`` says why a switch
    does not).

    >>> conv = ConvLayer([[1, 1, 1, 1]], [0], [1], [0], in_shape=(1, 2, 2), kernel=2)
    >>> conv.forward([1, 2, 3, 4]), conv.n_in, conv.n_out, conv.macs, conv.out_shape
    ([10], 4, 1, 4, (1, 1, 1))
    """

    weights: list[list[int]]
    bias: list[int]
    mult: list[int]
    shift: list[int]
    act: Activation = Activation.IDENTITY
    in_shape: tuple[int, int, int] = (1, 1, 1)
    kernel: int = 1
    stride: int = 1
    pad: int = 0
    kind: LayerKind = field(default=LayerKind.CONV, init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "in_shape", tuple(int(v) for v in self.in_shape))
        if len(self.in_shape) != 3:
            raise ParameterRangeError(f"a convolution's input is (channels, height, width), "
                                      f"not {self.in_shape}")
        arithmetic.conv_output_shape(self.in_shape, len(self.weights), self.kernel, self.stride,
                                     self.pad)
        patch = self.in_shape[0] * self.kernel ** 2
        for j, row in enumerate(self.weights):
            if len(row) != patch:
                raise ParameterRangeError(f"convolution filter {j} has {len(row)} weights, "
                                          f"expected {patch} (channels x kernel x kernel)")
            arithmetic.check_int8(row, f"weights[{j}]")
        for m, s in zip(self.mult, self.shift):
            arithmetic.check_requant(m, s)
        if not len(self.bias) == len(self.mult) == len(self.shift) == len(self.weights):
            raise ParameterRangeError(
                f"convolution with {len(self.weights)} output channels has {len(self.bias)} "
                f"biases, {len(self.mult)} multipliers and {len(self.shift)} shifts")

    @property
    def out_shape(self) -> tuple[int, int, int]:
        return arithmetic.conv_output_shape(self.in_shape, len(self.weights), self.kernel,
                                            self.stride, self.pad)

    @property
    def n_in(self) -> int:
        return int(np.prod(self.in_shape))

    @property
    def n_out(self) -> int:
        return int(np.prod(self.out_shape))

    @property
    def macs(self) -> int:
        """Multiply-accumulates: every output element's patch (padding counted)."""
        return self.n_out * self.in_shape[0] * self.kernel ** 2

    def forward(self, x: list[int]) -> list[int]:
        return arithmetic.conv2d(x, self.in_shape, self.weights, self.bias, self.mult,
                                 self.shift, self.act, self.kernel, self.stride, self.pad)

    def forward_batch(self, x: np.ndarray) -> np.ndarray:
        return arithmetic.conv2d_batch(
            x, self.in_shape, np.array(self.weights), np.array(self.bias), np.array(self.mult),
            np.array(self.shift), self.act, self.kernel, self.stride, self.pad)


Layer = DenseLayer | ElementwiseLayer | EmbeddingLayer | EmbeddingBagLayer | FusionLayer | ConvLayer

