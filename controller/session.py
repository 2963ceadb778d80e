"""P4Runtime sessions with the switches: every read and write the controller does.

Built on finsy (https://github.com/byllyfish/finsy), which does arbitration, name↔id
translation, canonical byte strings and the ``+entry``/``-entry``/``~entry`` updates;
this module adds what the controller needs on top:

- ``connect``: a primary session with a switch that runs exactly the expected pipeline
  (checked against the P4Info, pushed only as ``PushPolicy`` allows);
- ``write_batched``: writes in batches, errors naming the switch and the refused update;
- ``apply``: a deployment (controller.deployment) as one transaction over all its
  switches: snapshot, difference, writes in activation order, read-back, and on any
  failure every touched switch restored to its snapshot;
- ``install_routes``: the IPv4 routes of controller.routes;
- ``switch_status``: what a switch holds and counted.

    async with connect(SwitchEndpoint("s1", "127.0.0.1:50001"), Pipeline.default()) as sw:
        await write_batched(sw, [+entry, ...])

A deployment writes parameter tables before the ``layers`` entry that activates a layer
and removes them after it. While a switch holds a layer only partly (between two
writes), it forwards that model's packets unchanged (p4src/dcia.p4: ``incomplete``): a
deployment under way costs latency, never a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum

import finsy as fy
from finsy.p4client import P4ClientError
from finsy.p4entity import P4UpdateList
from finsy.proto import p4i

from controller import entries as E
from controller.deployment import (
    ACTIVATING_TABLES,
    MODEL_TABLES,
    Deployment,
    SwitchEndpoint,
    desired_entries,
    endpoints,
    in_scope,
)
from controller.manifest import EntryRecord, entry_record
from controller.routes import switch_routes
from controller.topology import Topology
from dcia.artifacts import Pipeline
from dcia.errors import DciaError

log = logging.getLogger(__name__)

DEFAULT_BATCH = 256
"""Updates per WriteRequest: BMv2 takes thousands, but smaller batches keep a failure local."""


class SwitchUnreachable(DciaError):
    """No P4Runtime server answers at the switch's address."""


class PipelineMismatch(DciaError):
    """The switch runs another P4 program than the one the controller expects."""


class WriteFailed(DciaError):
    """The switch refused one or more updates."""


class PushPolicy(Enum):
    IF_MISSING = "if-missing"   # push only to a switch without a pipeline
    ALWAYS = "always"           # replace whatever runs there (clears its state)
    NEVER = "never"             # a switch without the pipeline is an error


def _p4info_message(pipeline: Pipeline) -> p4i.P4Info:
    return fy.P4Schema(pipeline.p4info).p4info


def describe_difference(expected: p4i.P4Info, actual: p4i.P4Info) -> str:
    """One line on how two P4Infos differ, by table/action/counter names."""
    parts = []
    for kind in ("tables", "actions", "counters", "direct_counters", "meters", "registers"):
        want = {e.preamble.name for e in getattr(expected, kind)}
        have = {e.preamble.name for e in getattr(actual, kind)}
        if want - have:
            parts.append(f"{kind} missing on the switch: {', '.join(sorted(want - have)[:4])}")
        if have - want:
            parts.append(f"unexpected {kind}: {', '.join(sorted(have - want)[:4])}")
    return "; ".join(parts) or "same names, different ids, sizes or parameters"


