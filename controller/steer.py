"""``dcia steer``: the path selector (the CATS framework's C-PS) as a controller loop.

Every ``interval`` seconds it reads the network's live metrics (controller.observe: each
switch over P4Runtime, each host's metric agent), marks a node dead after ``dead_after``
rounds in a row without a reading (P4Runtime stream loss, a missed heartbeat), plans the
model on every path of the topology whose nodes are alive with the live records (the
exact planner, controller.planner), and decides:

- ``deploy``: nothing of the model is in the network yet: the best plan goes in;
- ``failover``: the deployed plan's path has a dead node: the best plan on a live path
  goes in at once;
- ``enforce``: the deployed plan (read back from the switches) breaks the topology's
  policy (controller.policy): the best plan that keeps it goes in at once;
- ``move``: a plan predicted ``min_gain`` (relative) faster than the deployed one under
  the same live metrics has been the best for ``hold_rounds`` rounds in a row: it goes in
  (the hysteresis that keeps noise from making the plan flap);
- ``restore``: the nodes of the plan a failover left are all alive again and it is the
  best plan (by any margin): traffic returns to it;
- ``wait``: a better plan, not yet for ``hold_rounds`` rounds; ``keep``: nothing better
  by ``min_gain``; ``no-path``: no live path can run the model (the edge and the cloud
  keep answering whatever reaches them);
- ``rebalance``: with ``--spread`` (paths that part at a switch, each to its own cloud:
  controller.deployment.spread), the weights of the clouds follow their capacity left,
  ``1 - load``, out of SPREAD_TOTAL; a change of SPREAD_STEP or more in any weight is
  written (smaller ones are noise).

A change is one transactional deployment (controller.session.apply): the new plan's
switches get their share, every other live switch loses the model. Every decision is
one JSON line (``Decision.to_json``): the round, the action, its reason, the metrics that
changed since the deployed plan was made, the old and the new plan, the predicted gain,
and each path's predicted latency.

    dcia steer --topology topologies/redundant.toml --model run/model.json
    dcia steer --topology topologies/redundant.toml --model run/model.json --once --explain

``--once`` runs one round and changes nothing; ``--explain`` prints it as tables as well.
The edge agent computes a fixed number of layers (``--edge-layers``), so every plan gives
the edge exactly those.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

from controller import session
from controller.deployment import Deployment, SwitchAssignment, endpoint_of, from_plan
from controller.observe import Snapshot, observe
from controller.planner import Constraints, Forbid, Objective, Plan, evaluate, plan
from controller.pki import add_tls_argument, apply_tls_argument
from controller.topology import Topology, check_tls_files, load_topology
from dcia.capability import Capability
from dcia.errors import DciaError, IntegrityError, PlanError, PolicyError
from dcia.layers import Layer
from dcia.metrics import path_rtt_key

log = logging.getLogger(__name__)

SPREAD_TOTAL = 16
"""The weights of a spread add up to about this (the selector's groups hold 64 members)."""
SPREAD_STEP = 2
"""The smallest change of a weight that is written."""

WATCHED_FIELDS = ("load", "layer_time_s", "delay_s", "accelerator_available", "layers_per_s")
"""The record fields whose change a decision reports."""


@dataclass(frozen=True)
class SteerConfig:
    interval_s: float = 1.0
    """Seconds between two readings of the network."""
    min_gain: float = 0.2
    """A plan must be predicted this much faster (relative) to replace the deployed one."""
    hold_rounds: int = 2
    """Rounds in a row a better plan must win before it replaces the deployed one."""
    dead_after: int = 2
    """Rounds in a row without a reading after which a node is dead."""

    def __post_init__(self) -> None:
        if not self.interval_s > 0:
            raise DciaError(f"the interval must be a positive number of seconds, not {self.interval_s}")
        if not 0 <= self.min_gain < 1:
            raise DciaError(f"the minimum gain is a fraction in 0..1, not {self.min_gain}")
        if self.hold_rounds < 1 or self.dead_after < 1:
            raise DciaError("hold rounds and dead-after rounds must be 1 or more")


@dataclass(frozen=True)
class Decision:
    """One round of the path selector, as logged."""

    round: int
    action: str
    reason: str
    old: Plan | None
    new: Plan | None
    predicted_gain: float | None = None
    changed: dict[str, dict[str, list]] = field(default_factory=dict)
    """Node -> field -> [value when the deployed plan was made, value now]."""
    dead: tuple[str, ...] = ()
    candidates: dict[str, float | str] = field(default_factory=dict)
    """Path -> predicted latency of its best plan (s), or why it has none."""
    weights: dict[str, int] | None = None
    """With a spread: path -> weight of its cloud in the new deployment."""
    round_trips: dict[str, float] = field(default_factory=dict)
    """Path -> the round trip its probes measured (s), used in place of nominal delays."""

    @property
    def changes_deployment(self) -> bool:
        return self.action in ("deploy", "failover", "enforce", "move", "restore", "rebalance")

    def to_dict(self) -> dict[str, Any]:
        def brief(p: Plan | None):
            if p is None:
                return None
            return {"route": p.route, "assignment": list(p.assignment), "latency_s": p.latency_s}

        return {"time": time.time(), "round": self.round, "action": self.action,
                "reason": self.reason, "old": brief(self.old), "new": brief(self.new),
                "predicted_gain": self.predicted_gain, "changed": self.changed,
                "dead": list(self.dead), "candidates": self.candidates,
                "weights": self.weights, "round_trips": self.round_trips}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


class PathSelector:
    """The decision logic, without I/O: feed it each round's records, get a Decision."""

    def __init__(self, topology: Topology, layers: Sequence[Layer], constraints: Constraints,
                 config: SteerConfig = SteerConfig(), current: Plan | None = None,
                 spread: Sequence[str] = (), model_id: int | None = None):
        self.topology, self.layers = topology, list(layers)
        self.spread = tuple(spread)
        self.weights: dict[str, int] | None = None
        """The spread's weights deployed now."""
        self.constraints, self.config = constraints, config
        self.model_id = model_id
        """Whose policy rules apply (None: every rule of the topology's policy)."""
        self.current = current
        self.basis: dict[str, Capability] = {}
        """The records the deployed plan was made with."""
        self.missed: dict[str, int] = {}
        self.streak: tuple[tuple, int] = ((), 0)
        self.rounds = 0
        self.round_trips: dict[str, float] = {}
        """This round's measured round trip per path."""
        self.left: Plan | None = None
        """The plan the last failover left, until traffic returns to it."""

    def dead(self) -> tuple[str, ...]:
        return tuple(n for n, k in self.missed.items() if k >= self.config.dead_after)

    def decide(self, records: Mapping[str, Capability | None],
               round_trips: Mapping[str, float] | None = None) -> Decision:
        """``records``: node -> its live record, or None when it could not be read this
        round; nodes left out are not monitored (their topology record stands).
        ``round_trips``: path -> its measured round trip (path probes, ``path_round_trips``),
        which replaces the topology's nominal link delays of that path."""
        self.rounds += 1
        self.round_trips = dict(round_trips or {})
        for node, record in records.items():
            self.missed[node] = 0 if record is not None else self.missed.get(node, 0) + 1
        dead = self.dead()
        live = self.topology
        for record in records.values():
            if record is not None:
                live = live.with_capability(record)
        candidates: dict[str, float | str] = {}
        plans: dict[str, Plan] = {}
        for name, nodes in self.topology.paths.items():
            gone = [n for n in nodes if n in dead]
            if gone:
                candidates[name] = f"dead: {', '.join(gone)}"
                continue
            try:
                route = self._route(live, name)
                plans[name] = plan(self.layers, route, self._rules(route))
                candidates[name] = plans[name].latency_s
            except PlanError as exc:
                candidates[name] = f"no plan: {exc}"
        best = min(plans.values(), key=self._cost) if plans else None
        changed = self._changed(live)
        weights = self._weights(live, dead)

        def decision(action: str, reason: str, new: Plan | None = None, gain: float | None = None):
            return Decision(self.rounds, action, reason, self.current, new, gain, changed, dead,
                            candidates, weights, dict(self.round_trips))

        if best is None:
            self.streak = ((), 0)
            return decision("no-path", "no live path can run the model: "
                            + "; ".join(f"{k}: {v}" for k, v in candidates.items()))
        if self.current is None:
            return self._commit(decision("deploy", "nothing of the model is deployed", best), live)
        gone = [n for n in self.topology.paths[self.current.route] if n in dead]
        if gone:
            self.left = self.left or self.current
            return self._commit(decision(
                "failover", f"{', '.join(gone)} on path {self.current.route} dead "
                f"({self.config.dead_after} rounds without a reading)", best), live)
        try:
            self.topology.policy.check(self.current.assignment,
                                       self.topology.route(self.current.route), self.model_id)
        except PolicyError as exc:
            return self._commit(decision("enforce", f"the deployed plan breaks the policy: {exc}",
                                         best), live)
        now = self._reevaluate(live)
        if now is None:
            return self._commit(decision("failover", "the deployed plan no longer fits the "
                                         "live records of its nodes", best), live)
        if self._key(best) == self._key(now):
            self.streak = ((), 0)
            if self._moved(weights):
                return self._commit(decision("rebalance", f"cloud weights {self.weights} → "
                                             f"{weights}", now, 0.0), live)
            return decision("keep", "the deployed plan is the best", gain=0.0)
        gain = (self._cost(now) - self._cost(best)) / self._cost(now)
        if self.left is not None and best.route == self.left.route:
            self.left = None
            return self._commit(decision("restore", f"path {best.route} is alive again and "
                                         f"{gain:.1%} better", best, gain), live)
        if gain < self.config.min_gain:
            self.streak = ((), 0)
            return decision("keep", f"best plan only {gain:.1%} better (needs "
                            f"{self.config.min_gain:.0%})", best, gain)
        key = self._key(best)
        count = self.streak[1] + 1 if self.streak[0] == key else 1
        self.streak = (key, count)
        if count < self.config.hold_rounds:
            return decision("wait", f"plan {gain:.1%} better, round {count} of "
                            f"{self.config.hold_rounds}", best, gain)
        return self._commit(decision("move", f"plan {gain:.1%} better for {count} rounds", best,
                                     gain), live)

    def _weights(self, live: Topology, dead: Sequence[str]) -> dict[str, int] | None:
        """The spread paths' weights from their clouds' capacity left (None: under two alive)."""
        alive = [p for p in self.spread if not any(n in dead for n in self.topology.paths[p])]
        if len(alive) < 2:
            return None
        left = {p: max(0.05, 1 - live.capability(self.topology.paths[p][-1]).load) for p in alive}
        total = sum(left.values())
        return {p: max(1, round(SPREAD_TOTAL * c / total)) for p, c in left.items()}

    def _moved(self, weights: dict[str, int] | None) -> bool:
        if weights is None or self.weights is None:
            return weights != self.weights
        if set(weights) != set(self.weights):
            return True
        return any(abs(weights[p] - self.weights[p]) >= SPREAD_STEP for p in weights)

    def _commit(self, d: Decision, live: Topology) -> Decision:
        self.weights = d.weights
        self.current, self.streak = d.new, ((), 0)
        self.basis = {n: live.capability(n) for n in live.node_names}
        return d

    def _route(self, live: Topology, name: str):
        """Path ``name`` of the live topology, with its measured round trip if there is one."""
        route = live.route(name)
        if name in self.round_trips:
            route = route.with_round_trip(self.round_trips[name])
        return route

    def _rules(self, route) -> Constraints:
        """The loop's constraints with the topology's policy for ``route``."""
        return self.topology.policy.constraints(self.constraints, route, self.model_id,
                                                len(self.layers))

    def _cost(self, p: Plan) -> float:
        if self.constraints.objective is Objective.THROUGHPUT:
            return p.bottleneck_s
        return p.latency_s

    @staticmethod
    def _key(p: Plan) -> tuple:
        return p.route, p.assignment

    def _reevaluate(self, live: Topology) -> Plan | None:
        """The deployed plan's prediction under the live records (None: it breaks a rule)."""
        route = self._route(live, self.current.route)
        index = {n.name: i for i, n in enumerate(route.nodes)}
        try:
            return evaluate(self.layers, route, [index[n] for n in self.current.assignment],
                            self._rules(route))
        except (PlanError, KeyError):
            return None

    def _changed(self, live: Topology) -> dict[str, dict[str, list]]:
        out: dict[str, dict[str, list]] = {}
        for name, old in self.basis.items():
            new = live.capability(name)
            diff = {f: [getattr(old, f), getattr(new, f)] for f in WATCHED_FIELDS
                    if getattr(old, f) != getattr(new, f)}
            if diff:
                out[name] = diff
        return out


def records_of(topology: Topology, snap: Snapshot) -> dict[str, Capability | None]:
    """Each monitored node's live record this round (None: it did not answer). A switch
    that answers but has no rates yet (no pipeline, or no earlier reading) is alive with
    its topology record."""
    out: dict[str, Capability | None] = {}
    for status, _, record in snap.switches:
        if record is None and not status.unreachable:
            record = topology.capability(status.name)
        out[status.name] = record
    for reading, _ in snap.hosts:
        record = reading.record
        if record is not None:  # the agent's record, under the topology's name for the node
            nominal = topology.capability(reading.name)
            record = _merge(nominal, record)
        out[reading.name] = record
    return out


def path_round_trips(topology: Topology, snap: Snapshot) -> dict[str, float]:
    """Each path's round trip as its edge agent's probes measured it (``--path-probes``:
    the counter ``path_rtt_s_<cloud address>``); paths without a measurement are left out."""
    out = {}
    for reading, _ in snap.hosts:
        for name, nodes in topology.paths.items():
            if nodes[0] != reading.name:
                continue
            rtt = reading.counters.get(path_rtt_key(topology.host_address(nodes[-1], name)))
            if rtt is not None:
                out[name] = float(rtt)
    return out


def _merge(nominal: Capability, agent: Capability) -> Capability:
    """The topology's record of a host with what its agent measured (load, time per
    layer, delay): the agent knows its state, the topology what the node may do."""
    fields_ = {"load": agent.load, "delay_s": agent.delay_s,
               "accelerator_available": agent.accelerator_available}
    if agent.layer_time_s:
        fields_["layer_time_s"] = agent.layer_time_s
    return replace(nominal, **fields_)


def deployed_plan(topology: Topology, layers: Sequence[Layer], constraints: Constraints,
                  snap: Snapshot, model_id: int, version: int) -> Plan | None:
    """The plan the switches hold now, read back: the edge's layers, each switch's, the
    rest on the cloud of the path that contains every holding switch (None: no switch
    holds the model, or what they hold is not one path's plan)."""
    held = {st.name: st.models.get((model_id, version), []) for st, _, _ in snap.switches
            if not st.error}
    holding = {n: ls for n, ls in held.items() if ls}
    if not holding:
        return None
    edge_layers = constraints.min_edge_layers
    for name, nodes in topology.paths.items():
        if not set(holding) <= set(nodes):
            continue
        positions = []
        for i in range(len(layers)):
            if i < edge_layers:
                positions.append(0)
            else:
                at = [p for p, n in enumerate(nodes) if i in holding.get(n, [])]
                positions.append(at[0] if at else len(nodes) - 1)
        try:
            return evaluate(layers, topology.route(name), positions, constraints)
        except PlanError:
            continue
    return None


def steering_deployment(topology: Topology, new: Plan, layers: Sequence[Layer], *,
                        model_id: int, version: int, dead: Sequence[str] = (),
                        weights: Mapping[str, int] | None = None) -> Deployment:
    """``new``'s deployment (spread by ``weights`` when its path is one of them), and the
    model removed from every other live switch."""
    spread_over = weights if weights and new.route in weights else None
    target = from_plan(new, layers, topology, model_id=model_id, version=version,
                       spread_over=spread_over)
    on_path = {a.endpoint.name for a in target.switches}
    others = tuple(SwitchAssignment(endpoint_of(sw)) for name, sw in topology.switches.items()
                   if name not in on_path and name not in dead)
    return Deployment(model_id, version, target.switches + others)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--topology", required=True, type=Path, help="topology TOML file")
    add_tls_argument(parser)
    parser.add_argument("--model", required=True, type=Path, help="saved quantized model (.json)")
    parser.add_argument("--model-id", type=int, help="model id on the wire (default: the model's)")
    parser.add_argument("--version", type=int, help="model version (default: the model's)")
    parser.add_argument("--edge-layers", type=int, default=1, metavar="N",
                        help="layers the edge agent computes (every plan gives it exactly these)")
    parser.add_argument("--objective", choices=[str(o) for o in Objective],
                        default=str(Objective.LATENCY))
    parser.add_argument("--max-layers-per-switch", type=int, metavar="N")
    parser.add_argument("--interval", type=float, default=SteerConfig.interval_s,
                        help="seconds between readings (default %(default)s)")
    parser.add_argument("--min-gain", type=float, default=SteerConfig.min_gain,
                        help="relative predicted gain a new plan needs (default %(default)s)")
    parser.add_argument("--hold-rounds", type=int, default=SteerConfig.hold_rounds,
                        help="rounds in a row a better plan must win (default %(default)s)")
    parser.add_argument("--dead-after", type=int, default=SteerConfig.dead_after,
                        help="rounds without a reading before a node is dead (default %(default)s)")
    parser.add_argument("--spread", metavar="PATH,PATH[,...]",
                        help="spread the model over these paths' clouds, weighted by their "
                             "capacity left (the paths must part at a switch)")
    parser.add_argument("--rounds", type=int, help="stop after N rounds (default: until Ctrl-C)")
    parser.add_argument("--log", type=Path, help="append the decisions here (default: stdout)")
    parser.add_argument("--once", action="store_true", help="one round; change nothing")
    parser.add_argument("--explain", action="store_true",
                        help="also print each round as tables (metrics, paths, decision)")


def constraints_for(args: argparse.Namespace, n_layers: int) -> Constraints:
    k = args.edge_layers
    if not 0 <= k <= n_layers:
        raise DciaError(f"--edge-layers must be in 0..{n_layers}, not {k}")
    later = frozenset(range(k, n_layers))
    return Constraints(min_edge_layers=k, objective=Objective(args.objective),
                       max_layers_per_switch=args.max_layers_per_switch,
                       forbid=(Forbid("edge", later),) if later else ())


def run(args: argparse.Namespace, console: Console) -> int:
    from dcia.model import QuantizedModel

    topology = apply_tls_argument(load_topology(args.topology), args.tls)
    check_tls_files(topology)
    if topology.security.require_signed:
        raise IntegrityError(f"topology {topology.name} requires signed deployments ([security] "
                             "require_signed), and dcia steer re-plans at run time: deploy signed "
                             "manifests with dcia deploy --manifest instead")
    config = SteerConfig(args.interval, args.min_gain, args.hold_rounds, args.dead_after)
    model = QuantizedModel.load(args.model)
    model_id = model.model_id if args.model_id is None else args.model_id
    version = model.version if args.version is None else args.version
    constraints = constraints_for(args, len(model.layers))
    spread = tuple(p for p in (args.spread or "").split(",") if p)
    if spread:
        from controller.deployment import spread as check_spread

        check_spread(topology, dict.fromkeys(spread, 1), model_id=model_id, layers=range(0))
    out: TextIO = args.log.open("a") if args.log else console.file
    try:
        return asyncio.run(_loop(topology, model.layers, constraints, config, model_id, version,
                                 spread, args, console, out))
    except KeyboardInterrupt:
        return 0
    finally:
        if args.log:
            out.close()


async def _loop(topology, layers, constraints, config, model_id, version, spread, args,
                console, out) -> int:
    snap, previous = await observe(topology, config.interval_s)
    selector = PathSelector(topology, layers, constraints, config,
                            deployed_plan(topology, layers, constraints, snap, model_id, version),
                            spread, model_id)
    rounds = 0
    while True:
        rounds += 1
        decision = selector.decide(records_of(topology, snap), path_round_trips(topology, snap))
        if decision.changes_deployment and not args.once:
            try:
                await session.apply(steering_deployment(topology, decision.new, layers,
                                                        model_id=model_id, version=version,
                                                        dead=decision.dead,
                                                        weights=decision.weights))
            except DciaError as exc:  # the transaction rolled back: try again next round
                selector.current, selector.weights = decision.old, None
                decision = replace(decision, action="failed",
                                   reason=f"{decision.action} failed: {exc}")
        out.write(decision.to_json() + "\n")
        out.flush()
        if args.explain:
            console.print(explain(topology, snap, decision))
        if args.once or (args.rounds and rounds >= args.rounds):
            return 0
        snap, previous = await observe(topology, config.interval_s, previous)


def explain(topology: Topology, snap: Snapshot, d: Decision) -> Table:
    """One round as a table: each path's prediction, the decision and why."""
    table = Table(title=f"steering round {d.round}: {d.action} ({d.reason})")
    table.add_column("path")
    table.add_column("nodes")
    table.add_column("predicted", justify="right")
    table.add_column("plan")
    for name, nodes in topology.paths.items():
        value = d.candidates.get(name, "-")
        shown = f"{value * 1e3:.3f} ms" if isinstance(value, float) else str(value)
        marks = []
        if d.old is not None and d.old.route == name:
            marks.append("deployed: " + ", ".join(f"{s.node} {list(s.layers)}" for s in d.old.stages if s.layers))
        if d.new is not None and d.new.route == name:
            marks.append("best: " + ", ".join(f"{s.node} {list(s.layers)}" for s in d.new.stages if s.layers))
        table.add_row(name, " → ".join(nodes), shown, "; ".join(marks))
    for name, rtt in d.round_trips.items():
        table.add_row(name, "measured round trip (path probes)", f"{rtt * 1e3:.3f} ms", "")
    for node, diff in d.changed.items():
        table.add_row("", f"{node} changed", "", ", ".join(f"{k} {a} → {b}" for k, (a, b) in diff.items()))
    for status, _, _ in snap.switches:
        if status.error:
            table.add_row("", f"{status.name} unreadable", "", status.error)
    return table
