"""The integer reference: the arithmetic of every in-network operation, defined once.

The P4 program (p4src/dcia.p4), the embedded switch, real BMv2, the edge agent and the
cloud server must all agree with these functions bit for bit. docs/arithmetic.md states
the same rules in prose.

    >>> requantize(1000, mult=3, shift=4, act=Activation.IDENTITY)   # 3000 / 16 = 187.5
    127
    >>> dense([1, -2], weights=[[3, 4]], bias=[5], mult=[1], shift=[0], act=Activation.RELU)
    [0]

Rules, for int8 activations and weights:

* accumulation is int32 two's complement and wraps (as ``bit<32>`` does in P4);
* requantization multiplies by an unsigned 16-bit ``mult`` in 64-bit arithmetic, adds
  ``2**(shift-1)`` (nothing when ``shift`` is 0) and shifts right arithmetically by
  ``shift``: round half up, ties go toward +infinity;
* ReLU clamps negatives to 0, then the result saturates to [-128, 127].

The float helpers at the end turn real weights and scales into these integer parameters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import IntEnum

import numpy as np

from dcia.errors import ParameterRangeError

INT8_MIN, INT8_MAX = -128, 127
INT16_MIN, INT16_MAX = -(1 << 15), (1 << 15) - 1
MULT_MAX = (1 << 16) - 1
SHIFT_MAX = 47
"""Largest requantization shift: keeps ``acc * mult + rounding`` inside 64 bits."""


class Activation(IntEnum):
    """Activation applied after requantization; the value is the P4 ``act`` code."""

    IDENTITY = 0
    RELU = 1


def wrap(value: int, bits: int) -> int:
    """Two's-complement wrap of ``value`` to a signed ``bits``-bit integer.

    >>> wrap(2**31, 32)
    -2147483648
    """
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def saturate_int8(value: int) -> int:
    """Clamp to [-128, 127]."""
    return INT8_MIN if value < INT8_MIN else INT8_MAX if value > INT8_MAX else value


def check_requant(mult: int, shift: int) -> None:
    """Raise unless ``mult`` and ``shift`` are in the range the data plane takes."""
    if not 0 <= mult <= MULT_MAX:
        raise ParameterRangeError(f"requantization multiplier {mult} is outside 0..{MULT_MAX}")
    if not 0 <= shift <= SHIFT_MAX:
        raise ParameterRangeError(f"requantization shift {shift} is outside 0..{SHIFT_MAX}")


def check_int8(values: Sequence[int], what: str) -> None:
    for i, v in enumerate(values):
        if not INT8_MIN <= v <= INT8_MAX:
            raise ParameterRangeError(f"{what}[{i}] = {v} is not an int8")


def requantize(acc: int, mult: int, shift: int, act: Activation) -> int:
    """int32 accumulator -> int8: ``sat8(act((acc * mult + 2**(shift-1)) >> shift))``."""
    check_requant(mult, shift)
    q = (wrap(acc, 32) * mult + ((1 << shift) >> 1)) >> shift
    if act == Activation.RELU and q < 0:
        q = 0
    return saturate_int8(q)


def dense(
    x: Sequence[int],
    weights: Sequence[Sequence[int]],
    bias: Sequence[int],
    mult: Sequence[int],
    shift: Sequence[int],
    act: Activation,
) -> list[int]:
    """Quantized dense layer: ``y_j = requantize(bias_j + sum_i w_ji * x_i)``.

    ``weights`` is ``n_out`` rows of ``n_in`` int8; ``bias`` int32 (wraps); ``mult`` and
    ``shift`` are per output.
    """
    n_out = len(weights)
    if not (len(bias) == len(mult) == len(shift) == n_out):
        raise ParameterRangeError(
            f"dense layer has {n_out} weight rows but {len(bias)} biases, "
            f"{len(mult)} multipliers and {len(shift)} shifts"
        )
    check_int8(x, "x")
    out = []
    for j, row in enumerate(weights):
        if len(row) != len(x):
            raise ParameterRangeError(f"weight row {j} has {len(row)} inputs, the tensor {len(x)}")
        check_int8(row, f"weights[{j}]")
        acc = bias[j] + sum(w * v for w, v in zip(row, x))
        out.append(requantize(acc, mult[j], shift[j], act))
    return out


def elementwise(
    x: Sequence[int],
    scales: Sequence[int],
    offsets: Sequence[int],
    mult: int,
    shift: int,
    act: Activation,
) -> list[int]:
    """Element-wise transform: ``y_i = requantize(scale_i * x_i + offset_i)``.

    Scales are int8, offsets int16, ``mult``/``shift`` shared by all elements.
    """
    if not len(x) == len(scales) == len(offsets):
        raise ParameterRangeError(
            f"element-wise layer has {len(scales)} scales and {len(offsets)} offsets "
            f"for {len(x)} elements"
        )
    check_int8(x, "x")
    check_int8(scales, "scales")
    for i, b in enumerate(offsets):
        if not INT16_MIN <= b <= INT16_MAX:
            raise ParameterRangeError(f"offsets[{i}] = {b} is not an int16")
    return [requantize(s * v + b, mult, shift, act) for s, v, b in zip(scales, x, offsets)]


def embedding_id(x: Sequence[int]) -> int:
    """The id an embedding layer looks up: two elements, big-endian unsigned bytes."""
    if len(x) != 2:
        raise ParameterRangeError(f"an embedding look-up takes 2 elements (the id), got {len(x)}")
    return ((x[0] & 0xFF) << 8) | (x[1] & 0xFF)


def id_elements(ident: int) -> list[int]:
    """The two int8 elements that carry embedding id ``ident`` (inverse of embedding_id)."""
    if not 0 <= ident <= 0xFFFF:
        raise ParameterRangeError(f"embedding id {ident} is outside 0..65535")
    return [wrap(ident >> 8, 8), wrap(ident & 0xFF, 8)]


def embedding(x: Sequence[int], table: dict[int, Sequence[int]]) -> list[int]:
    """Embedding look-up; a missing id raises KeyError (a switch passes such packets on)."""
    vec = list(table[embedding_id(x)])
    check_int8(vec, "embedding vector")
    return vec


BAG_PAD = 0
"""The padding token id of an embedding-bag: looked up nowhere, not counted in the mean."""
BAG_MAX_ID = 0xFF
"""Token ids are one element each, read as an unsigned byte: 1 .. 255 (0 is padding)."""
BAG_SHIFT = 24
"""The P4 program's mean divides by ``c`` as ``* ceil(2**24 / c) >> 24`` (bag_mean_p4)."""


