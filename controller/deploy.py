"""Deploy a model's in-network stages to switches as one transaction.

For each switch the deployment knows the *desired* entries of one (model id, version):
its layers' parameters, the versions table and steering. Deploying

1. connects to every switch and checks it runs the expected pipeline (controller.p4rt),
2. snapshots the entries of that model on each switch,
3. writes the difference (inserts, modifies, deletes) in batches, parameter tables
   before the `layers` entry that activates a layer,
4. reads everything back and compares it with what it wanted,

and on any failure restores every switch it touched to its snapshot, so no switch is left
half-configured. Undeploying is deploying nothing for that (model, version).

While a switch holds a layer only partly (between two writes), it forwards that
model's packets unchanged (p4src/dcia.p4: `incomplete`): a deployment under way costs
latency, never a request.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

import finsy as fy
from finsy.proto import p4r

from controller import entries as E
from controller.p4rt import (
    DEFAULT_BATCH,
    PushPolicy,
    SwitchEndpoint,
    connect,
    endpoint_of,
    write_batched,
)
from controller.planner import Plan
from controller.routing import host_interface
from controller.topology import Topology
from dcia.artifacts import Pipeline
from dcia.errors import DciaError
from dcia.layers import Layer

log = logging.getLogger(__name__)

MODEL_TABLES = (E.T_LAYERS, E.T_EMBEDDINGS, E.T_VERSIONS, E.T_STEERING,
                *(E.dense_table(j) for j in range(16)))
ACTIVATING_TABLES = (E.T_LAYERS, E.T_VERSIONS)
"""Entries that make a switch use a layer: written after, removed before, the others."""


class DeploymentError(DciaError):
    """A deployment failed; every switch was restored (or the message says which was not)."""


@dataclass(frozen=True)
class SwitchAssignment:
    """What one switch holds of a model: consecutive layers and steering entries."""

    endpoint: SwitchEndpoint
    layers: dict[int, Layer] = field(default_factory=dict)
    steering: tuple[fy.P4TableEntry, ...] = ()


@dataclass(frozen=True)
class Deployment:
    model_id: int
    version: int
    switches: tuple[SwitchAssignment, ...]


@dataclass
class SwitchReport:
    name: str
    inserted: int = 0
    modified: int = 0
    deleted: int = 0


def desired_entries(model_id: int, version: int, a: SwitchAssignment) -> list[fy.P4TableEntry]:
    """Every entry the switch must hold for (model_id, version)."""
    if not a.layers and not a.steering:
        return []
    wanted = E.version_entries(model_id, [version]) if a.layers else []
    for index, layer in sorted(a.layers.items()):
        wanted += E.layer_entries(layer, model_id=model_id, version=version, index=index,
                                  more=index + 1 in a.layers)
    return wanted + list(a.steering)


# An entry's identity is its table, match and priority; its value is its action.
Key = tuple[int, bytes, int]


def _identity(entry: p4r.TableEntry) -> Key:
    match = b"".join(sorted(m.SerializeToString(deterministic=True) for m in entry.match))
    return entry.table_id, match, entry.priority


def _field_value(sw: fy.Switch, entry: p4r.TableEntry, name: str) -> int | None:
    try:
        field_id = sw.p4info.tables[entry.table_id].match_fields[name].id
    except KeyError:  # finsy's P4EntityMap finds names by [], not by `in`
        return None
    for m in entry.match:
        if m.field_id == field_id:
            kind = m.WhichOneof("field_match_type")
            return int.from_bytes(getattr(m, kind).value, "big")
    return None  # wildcard


class _SwitchTxn:
    """The state of one switch within a deployment transaction."""

    def __init__(self, sw: fy.Switch, model_id: int, version: int,
                 desired: list[fy.P4TableEntry], batch: int):
        self.sw = sw
        self.batch = batch
        self.model_id, self.version = model_id, version
        self.desired = {_identity(e.encode_entry(sw.p4info)): e.encode_entry(sw.p4info)
                        for e in desired}
        self.snapshot: dict[Key, p4r.TableEntry] = {}
        self.touched = False

    def _in_scope(self, entry: p4r.TableEntry) -> bool:
        """Entries of this (model, version); versions and steering of the model."""
        if _field_value(self.sw, entry, "model_id") != self.model_id:
            return False
        name = self.sw.p4info.tables[entry.table_id].name
        if name == E.T_STEERING:
            return True
        version = _field_value(self.sw, entry, "model_version")
        if name == E.T_VERSIONS:
            return version is None or version == self.version
        return version == self.version

    async def current(self) -> dict[Key, p4r.TableEntry]:
        found = {}
        async for e in self.sw.read([fy.P4TableEntry(t) for t in MODEL_TABLES]):
            msg = e.encode_entry(self.sw.p4info)
            if self._in_scope(msg):
                found[_identity(msg)] = msg
        return found

    async def converge(self, target: dict[Key, p4r.TableEntry]) -> SwitchReport:
        """Make this switch's in-scope entries equal ``target``."""
        have = await self.current()
        activating = {self.sw.p4info.tables[t].id for t in ACTIVATING_TABLES}

        def update(kind, msg):
            return p4r.Update(type=kind, entity=p4r.Entity(table_entry=msg))

        deletes = [k for k in have if k not in target]
        inserts = [k for k in target if k not in have]
        modifies = [k for k in target if k in have and
                    target[k].action.SerializeToString(deterministic=True)
                    != have[k].action.SerializeToString(deterministic=True)]
        first = ([update(p4r.Update.DELETE, have[k]) for k in deletes if k[0] in activating]
                 + [update(p4r.Update.DELETE, have[k]) for k in deletes if k[0] not in activating])
        second = [update(p4r.Update.INSERT, target[k]) for k in inserts if k[0] not in activating]
        second += [update(p4r.Update.MODIFY, target[k]) for k in modifies if k[0] not in activating]
        third = [update(p4r.Update.INSERT, target[k]) for k in inserts if k[0] in activating]
        third += [update(p4r.Update.MODIFY, target[k]) for k in modifies if k[0] in activating]
        for step in (first, second, third):
            if step:
                self.touched = True
                await write_batched(self.sw, step, self.batch)
        return SwitchReport(self.sw.name, len(inserts), len(modifies), len(deletes))

    async def verify(self) -> None:
        have = await self.current()
        if set(have) != set(self.desired):
            missing, extra = len(set(self.desired) - set(have)), len(set(have) - set(self.desired))
            raise DeploymentError(f"switch {self.sw.name}: read-back shows {missing} entries "
                                  f"missing and {extra} unexpected")
        for k, msg in self.desired.items():
            if have[k].action.SerializeToString(deterministic=True) != msg.action.SerializeToString(
                    deterministic=True):
                raise DeploymentError(f"switch {self.sw.name}: read-back differs for an entry "
                                      f"of table {self.sw.p4info.tables[msg.table_id].name}")


