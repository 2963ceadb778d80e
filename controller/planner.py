"""The partition planner: split a model into contiguous stages along an edge-to-cloud path.

Inputs are the model's layers (anything with ``kind``, ``n_in``, ``n_out``, ``macs``), a
:class:`~controller.topology.Route` (nodes with their capability records, and the links
between them) and :class:`Constraints`. The output is a :class:`Plan`: which node runs
which layers, and the predicted time of every stage and hop.

How a request travels (the model the prediction and the search share):

- The tensor moves forward along the path, edge first. Each node on the way computes a
  contiguous run of the next layers, possibly none, and passes the tensor on. The node
  that computes the last layer answers: the result travels back along the same links to
  the edge (docs/wire-format.md: the cloud "or whichever node computes the last layer"
  sends the answer). Nodes after it are not visited.
- Compute time of a layer on a node is ``Capability.layer_seconds``:
  ``(layer_time_s + macs / macs_per_s) * (1 + load)``. A switch has no ``macs_per_s``:
  each layer costs one pipeline pass (recirculation included), and one switch computes at
  most ``layers_per_pass`` consecutive layers of a packet. A stage takes the sum of its
  layers' times.
- A hop carries one packet of ``n_elems + 16 (DCIA header) + 42 (Ethernet, IPv4, UDP)``
  bytes, where ``n_elems`` is the size of the tensor after the layers done so far (the
  model's input before the first). It takes ``delay_ms / 1000 + bytes * 8 / bandwidth``.
  Loss does not enter the prediction. No packet carries more than MAX_WIRE_ELEMS elements.

Objectives:

- ``latency`` (default): minimize the end-to-end time of one request, the sum of all
  stage times, the forward hops and the answer's hops.
- ``throughput``: maximize the requests per second of a pipelined stream, i.e. minimize
  the bottleneck: the longest stage, or the longest serialization time of a packet on a
  link (links are full duplex; forward and answer packets are counted separately). Among
  plans with the same bottleneck, the one with the lowest latency wins.

The search is exact: a dynamic program over (path position, layers done). For the
throughput objective it first finds the smallest achievable bottleneck B with the same
program (max instead of sum), then the lowest latency among plans whose every stage and
hop stays within B. ``evaluate`` computes the plan of any given assignment from scratch;
the tests check the search against it over all assignments of small random cases.

    >>> from controller.topology import load_topology
    >>> layers = [LayerSpec("dense", 64, 16), LayerSpec("dense", 16, 10)]
    >>> p = plan(layers, load_topology("topologies/linear.toml").route())
    >>> p.assignment
    ('h1', 's1')
"""

from __future__ import annotations

import json
import logging
import math
import tomllib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from controller.policy import Forbid
from controller.topology import Route
from dcia.capability import Capability, NodeKind
from dcia.layers import LayerKind, LayerShape, check_chain, mac_count
from dcia.errors import ModelImportError, ParameterRangeError, PlanError
from dcia.wire import HEADER_BYTES, MAX_WIRE_ELEMS

log = logging.getLogger(__name__)

FRAME_OVERHEAD_BYTES = 14 + 20 + 8
"""Ethernet, IPv4 and UDP headers in front of every DCIA header."""


def packet_bytes(n_elems: int) -> int:
    """Size on the wire of a tensor packet with ``n_elems`` int8 elements."""
    return n_elems + HEADER_BYTES + FRAME_OVERHEAD_BYTES


class Objective(StrEnum):
    LATENCY = "latency"
    THROUGHPUT = "throughput"