class BagMode(IntEnum):
    """How an embedding-bag pools its tokens' vectors; the value is the P4 ``mode`` code."""

    SUM = 0
    MEAN = 1


def token_id(element: int) -> int:
    """The token id an int8 element carries: its unsigned byte.

    >>> token_id(-1), token_id(5)
    (255, 5)
    """
    return element & 0xFF


def token_elements(ids: Sequence[int]) -> list[int]:
    """The int8 elements that carry token ids (inverse of token_id).

    >>> token_elements([0, 5, 255])
    [0, 5, -1]
    """
    for i in ids:
        if not 0 <= i <= BAG_MAX_ID:
            raise ParameterRangeError(f"token id {i} is outside 0..{BAG_MAX_ID}")
    return [wrap(i, 8) for i in ids]


def round_half_up_div(total: int, count: int) -> int:
    """``total / count`` rounded to the nearest integer, ties toward +infinity (count > 0).

    >>> round_half_up_div(5, 2), round_half_up_div(-5, 2), round_half_up_div(-7, 3)
    (3, -2, -2)
    """
    return (2 * total + count) // (2 * count)


def bag_mean_p4(total: int, count: int) -> int:
    """The mean as the P4 program computes it, without a division: the sum shifted to be
    non-negative, times ``ceil(2**24 / count)``, rounded, shifted back. Equal to
    ``round_half_up_div`` for every sum of up to 16 int8 values (tests check all of them).
    """
    recip = -(-(1 << BAG_SHIFT) // count)
    return (((total + 128 * count) * recip + (1 << (BAG_SHIFT - 1))) >> BAG_SHIFT) - 128


def embedding_bag(
    x: Sequence[int], table: dict[int, Sequence[int]], dim: int, mode: BagMode
) -> list[int]:
    """Embedding-bag: look up every token of ``x`` (one element each, ``token_id``; 0 is
    padding) in ``table`` and pool the vectors of the tokens that are not padding:

    * ``SUM``: ``y_j = sat8(sum_t table[t]_j)``;
    * ``MEAN``: ``y_j = round_half_up(sum_t table[t]_j / c)``, ``c`` the tokens counted;
    * only padding: every element 0.

    Duplicates count once per occurrence. A token without a vector raises KeyError: a
    switch passes such a packet on uncomputed (as with partial state).

    >>> t = {1: [10, -3], 2: [5, 4]}
    >>> embedding_bag([1, 2, 0, 2], t, 2, BagMode.MEAN), embedding_bag([1, 2, 2], t, 2, BagMode.SUM)
    ([7, 2], [20, 5])
    """
    check_int8(x, "x")
    vectors = [table[token_id(v)] for v in x if token_id(v) != BAG_PAD]
    for vec in vectors:
        if len(vec) != dim:
            raise ParameterRangeError(f"an embedding-bag vector has {len(vec)} elements, not {dim}")
    if not vectors:
        return [0] * dim
    sums = [sum(column) for column in zip(*vectors)]
    if mode == BagMode.SUM:
        return [saturate_int8(s) for s in sums]
    return [saturate_int8(round_half_up_div(s, len(vectors))) for s in sums]


def fuse(members: Sequence[Sequence[int]]) -> list[int]:
    """Fusion of the members of one group: the element-wise maximum of their int8 tensors.

    Exact (no rounding, no saturation), independent of the order the members arrive in,
    and associative: fusing partial fusions gives the fusion of all their members. A
    partial group (timed out) is fused over the members present; a group of one is that
    member's tensor.

    >>> fuse([[1, -5, 7], [3, -9, -128]])
    [3, -5, 7]
    """
    if not members:
        raise ParameterRangeError("a fusion needs at least one member")
    n = len(members[0])
    for m, x in enumerate(members):
        if len(x) != n:
            raise ParameterRangeError(f"fusion member {m} has {len(x)} elements, member 0 has {n}")
        check_int8(x, f"member {m}")
    return [max(column) for column in zip(*members)] if n else []


# ---------------------------------------------------------------- batched (numpy) --


def dense_batch(
    x: np.ndarray,
    weights: np.ndarray,
    bias: np.ndarray,
    mult: np.ndarray,
    shift: np.ndarray,
    act: Activation,
) -> np.ndarray:
    """:func:`dense` over a batch ``x`` of shape (batch, n_in); exact int64 arithmetic.

    For the edge and the cloud, which run many requests; tests check it against
    :func:`dense` on random and extreme inputs.
    """
    for m, s in zip(np.ravel(mult), np.ravel(shift)):
        check_requant(int(m), int(s))
    acc = x.astype(np.int64) @ weights.astype(np.int64).T + bias.astype(np.int64)
    acc = ((acc + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)  # int32 wrap
    shift64 = shift.astype(np.int64)
    q = (acc * mult.astype(np.int64) + ((np.int64(1) << shift64) >> 1)) >> shift64
    if act == Activation.RELU:
        q = np.maximum(q, 0)
    return np.clip(q, INT8_MIN, INT8_MAX).astype(np.int8)


# ------------------------------------------------------------------ convolution --


def conv_output_shape(in_shape: Sequence[int], c_out: int, kernel: int, stride: int,
                      pad: int) -> tuple[int, int, int]:
    """``(c_out, out_h, out_w)`` of a 2-D convolution over an input of ``in_shape`` =
    ``(channels, height, width)``; ParameterRangeError when nothing fits.

    >>> conv_output_shape((1, 8, 8), 8, kernel=3, stride=1, pad=1), conv_output_shape((8, 8, 8), 16, 3, 2, 1)
    ((8, 8, 8), (16, 4, 4))
    """
    c, h, w = in_shape
    if min(c, h, w, c_out, kernel, stride) < 1 or pad < 0 or pad >= kernel:
        raise ParameterRangeError(
            f"a convolution needs channels, sizes, kernel and stride of at least 1 and "
            f"0 <= pad < kernel; got input {tuple(in_shape)}, {c_out} outputs, kernel {kernel}, "
            f"stride {stride}, pad {pad}")
    out_h, out_w = (h + 2 * pad - kernel) // stride + 1, (w + 2 * pad - kernel) // stride + 1
    if out_h < 1 or out_w < 1:
        raise ParameterRangeError(f"a {kernel}x{kernel} kernel does not fit an input of {h}x{w} "
                                  f"padded by {pad}")
    return c_out, out_h, out_w


def conv_patch(x: Sequence[int], in_shape: Sequence[int], kernel: int, oy: int, ox: int,
               stride: int, pad: int) -> list[int]:
    """The input elements under the kernel at output position ``(oy, ox)``, in
    ``(channel, ky, kx)`` order, 0 where the kernel covers the padding. ``x`` is the input
    flattened channel by channel, row by row (``(c, h, w)``, C order).

    >>> conv_patch(list(range(1, 5)), (1, 2, 2), kernel=3, oy=0, ox=0, stride=1, pad=1)
    [0, 0, 0, 0, 1, 2, 0, 3, 4]
    """
    c, h, w = in_shape
    patch = []
    for ci in range(c):
        for ky in range(kernel):
            iy = oy * stride + ky - pad
            for kx in range(kernel):
                ix = ox * stride + kx - pad
                patch.append(x[(ci * h + iy) * w + ix] if 0 <= iy < h and 0 <= ix < w else 0)
    return patch


def conv2d(
    x: Sequence[int],
    in_shape: Sequence[int],
    weights: Sequence[Sequence[int]],
    bias: Sequence[int],
    mult: Sequence[int],
    shift: Sequence[int],
    act: Activation,
    kernel: int,
    stride: int = 1,
    pad: int = 0,
) -> list[int]:
    """Quantized 2-D convolution: at every output position, the dense layer of the
    channels' filters (``weights``: one row of ``c_in * kernel**2`` int8 per output channel,
    in ``(channel, ky, kx)`` order) on the patch under the kernel (``conv_patch``): the
    same accumulation, requantization per output channel and saturation as :func:`dense`.
    The output is flattened channel by channel: ``y[(co * out_h + oy) * out_w + ox]``.

    >>> conv2d([1, 2, 3, 4], (1, 2, 2), [[1, 1, 1, 1]], [0], [1], [0], Activation.IDENTITY, kernel=2)
    [10]
    """
    c, h, w = in_shape
    if len(x) != c * h * w:
        raise ParameterRangeError(f"a convolution over {tuple(in_shape)} takes {c * h * w} "
                                  f"elements, got {len(x)}")
    c_out, out_h, out_w = conv_output_shape(in_shape, len(weights), kernel, stride, pad)
    columns = [dense(conv_patch(x, in_shape, kernel, oy, ox, stride, pad), weights, bias, mult,
                     shift, act)
               for oy in range(out_h) for ox in range(out_w)]
    return [column[co] for co in range(c_out) for column in columns]


def conv_patch_index(in_shape: Sequence[int], kernel: int, stride: int, pad: int) -> np.ndarray:
    """For batches: an index array (positions, c_in * kernel**2) into the flattened input
    with one zero appended (index ``c*h*w``: the padding); row ``oy * out_w + ox`` picks
    ``conv_patch`` at that position.

    >>> conv_patch_index((1, 2, 2), kernel=2, stride=1, pad=0).tolist()
    [[0, 1, 2, 3]]
    """
    c, h, w = in_shape
    _, out_h, out_w = conv_output_shape(in_shape, 1, kernel, stride, pad)
    numbered = range(1, c * h * w + 1)  # element i as i + 1: 0 is left for the padding
    index = np.array([conv_patch(numbered, in_shape, kernel, oy, ox, stride, pad)
                      for oy in range(out_h) for ox in range(out_w)], dtype=np.int64) - 1
    index[index < 0] = c * h * w
    return index


def conv2d_batch(
    x: np.ndarray,
    in_shape: Sequence[int],
    weights: np.ndarray,
    bias: np.ndarray,
    mult: np.ndarray,
    shift: np.ndarray,
    act: Activation,
    kernel: int,
    stride: int = 1,
    pad: int = 0,
) -> np.ndarray:
    """:func:`conv2d` over a batch ``x`` of shape (batch, c*h*w): the patches gathered
    (``conv_patch_index``) and :func:`dense_batch` on all of them at once; exact, and
    checked against :func:`conv2d` by the tests."""
    x = np.asarray(x, dtype=np.int64)
    index = conv_patch_index(in_shape, kernel, stride, pad)
    padded = np.concatenate([x, np.zeros((len(x), 1), np.int64)], axis=1)
    patches = padded[:, index].reshape(-1, index.shape[1])  # (batch * positions, patch)
    y = dense_batch(patches, weights, bias, mult, shift, act).reshape(len(x), len(index), -1)
    return y.transpose(0, 2, 1).reshape(len(x), -1)  # channel by channel


# ----------------------------------------------------------- from real numbers --


def quantize_multiplier(real: float) -> tuple[int, int]:
    """``(mult, shift)`` with ``mult / 2**shift`` closest to ``real`` at 16-bit precision.

    >>> quantize_multiplier(0.5)
    (32768, 16)
    """
    if not math.isfinite(real) or real < 0:
        raise ParameterRangeError(f"requantization scale {real} must be finite and >= 0")
    if real == 0:
        return 0, 0
    if real > MULT_MAX:
        raise ParameterRangeError(f"requantization scale {real} exceeds {MULT_MAX}")
    shift = min(SHIFT_MAX, max(0, math.floor(math.log2(MULT_MAX / real))))
    mult = round(real * (1 << shift))
    while mult > MULT_MAX:  # log2 rounding at the edge
        shift -= 1
        mult = round(real * (1 << shift))
    return mult, shift


def quantize_symmetric(values: np.ndarray, axis: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 quantization: ``q = round(v / scale)``, ``scale = max|v| / 127``.

    With ``axis`` the scale is per slice along it (per output channel for a weight
    matrix of shape (n_out, n_in) with ``axis=0``). Returns ``(q, scale)``; an all-zero
    slice gets scale 1.
    """
    values = np.asarray(values, dtype=np.float64)
    if axis is None:
        amax = np.max(np.abs(values)) if values.size else 0.0
    else:
        reduce = tuple(i for i in range(values.ndim) if i != axis)
        amax = np.max(np.abs(values), axis=reduce, keepdims=True)
    scale = np.where(amax > 0, amax / INT8_MAX, 1.0)
    q = np.clip(np.round(values / scale), INT8_MIN, INT8_MAX).astype(np.int64)
    return q, np.squeeze(scale) if axis is not None else np.float64(scale)