async def apply(
    deployment: Deployment,
    pipeline: Pipeline | None = None,
    *,
    push: PushPolicy = PushPolicy.IF_MISSING,
    batch: int = DEFAULT_BATCH,
) -> list[SwitchReport]:
    """Apply ``deployment`` to all its switches, all or nothing. Returns what changed.

    ``batch`` is the number of updates per WriteRequest.
    """
    pipeline = pipeline or Pipeline.default()
    async with contextlib.AsyncExitStack() as stack:
        txns = []
        for a in deployment.switches:  # connecting checks every pipeline before any write
            sw = await stack.enter_async_context(connect(a.endpoint, pipeline, push=push))
            txns.append(_SwitchTxn(sw, deployment.model_id, deployment.version,
                                   desired_entries(deployment.model_id, deployment.version, a),
                                   batch))
        for t in txns:
            t.snapshot = await t.current()
        reports = []
        try:
            for t in txns:
                reports.append(await t.converge(t.desired))
                await t.verify()
        except Exception as exc:
            problems = await _roll_back(txns)
            detail = f"{exc}" if isinstance(exc, DciaError) else f"{type(exc).__name__}: {exc}"
            restored = ("every switch was restored to its previous state" if not problems
                        else "ROLLBACK FAILED on " + "; ".join(problems))
            raise DeploymentError(f"deployment of model {deployment.model_id} "
                                  f"v{deployment.version} failed: {detail}; {restored}") from exc
        return reports


