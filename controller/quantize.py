"""Post-training int8 quantization of a float model into the integer layers DCIA deploys.

    >>> from dcia.model import FloatDense, FloatModel
    >>> fm = FloatModel("tiny", [FloatDense(np.array([[0.5, -1.0]]), np.array([0.25]), relu=True)])
    >>> qm = quantize(fm, np.array([[1.0, 0.0], [0.0, -1.0], [2.0, 1.0]]))
    >>> qm.layers[0].weights, qm.predict(np.array([[1.0, 0.0]])).tolist()
    ([[64, -127]], [0])

The scheme, for every tensor between layers a symmetric int8 scale (zero point 0):

* weights: symmetric per output channel (``quantize_symmetric(W, axis=0)``); dense
  biases int32 at the scale ``input_scale * weight_scale_j`` of their accumulator;
* activations: the scale of each tensor comes from running the float model over
  calibration samples (the training inputs, say). ``method="max"`` (the default) takes
  the largest magnitude seen, so nothing seen in calibration saturates; ``"percentile"``
  takes that percentile of the magnitudes, trading saturation of rare outliers for a
  finer step. Max-abs is the default: it has no parameter to tune, and on the digits
  demo model it does as well as the 99.99th percentile with int8 everywhere (96.39 %)
  and better when the cloud finishes in float (96.67 % against 96.39 %; see
  ``python -m controller.accuracy --calibration percentile``);
* requantization: ``input_scale * weight_scale / output_scale`` as a 16-bit multiplier
  and a shift (``dcia.arithmetic.quantize_multiplier``);
* element-wise layers share one multiplier, so their int8 scales are quantized per
  tensor and their offsets (int16) at the accumulator scale.

An element-wise layer too wide for a switch (a feature scaler on the raw input, typically)
that feeds a dense layer is folded into that layer first: exact in float, and it has to run
on the edge anyway, where one dense layer loses less precision than two layers would.
Element-wise layers a switch can run stay separate, so the network can apply them.
"""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path
from typing import Literal

import numpy as np

from dcia.model import (
    FloatConv,
    FloatDense,
    FloatElementwise,
    FloatEmbedding,
    FloatEmbeddingBag,
    FloatFusion,
    FloatLayer,
    FloatModel,
    QuantizedModel,
    fold_into_dense,
    non_finite,
)
from dcia import arithmetic
from dcia.arithmetic import Activation
from dcia.errors import CalibrationError, ParameterRangeError
from dcia.capability import DCIA_PROGRAM
from dcia.layers import (
    ConvLayer,
    DenseLayer,
    ElementwiseLayer,
    EmbeddingBagLayer,
    EmbeddingLayer,
    FusionLayer,
    Layer,
)

log = logging.getLogger(__name__)

Method = Literal["max", "percentile"]
ERROR_WARN = 0.1
"""Relative error of a quantized layer (see :func:`layer_errors`) above which quantize warns."""
BIAS_MAX = 1 << 30
"""Largest dense bias: half the int32 range, leaving the other half for the dot product."""


def prepare(model: FloatModel) -> FloatModel:
    """``model`` with every element-wise layer too wide for a switch folded into the next dense."""
    layers: list[FloatLayer] = []
    for layer in model.layers:
        prev = layers[-1] if layers else None
        if (
            isinstance(layer, FloatDense)
            and isinstance(prev, FloatElementwise)
            and not prev.relu
            and DCIA_PROGRAM.can_run(prev) is not None
        ):
            layers[-1] = fold_into_dense(prev, layer)
        else:
            layers.append(layer)
    return FloatModel(model.name, layers, model.output)


CALIBRATION_SUFFIXES = (".npy", ".npz", ".csv")


