"""Import a float model from ONNX: a single chain of dense, element-wise and embedding layers.

    >>> from onnx import TensorProto, helper, numpy_helper
    >>> w = numpy_helper.from_array(np.array([[1.0], [2.0]], np.float32), "w")
    >>> g = helper.make_graph(
    ...     [helper.make_node("MatMul", ["x", "w"], ["y"]), helper.make_node("Relu", ["y"], ["z"])],
    ...     "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])],
    ...     [helper.make_tensor_value_info("z", TensorProto.FLOAT, [None, 1])], [w])
    >>> m = import_onnx(helper.make_model(g))
    >>> [(str(layer.kind), layer.n_in, layer.n_out, layer.relu) for layer in m.layers]
    [('dense', 2, 1, True)]

The importer follows the chain of nodes from the graph input to the chosen output. Each
node on it takes exactly one computed tensor; every other input is a constant (an
initializer or a Constant node). Operators become layers like this:

* Gemm, MatMul: a dense layer; a following Add / Sub / Mul / Div by a constant folds into it;
* Add, Sub, Mul, Div by a constant and the ``ai.onnx.ml`` Scaler (as skl2onnx writes
  StandardScaler): an element-wise layer, or folded into the layer before when that one
  has no ReLU;
* Relu: the activation of the layer before;
* Conv (2-D, square kernel, one stride and one padding for both axes, no groups or
  dilation) on a tensor of known (channels, height, width): a convolution layer, its
  input and output flattened channel by channel. A Reshape of the input vector to
  (batch, c, h, w) gives the first one its shape; Flatten (or a Reshape to one vector)
  after it is nothing;
* Gather of a constant table by the input id: an embedding layer (the first layer only);
* Flatten, Reshape, Squeeze, Unsqueeze of a single vector, Identity, Cast, Dropout: nothing;
* Softmax, ArgMax: the model's output kind; only shape operators may follow them;
* Max of K computed tensors (2 .. 8), each the output of one dense layer (MatMul or Gemm,
  Add, Relu) on a graph input of its own, with one bias shared by all: the views of K
  sensors fused into one (their element-wise maximum). It becomes a dense layer over the
  K inputs side by side (the view of input ``k`` in columns ``k*w .. (k+1)*w``) and a
  fusion layer of K members: each member fills its own view and leaves the others zero,
  so the dense layer computes exactly that view's branch (docs/arithmetic.md, fusion).
* an embedding-bag, first: ``ReduceSum(Gather(T, tokens), axes=[1])`` (sum) or that
  divided by the count of the tokens that are not padding (mean: ``Div`` by
  ``Max(ReduceSum(Cast(Greater(tokens, 0)), axes=[1]), 1)``), ``tokens`` a graph input of
  shape (batch, n) and ``T``'s row 0, the padding's, all zeros.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import numpy_helper

from dcia.model import (
    FloatConv,
    FloatDense,
    FloatElementwise,
    FloatEmbedding,
    FloatEmbeddingBag,
    FloatFusion,
    FloatLayer,
    FloatModel,
    non_finite,
    with_affine,
    with_relu,
)
from dcia import arithmetic
from dcia.arithmetic import BagMode
from dcia.errors import ModelImportError, ParameterRangeError
from dcia.wire import MAX_FUSION_MEMBERS

log = logging.getLogger(__name__)

SHAPE_OPS = frozenset({"Identity", "Cast", "Dropout", "Flatten", "Reshape", "Squeeze", "Unsqueeze"})
SUPPORTED = frozenset(
    {
        "Gemm",
        "MatMul",
        "Relu",
        "Gather",
        "Softmax",
        "ArgMax",
        "Add",
        "Sub",
        "Mul",
        "Div",
        "ai.onnx.ml.Scaler",
        "Max",
        "ReduceSum",
        "Conv",
    }
    | SHAPE_OPS
)
"""Operators, named ``op_type`` in the default domain and ``domain.op_type`` elsewhere."""
HINTS = {
    "ai.onnx.ml.ZipMap": "export the classifier with skl2onnx's option {'zipmap': False} and "
    "import its 'probabilities' output; ",
}
"""What to do about an unsupported operator, where there is something better than a list."""
FLOAT_TYPES = frozenset(
    {
        onnx.TensorProto.FLOAT,
        onnx.TensorProto.DOUBLE,
        onnx.TensorProto.FLOAT16,
        onnx.TensorProto.BFLOAT16,
    }
)


def import_onnx(
    source: str | Path | bytes | onnx.ModelProto,
    *,
    output: str | None = None,
    name: str | None = None,
) -> FloatModel:
    """Read an ONNX model (path, serialized bytes or ModelProto) into a :class:`FloatModel`.

    ``output`` names the graph output to import when the graph has several.
    """
    model = _read(source)
    graph = model.graph
    if name is None:
        name = Path(source).stem if isinstance(source, (str, Path)) else graph.name or "model"
    chain, fusion = _trace(graph, _output_name(graph, output))
    if isinstance(fusion, FloatEmbeddingBag):
        builder = _ChainBuilder(None)
        builder._append(fusion)
    elif fusion is None:
        builder = _ChainBuilder(_input_width(graph, chain[0][0]))
    else:
        builder = _ChainBuilder(None)
        for layer in _fused_views(graph, fusion):
            builder._append(layer)
    for node, data_index, consts in chain:
        builder.add(node, data_index, consts)
    if not builder.layers:
        raise ModelImportError(
            f"model {name!r} has no layer DCIA can run (no Gemm, MatMul, Gather, ...)"
        )
    result = FloatModel(name, builder.layers, builder.output)
    log.info(
        "imported %s: %d layers (%s), output %s",
        name,
        len(result.layers),
        ", ".join(f"{layer.kind} {layer.n_in}->{layer.n_out}" for layer in result.layers),
        result.output,
    )
    return result


def _read(source: str | Path | bytes | onnx.ModelProto) -> onnx.ModelProto:
    if isinstance(source, onnx.ModelProto):
        model = source
    else:
        what = f"model file {source} is" if isinstance(source, (str, Path)) else "model bytes are"
        try:
            if isinstance(source, bytes):
                model = onnx.load_from_string(source)
            else:
                model = onnx.load(str(source))
        except FileNotFoundError:
            raise ModelImportError(
                f"model file {source} does not exist; pass the path of an .onnx file"
            ) from None
        except IsADirectoryError:
            raise ModelImportError(
                f"{source} is a directory; pass the path of an .onnx file"
            ) from None
        except (DecodeError, ValueError, OSError) as e:
            raise ModelImportError(
                f"{what} not a valid ONNX model ({e}); export the model again"
            ) from None
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else "invalid"
        raise ModelImportError(
            f"ONNX model fails validation: {first}; export the model again"
        ) from None
    return model


def _output_name(graph: onnx.GraphProto, output: str | None) -> str:
    names = [o.name for o in graph.output]
    if output is not None:
        if output not in names:
            raise ModelImportError(
                f"model has no output {output!r}; its outputs are {', '.join(names)}"
            )
        return output
    if len(names) != 1:
        raise ModelImportError(
            f"model has {len(names)} outputs ({', '.join(names)}); choose the one to import "
            "(output=NAME)"
        )
    return names[0]


def _constants(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            attr = node.attribute[0]
            value = onnx.helper.get_attribute_value(attr)
            values[node.output[0]] = (
                numpy_helper.to_array(value)
                if isinstance(value, onnx.TensorProto)
                else np.array(value)
            )
    return values


def _node_label(node: onnx.NodeProto) -> str:
    return f"'{node.name}'" if node.name else f"with output '{node.output[0]}'"


Link = tuple[onnx.NodeProto, int, dict[int, np.ndarray]]
"""A node of the chain, the position of its computed input and its constant inputs."""


def _trace(graph: onnx.GraphProto, output: str
           ) -> tuple[list[Link], onnx.NodeProto | FloatEmbeddingBag | None]:
    """The nodes from the graph input to ``output``, checking that they form one chain,
    and the Max node that fuses several views or the embedding-bag the chain starts with
    (None: the chain starts at the graph input; otherwise it starts after that)."""
    constants = _constants(graph)
    producer = {out: node for node in graph.node for out in node.output}
    inputs = {i.name for i in graph.input} - constants.keys()
    chain: list[Link] = []
    value = output
    while value not in inputs:
        if value not in producer:
            raise ModelImportError(
                f"model tensor {value!r} is neither a graph input nor a node output"
            )
        node = producer[value]
        label = _node_label(node)
        op = operator(node)
        if op not in SUPPORTED:
            raise ModelImportError(
                f"model node {label} uses operator {op}, which DCIA cannot import; "
                f"{HINTS.get(op, '')}supported: {', '.join(sorted(SUPPORTED))}"
            )
        computed = [(k, v) for k, v in enumerate(node.input) if v and v not in constants]
        bag = _embedding_bag(graph, node, constants, producer, inputs)
        if bag is not None:
            chain.reverse()
            return chain, bag
        if op == "Max" and len(computed) > 1 and len(computed) == len(node.input):
            chain.reverse()
            return chain, node
        if len(computed) != 1:
            names = ", ".join(v for _, v in computed) or "none"
            raise ModelImportError(
                f"model node {label} ({op}) takes {len(computed)} computed tensors ({names}); "
                "DCIA imports a single chain of layers, each fed by the one before"
            )
        data_index, value = computed[0]
        consts = {k: constants[v] for k, v in enumerate(node.input) if v and k != data_index}
        for k, c in consts.items():
            problem = non_finite(c, f"constant tensor {node.input[k]!r}", plural=False)
            if problem:
                raise ModelImportError(
                    f"model node {label} ({op}): {problem}; export the model again with finite weights"
                )
        chain.append((node, data_index, consts))
    chain.reverse()
    if not chain:
        raise ModelImportError(f"model output {output!r} is its input: there is nothing to compute")
    return chain, None


def _embedding_bag(graph: onnx.GraphProto, node: onnx.NodeProto, constants: dict[str, np.ndarray],
                   producer: dict[str, onnx.NodeProto], inputs: set[str]) -> FloatEmbeddingBag | None:
    """The embedding-bag whose output ``node`` makes (see the module's docstring), or None."""
    mode = BagMode.SUM
    if operator(node) == "Div" and all(v not in constants for v in node.input):
        counted = _count_of(node.input[1], constants, producer, inputs)
        if counted is None:
            return None
        node, mode = producer.get(node.input[0]), BagMode.MEAN
        if node is None:
            return None
    if operator(node) != "ReduceSum" or node.input[0] not in producer:
        return None
    gather = producer[node.input[0]]
    if operator(gather) != "Gather" or gather.input[0] not in constants \
            or gather.input[1] not in inputs:
        return None
    label = f"model node {_node_label(node)} (embedding-bag)"
    axes = constants.get(node.input[1]) if len(node.input) > 1 and node.input[1] else None
    keepdims = next((onnx.helper.get_attribute_value(a) for a in node.attribute
                     if a.name == "keepdims"), 1)
    if axes is None or [int(a) for a in np.ravel(axes)] != [1] or keepdims:
        raise ModelImportError(f"{label} must sum over the tokens: axes [1], keepdims 0")
    if mode is BagMode.MEAN and counted != gather.input[1]:
        raise ModelImportError(f"{label} divides by the count of another input's tokens")
    table = constants[gather.input[0]].astype(np.float64)
    if table.ndim != 2 or np.any(table[0] != 0):
        raise ModelImportError(f"{label}: the table's row 0 (the padding token) must be all "
                               "zeros, so that padding adds nothing")
    width = _input_width(graph, gather)
    if width is None:
        raise ModelImportError(f"{label}: the token input {gather.input[1]!r} needs a fixed "
                               "width, shape (batch, n)")
    try:
        return FloatEmbeddingBag(table, width, mode)
    except ParameterRangeError as e:
        raise ModelImportError(f"{label}: {e}") from None


def _count_of(value: str, constants, producer, inputs) -> str | None:
    """The graph input whose non-padding tokens ``value`` counts (at least 1), or None:
    ``Max(ReduceSum(Cast(Greater(tokens, 0)), axes=[1]), 1)``, Cast and Max optional."""
    node = producer.get(value)
    if node is not None and operator(node) == "Max":
        rest = [v for v in node.input if v not in constants]
        if len(rest) != 1 or any(float(np.max(constants[v])) != 1.0
                                 for v in node.input if v in constants):
            return None
        node = producer.get(rest[0])
    if node is None or operator(node) != "ReduceSum":
        return None
    node = producer.get(node.input[0])
    if node is not None and operator(node) == "Cast":
        node = producer.get(node.input[0])
    if node is None or operator(node) != "Greater" or node.input[1] not in constants \
            or np.any(constants[node.input[1]] != 0) or node.input[0] not in inputs:
        return None
    return node.input[0]


def _fused_views(graph: onnx.GraphProto, node: onnx.NodeProto) -> list[FloatLayer]:
    """The layers of K views fused by the Max ``node``: one dense layer over the views side
    by side, then a fusion layer of K members (see the module's docstring)."""
    label = f"model node {_node_label(node)} (Max)"
    if len(node.input) > MAX_FUSION_MEMBERS:
        raise ModelImportError(f"{label} fuses {len(node.input)} views; at most "
                               f"{MAX_FUSION_MEMBERS} can be fused")
    branches: list[FloatDense] = []
    sources: list[str] = []
    for value in node.input:
        chain, nested = _trace(graph, value)
        if nested is not None:
            raise ModelImportError(f"{label}: view {value!r} is itself a fusion; DCIA fuses once")
        builder = _ChainBuilder(_input_width(graph, chain[0][0]))
        for link in chain:
            builder.add(*link)
        if len(builder.layers) != 1 or not isinstance(builder.layers[0], FloatDense) \
                or builder.output != "logits":
            raise ModelImportError(
                f"{label}: view {value!r} must be one dense layer (MatMul or Gemm, Add, Relu) on "
                f"a graph input; it is {', '.join(str(l.kind) for l in builder.layers) or 'nothing'}")
        branches.append(builder.layers[0])
        sources.append(next(v for v in chain[0][0].input if v in {i.name for i in graph.input}))
    first = branches[0]
    if len(set(sources)) != len(sources):
        raise ModelImportError(f"{label}: two views read the same graph input; each view is "
                               "one sensor's input")
    for k, branch in enumerate(branches[1:], start=1):
        if branch.n_out != first.n_out or branch.relu != first.relu:
            raise ModelImportError(f"{label}: view {k} has {branch.n_out} outputs (ReLU "
                                   f"{branch.relu}), view 0 {first.n_out} (ReLU {first.relu})")
        if not np.allclose(branch.bias, first.bias, rtol=1e-6, atol=1e-9):
            raise ModelImportError(f"{label}: view {k} has another bias than view 0; the views "
                                   "of a fusion share one bias (one Add initializer)")
    weights = np.hstack([b.weights for b in branches])
    return [FloatDense(weights, first.bias, first.relu), FloatFusion(first.n_out, len(branches))]


def operator(node: onnx.NodeProto) -> str:
    """The node's operator: ``op_type``, prefixed by its domain outside the default one."""
    return node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"


def _input_width(graph: onnx.GraphProto, first: onnx.NodeProto) -> int | None:
    """The feature width of the graph input that ``first`` reads, if the graph says it."""
    for i in graph.input:
        if i.name in first.input:
            dims = i.type.tensor_type.shape.dim
            if len(dims) >= 2 and dims[-1].HasField("dim_value"):
                return int(dims[-1].dim_value)
    return None


class _ChainBuilder:
    """Turns the chain's nodes, in order, into float layers."""

    def __init__(self, width: int | None) -> None:
        self.layers: list[FloatLayer] = []
        self.width = width
        self.output = "logits"
        self.spatial: tuple[int, int, int] | None = None
        """(channels, height, width) of the tensor, where a Reshape or a Conv made one."""
        self.handlers: dict[str, Callable[[onnx.NodeProto, int, dict[int, np.ndarray]], None]] = {
            "Gemm": self._gemm,
            "MatMul": self._matmul,
            "Relu": self._relu,
            "Gather": self._gather,
            "Softmax": self._head,
            "ArgMax": self._head,
            "ai.onnx.ml.Scaler": self._scaler,
            "Add": self._arith,
            "Sub": self._arith,
            "Mul": self._arith,
            "Div": self._arith,
            "Flatten": self._flatten,
            "Reshape": self._reshape,
            "Cast": self._cast,
            "Max": self._max,
            "Conv": self._conv,
        }

    def add(self, node: onnx.NodeProto, data_index: int, consts: dict[int, np.ndarray]) -> None:
        self.node = node
        op = operator(node)
        if op not in SHAPE_OPS and self.output != "logits":
            raise self._error(
                f"comes after {self.output.capitalize()}; "
                "DCIA runs Softmax and ArgMax only at the end of a model"
            )
        handler = self.handlers.get(op)
        if handler:
            try:
                with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
                    handler(node, data_index, consts)
            except ParameterRangeError as e:
                # The float layer records refuse NaN and inf: here they come from folding
                # finite constants whose product or quotient overflows float64.
                raise self._error(f"makes an invalid layer: {e}") from None

    def _error(self, message: str) -> ModelImportError:
        return ModelImportError(
            f"model node {_node_label(self.node)} ({operator(self.node)}) {message}"
        )

    def _attr(self, name: str, default):
        for a in self.node.attribute:
            if a.name == name:
                value = onnx.helper.get_attribute_value(a)
                if isinstance(value, float | list):
                    problem = non_finite(np.asarray(value, dtype=np.float64), f"its attribute {name}", plural=False)
                    if problem:
                        raise self._error(f"is refused: {problem}; export the model again with finite values")
                return value
        return default

    def _append(self, layer: FloatLayer) -> None:
        if self.width is not None and layer.n_in != self.width:
            raise self._error(
                f"takes {layer.n_in} inputs but the tensor before it has {self.width}"
            )
        self.layers.append(layer)
        self.width = layer.n_out

    def _dense(self, weights: np.ndarray, bias: np.ndarray) -> None:
        self._append(FloatDense(weights.astype(np.float64), bias.astype(np.float64)))

    def _gemm(self, node, data_index, consts) -> None:
        if data_index != 0 or self._attr("transA", 0):
            raise self._error(
                "must multiply the input tensor (A, not transposed) by constant weights"
            )
        b = consts[1].astype(np.float64)
        if b.ndim != 2:
            raise self._error(f"has weights of shape {b.shape}; expected a matrix")
        b = b.T if self._attr("transB", 0) else b  # now (n_in, n_out)
        weights = self._attr("alpha", 1.0) * b.T
        c = consts.get(2, np.zeros(1))
        self._dense(weights, self._vector(self._attr("beta", 1.0) * c, weights.shape[0]))

    def _matmul(self, node, data_index, consts) -> None:
        w = consts[1 - data_index]
        if data_index != 0 or w.ndim != 2:
            raise self._error(
                "must multiply the input tensor by a constant weight matrix on its right"
            )
        self._dense(w.T, np.zeros(w.shape[1]))

    def _vector(self, c: np.ndarray, width: int | None) -> np.ndarray:
        """A constant broadcast to a per-feature vector of ``width`` elements."""
        c = np.asarray(c, dtype=np.float64).reshape(-1)
        if width is None:
            if c.size == 1:
                raise self._error(
                    "has a scalar operand but the input width is unknown; "
                    "give the model input a fixed last dimension"
                )
            width = c.size
        if c.size not in (1, width):
            raise self._error(f"has a constant of {c.size} elements for a tensor of {width}")
        return np.broadcast_to(c, (width,)).copy()

    def _arith(self, node, data_index, consts) -> None:
        c = self._vector(consts[1 - data_index], self.width)
        op, tensor_first = node.op_type, data_index == 0
        if op == "Add":
            scale, offset = np.ones_like(c), c
        elif op == "Sub":
            scale, offset = (np.ones_like(c), -c) if tensor_first else (-np.ones_like(c), c)
        elif op == "Mul":
            scale, offset = c, np.zeros_like(c)
        elif not tensor_first:
            raise self._error("divides a constant by the tensor, which is not an affine transform")
        elif np.any(c == 0):
            raise self._error("divides by zero")
        else:
            scale, offset = 1.0 / c, np.zeros_like(c)
        self._affine(scale, offset)

    def _scaler(self, node, data_index, consts) -> None:
        # ai.onnx.ml Scaler: y = (x - offset) * scale.
        offset = np.asarray(self._attr("offset", [0.0]), dtype=np.float64)
        scale = np.asarray(self._attr("scale", [1.0]), dtype=np.float64)
        width = self.width or max(offset.size, scale.size)
        scale, offset = self._vector(scale, width), self._vector(offset, width)
        self._affine(scale, -offset * scale)

    def _affine(self, scale: np.ndarray, offset: np.ndarray) -> None:
        last = self.layers[-1] if self.layers else None
        if last is not None and not getattr(last, "relu", False) \
                and not isinstance(last, FloatEmbeddingBag):
            self.layers[-1] = with_affine(last, scale, offset)
        else:
            self._append(FloatElementwise(scale, offset))

    def _relu(self, node, data_index, consts) -> None:
        if self.layers and isinstance(self.layers[-1], FloatEmbeddingBag):
            self._append(FloatElementwise(np.ones(self.width), np.zeros(self.width)))
        if not self.layers:
            if self.width is None:
                raise self._error(
                    "comes first but the input width is unknown; "
                    "give the model input a fixed last dimension"
                )
            self._append(FloatElementwise(np.ones(self.width), np.zeros(self.width)))
        self.layers[-1] = with_relu(self.layers[-1])

    def _gather(self, node, data_index, consts) -> None:
        if data_index != 1 or self._attr("axis", 0) != 0 or consts[0].ndim != 2:
            raise self._error("must look up rows (axis 0) of a constant 2-D table by the input id")
        if self.layers:
            raise self._error("is an embedding look-up after other layers; it must come first")
        self.width = None
        self._append(FloatEmbedding(consts[0].astype(np.float64)))

    def _head(self, node, data_index, consts) -> None:
        if self._attr("axis", 1 if node.op_type == "ArgMax" else -1) not in (1, -1):
            raise self._error("must work on the feature axis (1 or -1)")
        self.output = node.op_type.lower()

    def _max(self, node, data_index, consts) -> None:
        raise self._error("takes the maximum with a constant; DCIA imports Max only as the "
                          "fusion of several views, each a computed tensor")

    def _cast(self, node, data_index, consts) -> None:
        # A cast to an integer type is an id (before an embedding) or a class (after ArgMax).
        if self._attr("to", None) not in FLOAT_TYPES and self.layers and self.output != "argmax":
            raise self._error("casts computed values to an integer type, which DCIA cannot import")

    def _conv(self, node, data_index, consts) -> None:
        w = consts.get(1)
        if data_index != 0 or w is None or w.ndim != 4 or w.shape[2] != w.shape[3]:
            raise self._error("must convolve the input tensor with constant square 2-D filters")
        if self.spatial is None:
            raise self._error("needs its input's (channels, height, width): reshape the input "
                              "vector to (batch, c, h, w) before the first Conv")
        k = w.shape[2]
        strides = self._attr("strides", [1, 1])
        pads = self._attr("pads", [0, 0, 0, 0])
        if (self._attr("group", 1) != 1 or any(d != 1 for d in self._attr("dilations", [1, 1]))
                or self._attr("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET")
                or len(set(strides)) != 1 or len(set(pads)) != 1
                or list(self._attr("kernel_shape", [k, k])) != [k, k]):
            raise self._error("must be a plain 2-D convolution: one stride and one padding for "
                              "both axes, no groups, no dilation, explicit pads")
        bias = consts.get(2, np.zeros(w.shape[0]))
        self._append(FloatConv(w.astype(np.float64), np.asarray(bias, np.float64).reshape(-1),
                               self.spatial, int(strides[0]), int(pads[0])))
        conv = self.layers[-1]
        self.spatial = arithmetic.conv_output_shape(conv.in_shape, w.shape[0], k, conv.stride,
                                                    conv.pad)

    def _flatten(self, node, data_index, consts) -> None:
        self.spatial = None
        if self._attr("axis", 1) != 1:
            raise self._error("must flatten from axis 1 (keep the batch, flatten one sample)")

    def _reshape(self, node, data_index, consts) -> None:
        shape = self._attr("shape", None) if 1 not in consts else consts[1]
        dims = [int(d) for d in np.ravel(shape)] if shape is not None else []
        if (len(dims) == 4 and self.width is not None and min(dims[1:]) > 0
                and int(np.prod(dims[1:])) == self.width):
            self.spatial = (dims[1], dims[2], dims[3])  # the vector seen as channel planes
            return
        self.spatial = None
        if self.width is not None and any(d not in (-1, 0, 1, self.width) for d in dims):
            raise self._error(
                f"reshapes a vector of {self.width} elements to {dims}; "
                "DCIA imports reshapes of a single vector only"
            )