@contextlib.asynccontextmanager
async def connect(
    endpoint: SwitchEndpoint,
    pipeline: Pipeline,
    *,
    push: PushPolicy = PushPolicy.IF_MISSING,
) -> AsyncIterator[fy.Switch]:
    """A primary P4Runtime session with a switch running exactly ``pipeline``.

    The session opens without a P4Info, so that finsy adopts the switch's and pushes
    nothing; when that is the expected one it is the session returned. Only a push (a
    switch without a pipeline, or ``PushPolicy.ALWAYS``) takes a second session, one
    that carries the program: finsy installs a pipeline only when a session starts.

    Raises SwitchUnreachable, PipelineMismatch (the switch runs another program and
    ``push`` is not ALWAYS) or DciaError for a switch without a pipeline under NEVER.
    """
    expected = _p4info_message(pipeline)
    base = fy.SwitchOptions(
        device_id=endpoint.device_id,
        initial_election_id=endpoint.election_id,
        channel_credentials=endpoint.tls,
    )
    failures = _FailedSessions(endpoint.name)
    logging.getLogger("finsy").addHandler(failures)
    try:
        async with fy.Switch(endpoint.name, endpoint.address, base) as sw:
            if not sw.is_primary:
                raise DciaError(
                    f"switch {endpoint.name}: another controller is primary (election id "
                    f"{sw.primary_id} > ours {endpoint.election_id}); use a higher election id"
                )
            actual = sw.p4info.p4info if sw.p4info.exists else None
            if actual is None and push is PushPolicy.NEVER:
                raise DciaError(f"switch {endpoint.name} has no P4 program; push the DCIA "
                                f"pipeline first (or device_id {endpoint.device_id} in the "
                                "topology is not this switch's)")
            same = actual is not None and actual.SerializeToString(
                deterministic=True) == expected.SerializeToString(deterministic=True)
            if actual is not None and not same and push is not PushPolicy.ALWAYS:
                raise PipelineMismatch(
                    f"switch {endpoint.name} ({endpoint.address}) runs another P4 program: "
                    f"{describe_difference(expected, actual)}; push the DCIA pipeline "
                    "(PushPolicy.ALWAYS) or point the topology at the right switch"
                )
            if same and push is not PushPolicy.ALWAYS:
                yield sw
                return
        options = base(p4info=pipeline.p4info, p4blob=pipeline.bmv2_json,
                       p4force=push is PushPolicy.ALWAYS)
        async with fy.Switch(endpoint.name, endpoint.address, options) as sw:
            yield sw
    except P4ClientError as exc:
        raise _session_error(endpoint, exc) from None
    except asyncio.CancelledError:
        # finsy ends a session whose start-up failed (a refused pipeline push) by
        # cancelling it, and only logs the cause; an outside cancellation goes on.
        task = asyncio.current_task()
        if (task is not None and task.cancelling()) or not failures.errors:
            raise
        raise _session_error(endpoint, failures.errors[-1]) from None
    finally:
        logging.getLogger("finsy").removeHandler(failures)


class _FailedSessions(logging.Handler):
    """The P4Runtime errors finsy logs for the failed session tasks of one switch."""

    def __init__(self, switch: str):
        super().__init__(logging.ERROR)
        self.switch = switch
        self.errors: list[P4ClientError] = []

    def emit(self, record: logging.LogRecord) -> None:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, P4ClientError) and f"fy:{self.switch}|" in record.getMessage():
            self.errors.append(error)


def _session_error(endpoint: SwitchEndpoint, exc: P4ClientError) -> DciaError:
    """One line for a P4Runtime error of a session, with what to check."""
    if exc.code == fy.GRPCStatusCode.UNAVAILABLE:
        return SwitchUnreachable(
            f"switch {endpoint.name}: no P4Runtime server at {endpoint.address} "
            f"({exc.message.strip()}); is the switch running?"
        )
    hint = ""
    if exc.code == fy.GRPCStatusCode.NOT_FOUND or "SetForwardingPipelineConfig" in str(exc):
        hint = f"; is device_id {endpoint.device_id} in the topology this switch's?"
    return DciaError(f"switch {endpoint.name}: {exc.code.name}: {exc.message.strip()}{hint}")


async def write_batched(
    sw: fy.Switch, updates: Iterable[P4UpdateList], batch: int = DEFAULT_BATCH
) -> int:
    """Write ``updates`` in WriteRequests of at most ``batch`` updates; returns the count.

    Raises WriteFailed naming the switch and the first refused update.
    """
    pending = list(updates)
    for start in range(0, len(pending), batch):
        chunk = pending[start : start + batch]
        try:
            await sw.write(chunk)
        except P4ClientError as exc:
            details = "; ".join(
                f"update {start + i}: {err.canonical_code.name} {err.message}"
                for i, err in sorted(exc.details.items())[:3]
            ) or exc.message
            raise WriteFailed(f"switch {sw.name} refused a write: {details}") from None
    return len(pending)


# ----------------------------------------------------------------- deployments --


class DeploymentError(DciaError):
    """A deployment failed; every switch was restored (or the message says which was not)."""


@dataclass
class SwitchReport:
    name: str
    inserted: int = 0
    modified: int = 0
    deleted: int = 0


Key = tuple[str, frozenset, int]
"""An entry's identity: its table's full name, match and priority (its value: ``_value``)."""

_ANY_METER = fy.P4MeterConfig(cir=0, cburst=0, pir=0, pburst=0)
"""Set in a read request, it asks for the entries' direct meter configs."""