async def _roll_back(txns: Iterable[_SwitchTxn]) -> list[str]:
    problems = []
    for t in txns:
        if not t.touched:
            continue
        try:
            await t.converge(t.snapshot)
            log.warning("switch %s restored to its state before the deployment", t.sw.name)
        except Exception as exc:  # report, and go on restoring the others
            problems.append(f"{t.sw.name} ({exc}); it may hold part of the model, which it "
                            "forwards unchanged: run `dcia undeploy` when it is back")
    return problems


# ------------------------------------------------------------ from a plan and a topology --


def port_towards(topology: Topology, node: str, neighbour: str) -> int:
    """The port of switch ``node`` on its link to ``neighbour``."""
    link = topology.link(node, neighbour)
    return link.a.port if link.a.node == node else link.b.port


def from_plan(plan: Plan, layers: list[Layer], topology: Topology, *,
              model_id: int, version: int) -> Deployment:
    """The deployment that puts ``plan``'s switch stages in place on ``topology``.

    Every switch on the plan's path gets an assignment, the ones without layers an empty
    one (which removes what an earlier plan left there). When a switch computes the last
    layer it also answers the edge (steer_answer back along the path).
    """
    names = [c.name for c in topology.route(plan.route).nodes]
    edge = host_interface(topology, names[0], plan.route)  # its address on this path
    held = {s.node: {i: layers[i] for i in s.layers} for s in plan.stages}
    last = next(s.node for s in reversed(plan.stages) if s.stop > s.start)
    assignments = []
    for position, name in enumerate(names):
        if name not in topology.switches:
            continue
        steering: tuple[fy.P4TableEntry, ...] = ()
        if name == last:
            steering = (E.steering_entry(
                model_id=model_id, layer=len(layers), answer=True, dst_mac=edge.mac,
                dst_ip=edge.ip.split("/")[0],
                port=port_towards(topology, name, names[position - 1])),)
        assignments.append(SwitchAssignment(endpoint_of(topology.switches[name]),
                                            held.get(name, {}), steering))
    return Deployment(model_id, version, tuple(assignments))


# ------------------------------------------------------------------------- status --

STAT_NAMES = ("computed", "pass-through", "version mismatch", "malformed")


@dataclass
class SwitchStatus:
    """What a switch holds and what it counted."""

    name: str
    models: dict[tuple[int, int], list[int]] = field(default_factory=dict)  # -> layer indices
    stats: dict[str, int] = field(default_factory=dict)
    layers_computed: dict[int, int] = field(default_factory=dict)  # layer index -> packets
    error: str | None = None


async def switch_status(endpoint: SwitchEndpoint, pipeline: Pipeline | None = None) -> SwitchStatus:
    """Read a switch's deployed layers and DCIA counters; errors become ``status.error``."""
    status = SwitchStatus(endpoint.name)
    try:
        async with connect(endpoint, pipeline or Pipeline.default(), push=PushPolicy.NEVER) as sw:
            async for e in sw.read(fy.P4TableEntry(E.T_LAYERS)):
                msg = e.encode_entry(sw.p4info)
                key = (_field_value(sw, msg, "model_id"), _field_value(sw, msg, "model_version"))
                status.models.setdefault(key, []).append(_field_value(sw, msg, "layer"))
            for layers in status.models.values():
                layers.sort()
            async for c in sw.read(fy.P4CounterEntry(E.C_STATS)):
                status.stats[STAT_NAMES[c.index]] = c.data.packet_count if c.data else 0
            async for c in sw.read(fy.P4CounterEntry(E.C_LAYER_STATS)):
                if c.data and c.data.packet_count:
                    status.layers_computed[c.index] = c.data.packet_count
    except DciaError as exc:
        status.error = str(exc)
    return status