def load_calibration(path: str | Path) -> np.ndarray:
    """Calibration samples from a file: a .npy array, a .npz with one array, or a .csv of numbers.

    Raises CalibrationError, in one line, for a file that is missing or not such an array;
    whether the samples fit the model, :func:`check_calibration` says (``quantize`` calls it).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    what = f"calibration samples {path}"
    if not path.exists():
        raise CalibrationError(f"{what}: file does not exist")
    if path.is_dir():
        raise CalibrationError(f"{what}: is a directory, not a .npy, .npz or .csv file")
    if suffix not in CALIBRATION_SUFFIXES:
        raise CalibrationError(f"{what}: give a .npy, .npz or .csv file, not {suffix or 'a file without suffix'}")
    try:
        if suffix == ".csv":
            return np.loadtxt(path, delimiter=",", ndmin=2, encoding="utf-8")
        data = np.load(path, allow_pickle=False)
    except OSError as e:
        raise CalibrationError(f"{what}: cannot read it ({e.strerror or _first_line(e)})") from None
    except UnicodeDecodeError:
        raise CalibrationError(f"{what}: not a UTF-8 text file of comma-separated numbers") from None
    except ValueError as e:
        if "pickle" in str(e):
            raise CalibrationError(
                f"{what}: holds pickled Python objects, which are not loaded; save a numeric array"
            ) from None
        kind = "comma-separated numbers" if suffix == ".csv" else f"a valid {suffix} file"
        raise CalibrationError(f"{what}: not {kind} ({_first_line(e)})") from None
    except (EOFError, zipfile.BadZipFile) as e:
        raise CalibrationError(f"{what}: not a valid {suffix} file ({_first_line(e)})") from None
    if isinstance(data, np.ndarray):
        return data
    with data:
        names = list(data.files)
        if len(names) != 1:
            listed = f"{len(names)} arrays ({', '.join(names)})" if names else "no array"
            raise CalibrationError(f"{what}: holds {listed}; save the samples as its only array")
        try:
            return data[names[0]]
        except ValueError as e:
            raise CalibrationError(f"{what}: array {names[0]}: {_first_line(e)}") from None


def check_calibration(model: FloatModel, samples: np.ndarray) -> np.ndarray:
    """``samples`` as an array, if they are calibration samples for ``model``.

    Feature vectors of shape (n, input_size) with finite real values, or for a model that
    starts with an embedding, n ids (shape (n,) or (n, 1)) in its table; otherwise a
    CalibrationError that says what is wrong.
    """
    try:
        x = np.asarray(samples)
    except ValueError:
        raise CalibrationError(
            "calibration samples are ragged: every sample must have the same number of values"
        ) from None
    if x.dtype.kind in "US":
        raise CalibrationError(f"calibration samples are strings (dtype {x.dtype}); give numbers")
    if x.dtype.kind == "c":
        raise CalibrationError(f"calibration samples are not real numbers (dtype {x.dtype})")
    if x.dtype.kind not in "iuf":
        raise CalibrationError(f"calibration samples are not numbers (dtype {x.dtype})")
    ids = isinstance(model.layers[0], FloatEmbedding | FloatEmbeddingBag)
    bag = isinstance(model.layers[0], FloatEmbeddingBag)
    expected = (f"(n, {model.input_size}) of token ids" if bag else "(n,) or (n, 1) of ids"
                if ids else f"(n, {model.input_size})")
    if (x.ndim not in (1, 2) or (x.ndim == 2 and x.shape[1] != 1)) if ids and not bag else (
        x.ndim != 2 or x.shape[1] != model.input_size
    ):
        raise CalibrationError(
            f"calibration samples have shape {x.shape}; model {model.name!r} takes {expected}"
        )
    if len(x) == 0:
        raise CalibrationError("calibration samples: there are no samples; give at least one")
    problem = non_finite(x, "calibration samples", axes=("sample", "feature"))
    if problem:
        raise CalibrationError(f"{problem}; remove or fix those samples")
    if ids:
        values = x.reshape(-1)
        vocabulary = len(model.layers[0].table)
        if np.any(values != np.round(values)):
            raise CalibrationError("calibration samples are embedding ids and must be whole numbers")
        if values.min() < 0 or values.max() >= vocabulary:
            raise CalibrationError(
                f"calibration samples are embedding ids and must be in 0..{vocabulary - 1}, "
                f"not {values.min():g}..{values.max():g}"
            )
    return x


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def calibrate(
    model: FloatModel, samples: np.ndarray, method: Method = "max", percentile: float = 99.99,
    groups: np.ndarray | None = None,
) -> list[float]:
    """The int8 scale of the input and of each layer's output, from float activations.

    A fusion layer's output has its input's scale (the maximum needs no requantization).
    With ``groups`` (rows of sample indices, each row the members of one fusion group) the
    layers after a fusion layer are calibrated on the fused tensors of those groups, as
    they will see them; without, on each sample as a group of one.
    """
    samples = check_calibration(model, samples)
    if method not in ("max", "percentile"):
        raise ParameterRangeError(f"calibration method {method!r} is not 'max' or 'percentile'")
    if groups is not None:
        groups = np.asarray(groups, dtype=np.int64)
        if groups.ndim != 2 or not groups.size or groups.min() < 0 or groups.max() >= len(samples):
            raise CalibrationError(f"calibration groups must be rows of sample indices in "
                                   f"0..{len(samples) - 1}, got shape {groups.shape}")
    acts = [samples]
    with np.errstate(over="ignore", invalid="ignore"):
        for i, layer in enumerate(model.layers):
            if isinstance(layer, FloatFusion) and groups is not None:
                acts.append(acts[-1][groups].max(axis=1))
                continue
            acts.append(model.forward(acts[-1], start=i, stop=i + 1))
            if not np.isfinite(acts[-1]).all():
                raise CalibrationError(
                    f"layer {i} ({model.layers[i].kind}) overflows to inf or NaN on the calibration "
                    "samples: their values are too large for float64"
                )
    scales = []
    for i, a in enumerate(acts):
        if i == 0 and isinstance(model.layers[0], FloatEmbedding | FloatEmbeddingBag):
            scales.append(1.0)  # ids are not scaled
            continue
        mag = np.abs(a.astype(np.float64))
        amax = float(mag.max() if method == "max" else np.percentile(mag, percentile))
        scales.append(amax / arithmetic.INT8_MAX if amax > 0 else 1.0)
    for i, layer in enumerate(model.layers):
        if isinstance(layer, FloatFusion):
            scales[i + 1] = scales[i]
    return scales


def quantize(
    model: FloatModel,
    samples: np.ndarray,
    *,
    model_id: int = 1,
    version: int = 1,
    method: Method = "max",
    percentile: float = 99.99,
    groups: np.ndarray | None = None,
    fusion_timeout_us: int | None = None,
) -> QuantizedModel:
    """Quantize ``model`` to int8, calibrating activation scales on ``samples``.

    A fusion layer becomes a ``FusionLayer`` with ``fusion_timeout_us`` (default: its
    record's); ``groups`` calibrates the layers after it on fused samples (``calibrate``).
    """
    aligned = prepare(model)
    samples = check_calibration(aligned, samples)
    scales = calibrate(aligned, samples, method, percentile, groups)
    if isinstance(aligned.layers[0], FloatEmbedding | FloatEmbeddingBag):
        # the vectors keep their scale: a mean of int8s is in it, a sum saturates in it
        scales[1] = _embedding_scale(aligned.layers[0])
    layers = [
        _quantize_layer(layer, scales[i], scales[i + 1], i)
        if not isinstance(layer, FloatFusion) else
        FusionLayer(layer.n, layer.members, *(() if fusion_timeout_us is None else (fusion_timeout_us,)))
        for i, layer in enumerate(aligned.layers)
    ]
    how = "max-abs" if method == "max" else f"{percentile}th percentile of |activation|"
    if groups is not None:
        how += f", fused over {len(groups)} groups"
    qm = QuantizedModel(
        model.name,
        model_id,
        version,
        layers,
        scales,
        aligned,
        calibration=f"{how} over {len(samples)} samples",
    )
    last = len(layers) - 1
    for i, problem in qm.switch_problems().items():
        if 0 < i < last:
            log.warning(
                "layer %d cannot run on a switch (%s); it will run on the edge or cloud", i, problem
            )
    for i, error in enumerate(layer_errors(qm, samples)):
        if error > ERROR_WARN:
            layer = layers[i]
            log.warning(
                "layer %d (%s %d->%d) is %.0f%% off its float values in int8 on the calibration "
                "samples: its weights or inputs span too wide a range for 8 bits",
                i,
                layer.kind,
                layer.n_in,
                layer.n_out,
                100 * error,
            )
    return qm


def layer_errors(model: QuantizedModel, samples: np.ndarray, limit: int = 1000) -> list[float]:
    """How far each int8 layer is from its float layer, both given the same int8 input.

    Mean absolute difference over mean magnitude of the float output, on up to ``limit``
    samples: a few percent is normal, tens of percent mean the layer does not quantize well.
    """
    samples = np.asarray(samples)[:limit]
    x = model.quantize_input(samples)
    errors = []
    for i, layer in enumerate(model.float_model.layers):
        y_int = model.forward_int(x, i, i + 1)
        y_float = layer.forward(samples if i == 0 and (model.takes_ids or model.takes_tokens)
                                else model.dequantize(x, i))
        diff = np.abs(model.dequantize(y_int, i + 1) - y_float).mean()
        errors.append(float(diff / max(np.abs(y_float).mean(), 1e-12)))
        x = y_int
    return errors


def _quantize_layer(layer: FloatLayer, s_in: float, s_out: float, index: int) -> Layer:
    try:
        if isinstance(layer, FloatDense):
            return _dense(layer, s_in, s_out)
        if isinstance(layer, FloatElementwise):
            return _elementwise(layer, s_in, s_out)
        if isinstance(layer, FloatConv):
            return _conv(layer, s_in, s_out)
        if isinstance(layer, FloatEmbeddingBag):
            return _embedding_bag(layer, s_out)
        return _embedding(layer, s_out)
    except ParameterRangeError as e:
        raise ParameterRangeError(f"cannot quantize layer {index} ({layer.kind}): {e}") from None


def _act(layer: FloatLayer) -> Activation:
    return Activation.RELU if getattr(layer, "relu", False) else Activation.IDENTITY


def _dense(layer: FloatDense, s_in: float, s_out: float) -> DenseLayer:
    q, w_scale = arithmetic.quantize_symmetric(layer.weights, axis=0)
    w_scale = np.atleast_1d(w_scale)
    # A neuron whose weights are negligible next to its bias (one that training switched
    # off) gets a coarser weight step, so that its bias fits int32 with room to accumulate.
    floor = np.abs(layer.bias) / (s_in * BIAS_MAX)
    if np.any(floor > w_scale):
        w_scale = np.maximum(w_scale, floor)
        q = np.clip(
            np.round(layer.weights / w_scale[:, None]), arithmetic.INT8_MIN, arithmetic.INT8_MAX
        )
    acc_scale = s_in * w_scale
    bias = np.round(layer.bias / acc_scale)
    mults, shifts = zip(*(arithmetic.quantize_multiplier(float(m)) for m in acc_scale / s_out))
    return DenseLayer(
        q.astype(np.int64).tolist(),
        bias.astype(np.int64).tolist(),
        list(mults),
        list(shifts),
        _act(layer),
    )


def _conv(layer: FloatConv, s_in: float, s_out: float) -> ConvLayer:
    """A convolution is a dense layer of its filters applied at every position: each output
    channel's filter quantized as a dense layer's row (per-channel weight scale, bias and
    requantization)."""
    filters = _dense(FloatDense(layer.filters(), layer.bias, layer.relu), s_in, s_out)
    return ConvLayer(filters.weights, filters.bias, filters.mult, filters.shift, filters.act,
                     layer.in_shape, layer.kernel, layer.stride, layer.pad)


def _elementwise(layer: FloatElementwise, s_in: float, s_out: float) -> ElementwiseLayer:
    # One int8 scale step for all elements, coarse enough that every offset fits int16.
    step = (
        max(
            float(np.abs(layer.scale).max()) / arithmetic.INT8_MAX,
            float(np.abs(layer.offset).max()) / (s_in * arithmetic.INT16_MAX),
        )
        or 1.0
    )
    scales = np.clip(np.round(layer.scale / step), arithmetic.INT8_MIN, arithmetic.INT8_MAX)
    offsets = np.round(layer.offset / (s_in * step))
    worst = np.max(np.abs(scales * step - layer.scale) / np.maximum(np.abs(layer.scale), 1e-12))
    if worst > 0.05:
        log.warning("element-wise scales lose up to %.0f%% to the shared int8 step", 100 * worst)
    mult, shift = arithmetic.quantize_multiplier(s_in * step / s_out)
    return ElementwiseLayer(
        scales.astype(np.int64).tolist(),
        offsets.astype(np.int64).tolist(),
        mult,
        shift,
        _act(layer),
    )


def _embedding_scale(layer: FloatEmbedding | FloatEmbeddingBag) -> float:
    table = layer.table[1:] if isinstance(layer, FloatEmbeddingBag) else layer.table
    amax = float(np.abs(table).max())
    return amax / arithmetic.INT8_MAX if amax > 0 else 1.0


def _embedding(layer: FloatEmbedding, s_out: float) -> EmbeddingLayer:
    if len(layer.table) > 0x10000:
        raise ParameterRangeError(
            f"the table has {len(layer.table)} ids; the wire carries at most 65536"
        )
    q = np.clip(np.round(layer.table / s_out), arithmetic.INT8_MIN, arithmetic.INT8_MAX).astype(
        np.int64
    )
    return EmbeddingLayer({i: row for i, row in enumerate(q.tolist())}, layer.n_out)


def _embedding_bag(layer: FloatEmbeddingBag, s_out: float) -> EmbeddingBagLayer:
    """Every token's vector (row 1 .. vocabulary - 1; row 0 is padding) in int8 at the
    layer's output scale."""
    q = np.clip(np.round(layer.table / s_out), arithmetic.INT8_MIN, arithmetic.INT8_MAX).astype(
        np.int64
    )
    return EmbeddingBagLayer({i: q[i].tolist() for i in range(1, len(q))}, layer.n_out,
                             layer.n_in, layer.mode)