def _value(entry: fy.P4TableEntry) -> tuple:
    """What a deployment sets in an entry: its action and its meter (None: unconfigured)."""
    return entry.action, entry.meter_config


async def model_entries(sw: fy.Switch, model_id: int, version: int) -> list[fy.P4TableEntry]:
    """Every entry ``sw`` holds for (model_id, version), layer meters included."""
    found = []
    # a layer's meter is read back only when asked for (P4Runtime 9.1: direct resources)
    ask = [fy.P4TableEntry(t, meter_config=_ANY_METER if t == E.T_LAYERS else None)
           for t in MODEL_TABLES]
    async for e in sw.read(ask):
        if in_scope(sw.p4info.tables[e.table_id].name, e.match or {}, model_id, version):
            found.append(e)
    return found


async def held_entries(endpoint: SwitchEndpoint, model_id: int, version: int,
                       pipeline: Pipeline | None = None) -> list[EntryRecord]:
    """What a switch holds of (model_id, version), as a manifest names entries (``dcia audit``)."""
    async with connect(endpoint, pipeline or Pipeline.default(), push=PushPolicy.NEVER) as sw:
        return [entry_record(e, sw.p4info) for e in await model_entries(sw, model_id, version)]


class _SwitchTxn:
    """One switch within a deployment transaction: its desired entries (decoded the way
    the switch's reads are, so the two compare), its snapshot, and whether it was written."""

    def __init__(self, sw: fy.Switch, model_id: int, version: int,
                 desired: list[fy.P4TableEntry], batch: int):
        self.sw = sw
        self.batch = batch
        self.model_id, self.version = model_id, version
        canonical = [fy.P4TableEntry.decode(e.encode(sw.p4info), sw.p4info) for e in desired]
        self.desired = {self.identity(e): e for e in canonical}
        self.snapshot: dict[Key, fy.P4TableEntry] = {}
        self.touched = False

    def identity(self, entry: fy.P4TableEntry) -> Key:
        """finsy decodes a table's id to its alias (short name); the key holds its name."""
        table = self.sw.p4info.tables[entry.table_id].name
        return table, frozenset((entry.match or {}).items()), entry.priority

    async def current(self) -> dict[Key, fy.P4TableEntry]:
        return {self.identity(e): e
                for e in await model_entries(self.sw, self.model_id, self.version)}

    async def converge(self, target: Mapping[Key, fy.P4TableEntry]) -> SwitchReport:
        """Make this switch's in-scope entries equal ``target``: deletes, then parameter
        inserts and modifies, then the activating ones (``layers``, ``model_versions``)."""
        have = await self.current()
        deletes = [k for k in have if k not in target]
        inserts = [k for k in target if k not in have]
        modifies = [k for k in target if k in have and _value(target[k]) != _value(have[k])]

        def fresh(entry: fy.P4TableEntry) -> fy.P4TableEntry:
            return dataclasses.replace(entry)  # finsy's +/-/~ mark the entity itself

        def activating(key: Key) -> bool:
            return key[0] in ACTIVATING_TABLES

        first = ([-fresh(have[k]) for k in deletes if activating(k)]
                 + [-fresh(have[k]) for k in deletes if not activating(k)])
        second = ([+fresh(target[k]) for k in inserts if not activating(k)]
                  + [~fresh(target[k]) for k in modifies if not activating(k)])
        third = ([+fresh(target[k]) for k in inserts if activating(k)]
                 + [~fresh(target[k]) for k in modifies if activating(k)])
        for step in (first, second, third):
            if step:
                self.touched = True
                await write_batched(self.sw, step, self.batch)
        return SwitchReport(self.sw.name, len(inserts), len(modifies), len(deletes))

    async def verify(self) -> None:
        have = await self.current()
        missing, extra = set(self.desired) - set(have), set(have) - set(self.desired)
        if missing or extra:
            tables = sorted({k[0] for k in missing | extra})
            raise DeploymentError(f"switch {self.sw.name}: read-back shows {len(missing)} "
                                  f"entries missing and {len(extra)} unexpected (in "
                                  f"{', '.join(tables)})")
        for k, entry in self.desired.items():
            if _value(have[k]) != _value(entry):
                raise DeploymentError(f"switch {self.sw.name}: read-back differs for an entry "
                                      f"of table {entry.table_id}")


