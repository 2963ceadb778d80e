"""The capability record: what a node advertises to the planner and to the steering logic.

This module is the one definition of a node's abilities and state. It follows
the IETF CATS metric model (draft-ietf-cats-metric-definition, "CATS Metrics Definition"),
which describes a service site by metrics on three levels:

- **Level 0, raw metrics** with units: compute (here MAC/s, per-layer time, load),
  communication (measured by the links of controller.topology) and delay (measured
  processing delay of a request); each with a *source* (nominal, measurement,
  aggregation, normalization) and a *statistic* (cur, mean, max, min) as in RFC 9439.
- **Level 1, normalized metrics in categories**: one unitless score per category.
- **Level 2, one fully normalized score** per node.

DCIA extends it with what in-network inference needs (draft-wang-cats-innetwork-infer):
layer compatibility (operations and the largest layer a node computes, consecutive layers
per pass), accelerator availability, and the models and versions a node holds.

The planner works on the level 0 values; ``metrics()`` derives levels 1 and 2 for steering
decisions that need a single number.

    >>> s2 = Capability.nominal("s2", "switch", layer_time_s=0.0005)
    >>> s2.max_elems, s2.layers_per_pass, sorted(s2.operations)
    (16, 8, ['dense', 'elementwise', 'embedding', 'embedding_bag', 'fusion'])
    >>> from dcia.layers import DenseLayer
    >>> s2.can_run(DenseLayer([[1] * 64] * 10, [0] * 10, [1] * 10, [0] * 10))
    'has 64 inputs but switch s2 supports at most 16'
    >>> Capability.from_dict(s2.to_dict()) == s2
    True
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from dcia.errors import CapabilityError
from dcia.layers import LayerKind, LayerShape
from dcia.wire import MAX_NET_ELEMS, MAX_PASSES


class NodeKind(StrEnum):
    EDGE = "edge"
    SWITCH = "switch"
    CLOUD = "cloud"


class Op(StrEnum):
    """Operations a node computes; ``ANY`` (edge and cloud only) means every layer kind."""

    DENSE = LayerKind.DENSE.value
    ELEMENTWISE = LayerKind.ELEMENTWISE.value
    EMBEDDING = LayerKind.EMBEDDING.value
    EMBEDDING_BAG = LayerKind.EMBEDDING_BAG.value
    FUSION = LayerKind.FUSION.value
    ANY = "any"


_KIND_DEFAULTS: Mapping[NodeKind, Mapping[str, Any]] = MappingProxyType({
    NodeKind.EDGE: MappingProxyType({
        "operations": (Op.ANY,), "max_elems": None, "layers_per_pass": None,
        "macs_per_s": 1e8, "layer_time_s": 1e-5,
    }),
    NodeKind.SWITCH: MappingProxyType({
        "operations": (Op.DENSE, Op.ELEMENTWISE, Op.EMBEDDING, Op.EMBEDDING_BAG, Op.FUSION),
        "max_elems": MAX_NET_ELEMS,
        "layers_per_pass": MAX_PASSES, "macs_per_s": None, "layer_time_s": 1e-3,
        "accelerator": "p4-pipeline",
    }),
    NodeKind.CLOUD: MappingProxyType({
        "operations": (Op.ANY,), "max_elems": None, "layers_per_pass": None,
        "macs_per_s": 1e10, "layer_time_s": 1e-5,
    }),
})
"""Nominal values a record of each kind starts from when a field is not given."""

NORM_SCALE = 10
"""Level 1 and level 2 scores are integers 0..NORM_SCALE, higher is better."""
REFERENCE_TIME_S = 1e-3
"""Per-layer time that level 1 ``delay_norm`` maps to half the scale."""


@dataclass(frozen=True)
class LoadedModel:
    """A model version a node holds, and which of its layers (None: all of them)."""

    model_id: int
    version: int
    layers: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        for name in ("model_id", "version"):
            value = getattr(self, name)
            if not _is_int(value) or not 0 <= value <= 0xFFFF:
                raise CapabilityError(
                    f"a loaded model's {name} must be an integer 0..65535 (16 bits on the wire), "
                    f"not {value!r}"
                )
        if self.layers is not None:
            if isinstance(self.layers, str | bytes) or not isinstance(self.layers, Iterable):
                raise CapabilityError(f"a loaded model's layers must be a list of layer indices, not {self.layers!r}")
            layers = tuple(self.layers)
            bad = [v for v in layers if not _is_int(v) or not 0 <= v <= 0xFF]
            if bad:
                raise CapabilityError(
                    f"a loaded model's layers must be layer indices 0..255 (8 bits on the wire), "
                    f"not {bad[0]!r}"
                )
            object.__setattr__(self, "layers", tuple(sorted(layers)))

    def holds(self, model_id: int, version: int, layer: int) -> bool:
        return (model_id, version) == (self.model_id, self.version) and (
            self.layers is None or layer in self.layers
        )


@dataclass(frozen=True)
class Metric:
    """One CATS metric: its level, type, value, unit ("" when normalized), source, statistic."""

    level: int
    type: str
    value: float
    unit: str
    source: str
    statistic: str = "cur"


@dataclass(frozen=True)
class Capability:
    """What one node (edge device, P4 switch or cloud server) can compute and how fast.

    Time of one layer: ``(layer_time_s + macs / macs_per_s) * (1 + load)``; a node
    without ``macs_per_s`` (a switch computes a layer in one pipeline pass, however many
    MACs it has) takes ``layer_time_s * (1 + load)``.
    """

    name: str
    kind: NodeKind
    operations: frozenset[str] = field(default=frozenset())
    max_elems: int | None = None
    """Largest input or output a layer may have here (None: unlimited)."""
    layers_per_pass: int | None = None
    """Consecutive layers the node computes on one tensor (None: unlimited)."""
    macs_per_s: float | None = None
    layer_time_s: float = 0.0
    """Fixed time per layer; for a switch the time of one pass, recirculation included."""
    load: float = 0.0
    """Current utilization, 0 (idle) .. 1 (saturated)."""
    accelerator: str | None = None
    """What computes the layers ("p4-pipeline", "gpu"; None: the CPU)."""
    accelerator_available: bool = True
    """False while the accelerator is down or reserved: then the node runs no layers."""
    models: tuple[LoadedModel, ...] = ()
    delay_s: float | None = None
    """Measured processing delay of a request here (CATS delay_raw; None: not measured)."""
    layers_per_s: float | None = None
    """Layers per second the node computes at most (None: not limited). On a switch this
    sets the meters of its layers: what it is offered beyond it goes on uncomputed, to
    the next capable node (p4src/dcia.p4: STAT_DEFERRED)."""

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "kind", NodeKind(self.kind))
        except ValueError:
            raise CapabilityError(
                f"node {self.name}: kind {self.kind!r} is not one of edge, switch, cloud"
            ) from None
        if isinstance(self.operations, str | bytes) or not isinstance(self.operations, Iterable):
            raise CapabilityError(f"node {self.name}: operations must be a list, like [\"dense\"]")
        ops = frozenset(str(op) for op in self.operations)
        unknown = ops - set(Op)
        if unknown:
            raise CapabilityError(
                f"node {self.name}: unknown operations {sorted(unknown)} "
                f"(known: {', '.join(Op)})"
            )
        if Op.ANY in ops and self.kind is NodeKind.SWITCH:
            raise CapabilityError(
                f"switch {self.name} cannot run 'any' layer: list its operations"
            )
        object.__setattr__(self, "operations", ops)
        object.__setattr__(self, "models", tuple(self.models))
        self._check_number("max_elems", self.max_elems, 1, integer=True)
        self._check_number("layers_per_pass", self.layers_per_pass, 1, integer=True)
        self._check_number("macs_per_s", self.macs_per_s, 0, open_low=True)
        self._check_number("layer_time_s", self.layer_time_s, 0, required=True)
        self._check_number("delay_s", self.delay_s, 0)
        self._check_number("layers_per_s", self.layers_per_s, 0, open_low=True)
        self._check_number("load", self.load, 0, required=True)
        if self.load > 1:
            raise CapabilityError(f"node {self.name}: load {self.load} is outside 0..1")
        if self.accelerator is not None and not isinstance(self.accelerator, str):
            raise CapabilityError(
                f"node {self.name}: accelerator must be a name like \"gpu\", not {self.accelerator!r}"
            )
        if not isinstance(self.accelerator_available, bool):
            raise CapabilityError(f"node {self.name}: accelerator_available must be true or false")

    def _check_number(
        self, name: str, value: Any, low: float, *, integer: bool = False, open_low: bool = False,
        required: bool = False,
    ) -> None:
        if value is None and not required:
            return
        if isinstance(value, bool) or not isinstance(value, int if integer else int | float):
            kind = "an integer" if integer else "a number"
            raise CapabilityError(f"node {self.name}: {name} must be {kind}, not {value!r}")
        if not math.isfinite(value):
            raise CapabilityError(f"node {self.name}: {name} = {value} must be a finite number")
        if value < low or (open_low and value == low):
            bound = f"greater than {low}" if open_low else f"at least {low}"
            raise CapabilityError(f"node {self.name}: {name} = {value} must be {bound}")

    @property
    def label(self) -> str:
        """``switch s2``: how messages name the node."""
        return f"{self.kind} {self.name}"

    def can_run(self, layer: LayerShape) -> str | None:
        """Why this node cannot compute ``layer``, or None if it can.

        The reason reads as a predicate of the layer: ``f"layer 3 {reason}"``.
        """
        if Op.ANY not in self.operations and layer.kind not in self.operations:
            article = "an" if layer.kind[0] in "aeiou" else "a"
            runs = f"only {', '.join(sorted(self.operations))}" if self.operations else "no layers"
            return f"is {article} {layer.kind} layer but {self.label} runs {runs}"
        if self.accelerator is not None and not self.accelerator_available:
            return f"needs the {self.accelerator} of {self.label}, which is unavailable"
        if self.max_elems is not None:
            for side, n in (("inputs", layer.n_in), ("outputs", layer.n_out)):
                if n > self.max_elems:
                    return f"has {n} {side} but {self.label} supports at most {self.max_elems}"
        return None

    def claims_beyond(self, program: Capability) -> str | None:
        """What this switch record claims that ``program`` (the P4 program it runs) cannot do.

        >>> Capability.nominal("s1", "switch", max_elems=32).claims_beyond(DCIA_PROGRAM)
        'max_elems = 32, but its P4 program computes layers of at most 16 elements'
        """
        extra = self.operations - program.operations
        if extra:
            return (f"operations {sorted(extra)} are not in its P4 program "
                    f"(it computes {', '.join(sorted(program.operations))})")
        for name, what in (("max_elems", "layers of at most {} elements"),
                           ("layers_per_pass", "at most {} layers per pass")):
            limit, claimed = getattr(program, name), getattr(self, name)
            if limit is not None and (claimed is None or claimed > limit):
                return f"{name} = {claimed}, but its P4 program computes {what.format(limit)}"
        return None

    def layer_seconds(self, layer: LayerShape) -> float:
        """Predicted time to compute ``layer`` here, under the current load."""
        work = self.layer_time_s
        if self.macs_per_s is not None:
            work += layer.macs / self.macs_per_s
        return work * (1 + self.load)

    def holds(self, model_id: int, version: int, layer: int) -> bool:
        """Whether this node has the state to compute ``layer`` of that model version."""
        return any(m.holds(model_id, version, layer) for m in self.models)

    def metrics(self) -> tuple[Metric, ...]:
        """The record as CATS metrics: level 0 raw values, level 1 scores, one level 2 score.

        Level 1 ``compute_norm`` is the capacity left, ``10 * (1 - load)``; ``delay_norm``
        maps the time of a reference 16x16 dense layer (plus the measured delay) t to
        ``10 * R / (R + t)`` with R = 1 ms. Level 2 ``score`` is their mean; a node whose
        accelerator is unavailable scores 0.
        """
        raw = [
            Metric(0, "compute_layer_time", self.layer_time_s, "s", "nominal"),
            Metric(0, "compute_load", self.load, "ratio", "measurement"),
        ]
        if self.macs_per_s is not None:
            raw.append(Metric(0, "compute_macs", self.macs_per_s, "MAC/s", "nominal"))
        if self.delay_s is not None:
            raw.append(Metric(0, "delay_raw", self.delay_s, "s", "measurement", "mean"))
        if self.layers_per_s is not None:
            raw.append(Metric(0, "compute_rate", self.layers_per_s, "layers/s", "nominal", "max"))
        t = self.layer_seconds(_REFERENCE_LAYER) + (self.delay_s or 0.0)
        compute = round(NORM_SCALE * (1 - self.load))
        delay = round(NORM_SCALE * REFERENCE_TIME_S / (REFERENCE_TIME_S + t))
        score = 0 if self.can_run(_REFERENCE_LAYER) else round((compute + delay) / 2)
        return (
            *raw,
            Metric(1, "compute_norm", compute, "", "normalization"),
            Metric(1, "delay_norm", delay, "", "normalization"),
            Metric(2, "score", score, "", "normalization"),
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict that ``from_dict`` reads back to an equal record."""
        out = asdict(self)
        out["kind"] = str(self.kind)
        out["operations"] = sorted(self.operations)
        out["models"] = [
            {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(m).items() if v is not None}
            for m in self.models
        ]
        return out

    @classmethod
    def nominal(cls, name: str, kind: NodeKind | str, **fields: Any) -> Capability:
        """A record with the nominal values of ``kind`` for every field not given.

        The plain constructor takes every field as given (a switch without operations
        runs nothing); this and ``from_dict`` start from what a node of the kind can do.
        """
        return cls.from_dict({"name": name, "kind": kind, **fields})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Capability:
        """Build a record from ``to_dict`` output or a topology node table.

        Fields left out take the nominal value for the node's kind.
        """
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        name = data.get("name", "?")
        if unknown:
            raise CapabilityError(
                f"node {name}: unknown capability fields {sorted(unknown)} (known: {', '.join(sorted(known))})"
            )
        if "kind" not in data or "name" not in data:
            raise CapabilityError(f"node {name}: a capability record needs a name and a kind")
        try:
            kind = NodeKind(data["kind"])
        except ValueError:
            raise CapabilityError(
                f"node {name}: kind {data['kind']!r} is not one of edge, switch, cloud"
            ) from None
        values = {**_KIND_DEFAULTS[kind], **data}
        try:
            values["models"] = tuple(LoadedModel(**m) for m in values.get("models", ()))
        except TypeError as e:
            raise CapabilityError(
                f"node {name}: a loaded model has model_id, version and optional layers ({e})"
            ) from None
        except CapabilityError as e:
            raise CapabilityError(f"node {name}: {e}") from None
        return cls(**values)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


DCIA_PROGRAM = Capability.nominal("dcia.p4", NodeKind.SWITCH)
"""What p4src/dcia.p4 computes: every switch record is checked against it when loaded, and the
quantizer and the entry generator ask it whether a layer fits a switch."""


@dataclass(frozen=True)
class _Reference:
    kind: str = "dense"
    n_in: int = 16
    n_out: int = 16
    macs: int = 256


_REFERENCE_LAYER = _Reference()