@dataclass(frozen=True)
class LayerSpec:
    """A layer's shape alone, for planning without weights (see ``read_layer_list``)."""

    kind: LayerKind
    n_in: int
    n_out: int
    macs: int = -1
    """Defaults to what dcia.layers.mac_count counts."""

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "kind", LayerKind(self.kind))
        except ValueError:
            raise ModelImportError(
                f"layer kind {self.kind!r} is not {', '.join(LayerKind)}"
            ) from None
        for name in ("n_in", "n_out", "macs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ModelImportError(f"{name} must be an integer, not {value!r}")
        if self.n_in < 1 or self.n_out < 1:
            raise ModelImportError(f"a {self.kind} layer needs at least one input and one output")
        if self.macs < 0 and self.kind is LayerKind.CONV:
            raise ModelImportError("a conv layer's multiply-accumulates depend on its kernel, "
                                   "not only its sizes: give its macs")
        if self.macs < 0:
            object.__setattr__(self, "macs", mac_count(self.kind, self.n_in, self.n_out))


def read_layer_list(path: str | Path) -> list[LayerSpec]:
    """Read a layer-list file: the shapes of a model's layers, for ``dcia plan`` without ONNX.

    TOML (``[[layers]]`` tables) or JSON (``{"layers": [...]}``); each layer has ``kind``
    (dense, elementwise, embedding), ``n_in``, ``n_out`` and optionally ``macs``::

        [[layers]]
        kind = "dense"
        n_in = 64
        n_out = 16
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ModelImportError(f"model file {path} not found") from None
    except OSError as e:
        raise ModelImportError(f"cannot read model file {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ModelImportError(f"{path.name}: a layer list is a text file (TOML or JSON)") from None
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        raise ModelImportError(f"{path.name}: not a valid layer list: {e}") from None
    raw = data.get("layers") if isinstance(data, dict) else None
    if not isinstance(raw, list) or not raw:
        raise ModelImportError(f"{path.name}: a layer list needs a non-empty 'layers' array")
    layers = []
    for i, entry in enumerate(raw):
        try:
            layers.append(LayerSpec(**entry))
        except (TypeError, ModelImportError) as e:
            raise ModelImportError(
                f"{path.name}: layer {i}: {e}; each layer has kind, n_in, n_out and optionally macs"
            ) from None
    try:
        check_chain(layers)
    except ParameterRangeError as e:
        raise ModelImportError(f"{path.name}: {e}") from None
    return layers


@dataclass(frozen=True)
class Constraints:
    """What a plan must respect besides the nodes' capabilities."""

    min_edge_layers: int = 1
    """The first layers that must run on the edge; 1 keeps the raw input on the edge."""
    forbid: tuple[Forbid, ...] = ()
    max_layers_per_switch: int | None = None
    objective: Objective = Objective.LATENCY

    def __post_init__(self) -> None:
        if self.min_edge_layers < 0:
            raise PlanError(f"the number of edge layers must be 0 or more, not {self.min_edge_layers}")
        if self.max_layers_per_switch is not None and self.max_layers_per_switch < 0:
            raise PlanError(f"the layers per switch must be 0 or more, not {self.max_layers_per_switch}")
        object.__setattr__(self, "objective", Objective(self.objective))

    def why_not(self, node: Capability, index: int, layer: LayerShape) -> str | None:
        """Why ``node`` may not run layer ``index`` (capability or policy), or None."""
        reason = node.can_run(layer)
        if reason is None:
            forbid = next((f for f in self.forbid if f.applies(node, index)), None)
            if forbid is not None:
                reason = f"is forbidden on {node.label} by {forbid.source}"
        return reason

    def max_layers(self, node: Capability) -> int | None:
        """Most consecutive layers one stage may have on ``node`` (None: no limit)."""
        limits = [node.layers_per_pass]
        if node.kind is NodeKind.SWITCH:
            limits.append(self.max_layers_per_switch)
        known = [n for n in limits if n is not None]
        return min(known) if known else None


@dataclass(frozen=True)
class Stage:
    """Layers ``start .. stop - 1`` on one node (none when start == stop)."""

    node: str
    kind: str
    start: int
    stop: int
    compute_s: float

    @property
    def layers(self) -> range:
        return range(self.start, self.stop)


@dataclass(frozen=True)
class Hop:
    """One packet over one link: ``seconds`` in all, of which ``serialization_s`` on the wire."""

    src: str
    dst: str
    elems: int
    nbytes: int
    seconds: float
    serialization_s: float


@dataclass(frozen=True)
class Plan:
    """Stages in path order, the forward hops between them and the answer's hops back.

    ``hops[k]`` leads from ``stages[k]`` to ``stages[k + 1]``; the last stage computes the
    model's last layer and sends ``answer`` back to the edge.
    """

    route: str
    objective: Objective
    stages: tuple[Stage, ...]
    hops: tuple[Hop, ...]
    answer: tuple[Hop, ...] = field(default=())

    @property
    def latency_s(self) -> float:
        """Predicted end-to-end time of one request."""
        return (
            sum(s.compute_s for s in self.stages)
            + sum(h.seconds for h in self.hops)
            + sum(h.seconds for h in self.answer)
        )

    @property
    def bottleneck_s(self) -> float:
        """The slowest stage or link serialization: 1 / bottleneck_s requests per second."""
        return max(
            [s.compute_s for s in self.stages]
            + [h.serialization_s for h in (*self.hops, *self.answer)]
        )

    @property
    def assignment(self) -> tuple[str, ...]:
        """The node that runs each layer."""
        return tuple(s.node for s in self.stages for _ in s.layers)

    def to_dict(self) -> dict[str, Any]:
        return {
            "route": self.route,
            "objective": str(self.objective),
            "latency_s": self.latency_s,
            "bottleneck_s": self.bottleneck_s,
            "assignment": list(self.assignment),
            "stages": [
                {"node": s.node, "kind": s.kind, "layers": list(s.layers), "compute_s": s.compute_s}
                for s in self.stages
            ],
            "hops": [vars(h) for h in self.hops],
            "answer": [vars(h) for h in self.answer],
        }


def plan(layers: Sequence[LayerShape], route: Route, constraints: Constraints = Constraints()) -> Plan:
    """The best plan for ``layers`` on ``route`` under ``constraints``; PlanError if none exists."""
    search = _Search(layers, route, constraints)
    limit = math.inf
    if constraints.objective is Objective.THROUGHPUT:
        limit = search.min_bottleneck() * (1 + 1e-9)
    best = evaluate(layers, route, search.best_assignment(limit), constraints)
    log.info("plan on %s: %s, latency %.3f ms", route, best.assignment, best.latency_s * 1e3)
    return best


def evaluate(
    layers: Sequence[LayerShape], route: Route, positions: Sequence[int], constraints: Constraints = Constraints()
) -> Plan:
    """The plan that runs layer ``i`` on ``route.nodes[positions[i]]``, checked against everything.

    Raises PlanError when the assignment breaks a rule: path order, capability, policy,
    layers per switch, the edge's layers, or the packet size.
    """
    if len(positions) != len(layers) or not layers:
        raise PlanError(f"an assignment needs one position per layer ({len(layers)}), got {len(positions)}")
    if any(not 0 <= p < len(route.nodes) for p in positions):
        raise PlanError(f"positions must lie on the path (0..{len(route.nodes) - 1}), got {list(positions)}")
    if any(a > b for a, b in zip(positions, positions[1:])):
        raise PlanError(f"layers must follow the path order, got positions {list(positions)}")
    if any(p != 0 for p in positions[: constraints.min_edge_layers]) or constraints.min_edge_layers > len(layers):
        raise PlanError(f"the first {constraints.min_edge_layers} layer(s) must run on the edge")
    geometry = _Geometry(layers, route)
    stages, hops = [], []
    last = positions[-1]
    for p in range(last + 1):
        node = route.nodes[p]
        run = [i for i, q in enumerate(positions) if q == p]
        start = run[0] if run else sum(1 for q in positions if q < p)
        stop = start + len(run)
        for i in run:
            reason = constraints.why_not(node, i, layers[i])
            if reason:
                raise PlanError(f"layer {i} {reason}")
        cap = constraints.max_layers(node)
        if cap is not None and len(run) > cap:
            raise PlanError(f"{node.label} may run at most {cap} consecutive layers, got {len(run)}")
        stages.append(Stage(node.name, str(node.kind), start, stop, geometry.stage_seconds(p, start, stop)))
        if p < last:
            if geometry.elems(stop) > MAX_WIRE_ELEMS:
                raise PlanError(
                    f"the tensor after layer {stop - 1} has {geometry.elems(stop)} elements, "
                    f"more than a packet carries ({MAX_WIRE_ELEMS})"
                )
            hops.append(geometry.forward(p, stop))
    return Plan(route.name, constraints.objective, tuple(stages), tuple(hops), geometry.answer(last))


class _Geometry:
    """Stage and hop times of one model on one route: the one cost model search and evaluate share."""

    def __init__(self, layers: Sequence[LayerShape], route: Route) -> None:
        self.layers, self.route = layers, route

    def elems(self, done: int) -> int:
        """Size of the tensor after the first ``done`` layers."""
        return self.layers[0].n_in if done == 0 else self.layers[done - 1].n_out

    def stage_seconds(self, p: int, start: int, stop: int) -> float:
        node = self.route.nodes[p]
        return sum((node.layer_seconds(self.layers[i]) for i in range(start, stop)), 0.0)

    def _hop(self, k: int, src: int, dst: int, elems: int) -> Hop:
        link, nbytes = self.route.links[k], packet_bytes(elems)
        return Hop(
            self.route.nodes[src].name, self.route.nodes[dst].name, elems, nbytes,
            link.transfer_seconds(nbytes), link.serialization_seconds(nbytes),
        )

    def forward(self, p: int, done: int) -> Hop:
        """The tensor after ``done`` layers going from position ``p`` to ``p + 1``."""
        return self._hop(p, p, p + 1, self.elems(done))

    def answer(self, last: int) -> tuple[Hop, ...]:
        """The result going back from position ``last`` to the edge."""
        out = self.elems(len(self.layers))
        return tuple(self._hop(k, k + 1, k, out) for k in reversed(range(last)))


@dataclass(frozen=True)
class _Step:
    """What one stage, hop or answer adds to a plan: time of one request, and a bottleneck candidate."""

    latency: float
    bottleneck: float


# The stages chosen so far, newest first: ((position, start, stop), older stages) or None.
_Chain = tuple[tuple[int, int, int], "_Chain"] | None


class _Search:
    """The dynamic program over (path position, layers done)."""

    def __init__(self, layers: Sequence[LayerShape], route: Route, constraints: Constraints) -> None:
        self.layers, self.route, self.constraints = layers, route, constraints
        self.geometry = _Geometry(layers, route)
        self.allowed = [
            [constraints.why_not(node, i, layer) is None for i, layer in enumerate(layers)]
            for node in route.nodes
        ]
        self._reached = {0}
        self._check_feasible_layers()

    def min_bottleneck(self) -> float:
        """The smallest bottleneck any plan achieves."""
        value, _ = self._program(lambda total, step: max(total, step.bottleneck), math.inf)
        return value

    def best_assignment(self, limit: float = math.inf) -> list[int]:
        """Layer positions of the lowest-latency plan whose every step's bottleneck is within ``limit``."""
        _, chain = self._program(lambda total, step: total + step.latency, limit)
        positions: list[int] = []
        while chain is not None:
            (p, start, stop), chain = chain
            positions[:0] = [p] * (stop - start)
        return positions

    def _program(self, extend: Callable[[float, _Step], float], limit: float) -> tuple[float, _Chain]:
        """The best value ``extend`` accumulates over complete plans, and that plan's stages.

        ``best[p, done]`` holds the best value of a plan prefix whose tensor arrives at
        position ``p`` with ``done`` layers computed; position p then computes a run of
        layers and either answers (after the last layer) or passes the tensor on.
        """
        n, last, g = len(self.layers), len(self.route.nodes) - 1, self.geometry
        best: dict[tuple[int, int], tuple[float, _Chain]] = {(0, 0): (0.0, None)}
        end: tuple[float, _Chain] = (math.inf, None)
        for p in range(last + 1):
            for done in range(n):
                if (p, done) not in best:
                    continue
                here, chain = best[p, done]
                for stop in self._stops(p, done):
                    compute = g.stage_seconds(p, done, stop)
                    value = _extend(extend, here, _Step(compute, compute), limit)
                    if math.isinf(value):
                        continue
                    self._reached.add(stop)
                    stages = ((p, done, stop), chain)
                    if stop == n:
                        answer = g.answer(p)
                        step = _Step(sum(h.seconds for h in answer), max((h.serialization_s for h in answer), default=0.0))
                        total = _extend(extend, value, step, limit)
                        if total < end[0]:
                            end = (total, stages)
                    elif p < last and g.elems(stop) <= MAX_WIRE_ELEMS:
                        hop = g.forward(p, stop)
                        value = _extend(extend, value, _Step(hop.seconds, hop.serialization_s), limit)
                        if value < best.get((p + 1, stop), (math.inf, None))[0]:
                            best[p + 1, stop] = (value, stages)
        if math.isinf(end[0]):
            raise PlanError(self._diagnose())
        return end

    def _stops(self, p: int, done: int) -> Iterator[int]:
        """Where a stage at position ``p`` starting at layer ``done`` may end (exclusive)."""
        cap = self.constraints.max_layers(self.route.nodes[p])
        limit = len(self.layers) if cap is None else min(len(self.layers), done + cap)
        first = max(done, self.constraints.min_edge_layers) if p == 0 else done
        stop = done
        while stop < first:
            if stop == limit or not self.allowed[p][stop]:
                return
            stop += 1
        yield stop
        while stop < limit and self.allowed[p][stop]:
            stop += 1
            yield stop

    def _check_feasible_layers(self) -> None:
        """Raise PlanError naming the first layer no node may run, with every node's reason."""
        c, route = self.constraints, self.route
        if not self.layers:
            raise PlanError("the model has no layers")
        edge = route.nodes[0]
        if c.min_edge_layers > len(self.layers):
            raise PlanError(
                f"the first {c.min_edge_layers} layers must run on the edge but the model has only {len(self.layers)}"
            )
        cap = c.max_layers(edge)
        if cap is not None and c.min_edge_layers > cap:
            raise PlanError(f"the first {c.min_edge_layers} layers must run on {edge.label}, which runs at most {cap}")
        for i in range(c.min_edge_layers):
            reason = c.why_not(edge, i, self.layers[i])
            if reason:
                why = "the raw input never leaves the edge" if c.min_edge_layers == 1 else (
                    f"the first {c.min_edge_layers} layers stay on the edge")
                raise PlanError(f"layer {i} must run on {edge.label} ({why}) but it {reason}")
        for i, layer in enumerate(self.layers):
            if not any(row[i] for row in self.allowed):
                same: dict[tuple[str, str], list[Capability]] = {}
                for node in route.nodes:
                    why = str(c.why_not(node, i, layer)).replace(node.label, "{}")
                    same.setdefault((node.kind, why), []).append(node)
                reasons = "; ".join(
                    "it " + why.format(nodes[0].label)
                    + (f" (likewise {', '.join(n.name for n in nodes[1:])})" if nodes[1:] else "")
                    for (_, why), nodes in same.items()
                )
                raise PlanError(
                    f"layer {i} ({layer.kind} {layer.n_in}→{layer.n_out}) cannot run on any node "
                    f"of path {route.name} ({route}): {reasons}"
                )

    def _diagnose(self) -> str:
        """Why no plan exists although every layer has some node that may run it."""
        stuck = max(self._reached)
        able = [n.name for n, row in zip(self.route.nodes, self.allowed) if row[stuck]]
        caps = {n.name: self.constraints.max_layers(n) for n in self.route.nodes if self.constraints.max_layers(n)}
        limits = ", ".join(f"{k} ≤ {v}" for k, v in caps.items())
        done = f"after layers 0..{stuck - 1}" if stuck else "from the edge on"
        return (
            f"no plan on path {self.route.name} ({self.route}): {done}, no node further along the "
            f"path can run layer {stuck} (it may run on {', '.join(able)}; layers per stage: "
            f"{limits or 'unlimited'}; packets carry at most {MAX_WIRE_ELEMS} elements)"
        )


def _extend(extend: Callable[[float, _Step], float], value: float, step: _Step, limit: float) -> float:
    return math.inf if step.bottleneck > limit else extend(value, step)