async def apply(
    deployment: Deployment,
    pipeline: Pipeline | None = None,
    *,
    push: PushPolicy = PushPolicy.IF_MISSING,
    batch: int = DEFAULT_BATCH,
) -> list[SwitchReport]:
    """Apply ``deployment`` to all its switches, all or nothing. Returns what changed.

    Connecting checks every switch's pipeline before anything is written. ``batch`` is
    the number of updates per WriteRequest.
    """
    pipeline = pipeline or Pipeline.default()
    async with contextlib.AsyncExitStack() as stack:
        txns = []
        for a in deployment.switches:
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


# ---------------------------------------------------------------------- routes --


async def install_routes(
    topology: Topology,
    switch_endpoints: Mapping[str, SwitchEndpoint] | None = None,
    pipeline: Pipeline | None = None,
    *,
    push: PushPolicy = PushPolicy.IF_MISSING,
) -> dict[str, int]:
    """Write every switch's routes (pushing the pipeline where none runs); returns counts.

    Existing entries of `ipv4_lpm` are replaced, so installing twice is harmless.
    """
    pipeline = pipeline or Pipeline.default()
    switch_endpoints = switch_endpoints or endpoints(topology)
    written = {}
    for switch, routes in switch_routes(topology).items():
        async with connect(switch_endpoints[switch], pipeline, push=push) as sw:
            existing = [e async for e in sw.read(fy.P4TableEntry(E.T_ROUTES))]
            if existing:
                await write_batched(sw, [-e for e in existing])
            written[switch] = await write_batched(sw, [+r.entry() for r in routes])
        log.info("switch %s: %d IPv4 routes", switch, written[switch])
    return written


# ---------------------------------------------------------------------- status --


@dataclass
class SwitchStatus:
    """What a switch holds and what it counted."""

    name: str
    models: dict[tuple[int, int], list[int]] = field(default_factory=dict)
    """(model id, version) -> the layer indices the switch computes."""
    stats: dict[str, int] = field(default_factory=dict)
    """``dcia_stats`` packets by name (controller.entries.STAT_NAMES)."""
    drops: dict[str, int] = field(default_factory=dict)
    """``ipv4_drops`` packets by reason (controller.entries.DROP_NAMES)."""
    layers_computed: dict[int, int] = field(default_factory=dict)
    """Layer index -> packets that computed it."""
    fusion: dict[str, int] = field(default_factory=dict)
    """``fusion_stats`` by name (controller.entries.FUSION_STAT_NAMES: fused, timed out, ...)."""
    tables: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Table name -> (entries installed, size), for every table of the program."""
    read_at: float = 0.0
    """``time.monotonic()`` when the counters were read (rates come from two readings)."""
    error: str | None = None
    unreachable: bool = False
    """No P4Runtime server answered (a missed heartbeat); False with an ``error`` means it
    answered but could not be read (for example: no pipeline yet)."""


async def switch_status(endpoint: SwitchEndpoint, pipeline: Pipeline | None = None) -> SwitchStatus:
    """Read a switch's deployed layers and DCIA counters; errors become ``status.error``."""
    status = SwitchStatus(endpoint.name)
    try:
        async with connect(endpoint, pipeline or Pipeline.default(), push=PushPolicy.NEVER) as sw:
            installed: dict[str, int] = {}
            async for e in sw.read(fy.P4TableEntry()):
                table = sw.p4info.tables[e.table_id].name
                installed[table] = installed.get(table, 0) + 1
                if table == E.T_LAYERS:
                    key = (e.match["model_id"], e.match["model_version"])
                    status.models.setdefault(key, []).append(e.match["layer"])
            for layers in status.models.values():
                layers.sort()
            status.tables = {t.name: (installed.get(t.name, 0), t.size) for t in sw.p4info.tables}
            status.read_at = time.monotonic()
            for counter, names, into in ((E.C_STATS, E.STAT_NAMES, status.stats),
                                         (E.C_IPV4_DROPS, E.DROP_NAMES, status.drops),
                                         (E.C_FUSION_STATS, E.FUSION_STAT_NAMES, status.fusion)):
                async for c in sw.read(fy.P4CounterEntry(counter)):
                    into[names[c.index]] = c.data.packet_count if c.data else 0
            async for c in sw.read(fy.P4CounterEntry(E.C_LAYER_STATS)):
                if c.data and c.data.packet_count:
                    status.layers_computed[c.index] = c.data.packet_count
    except DciaError as exc:
        status.error = str(exc)
        status.unreachable = isinstance(exc, SwitchUnreachable)
    return status
