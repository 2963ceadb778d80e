"""The controller's P4Runtime layer: connect, check or push the pipeline, write in batches.

Built on finsy (https://github.com/byllyfish/finsy), which does arbitration, name↔id
translation and canonical byte strings; this module adds what the controller needs on
top: a strict pipeline check against the expected P4Info, batching, and errors that say
which switch failed and why.

    async with connect(SwitchEndpoint("s1", "127.0.0.1:50001"), Pipeline.default()) as sw:
        await write_batched(sw, [+entry, ...])
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from enum import Enum

import finsy as fy
from finsy.p4client import P4ClientError
from finsy.p4entity import P4UpdateList
from finsy.proto import p4i

from controller.topology import Switch
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


@dataclass(frozen=True)
class SwitchEndpoint:
    """Where a switch's P4Runtime server is and how to talk to it."""

    name: str
    address: str
    device_id: int = 1
    election_id: int = 10
    tls: fy.GRPCCredentialsTLS | None = None


def endpoint_of(switch: Switch) -> SwitchEndpoint:
    """The P4Runtime endpoint the topology file gives for ``switch`` (TLS included)."""
    tls = None
    if switch.tls is not None:
        tls = fy.GRPCCredentialsTLS(cacert=switch.tls.ca, cert=switch.tls.cert,
                                    private_key=switch.tls.key)
    return SwitchEndpoint(switch.name, switch.grpc, switch.device_id, tls=tls)


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

    Raises SwitchUnreachable, PipelineMismatch (the switch runs another program and
    ``push`` is not ALWAYS) or DciaError for a switch without a pipeline under NEVER.
    """
    expected = _p4info_message(pipeline)
    base = fy.SwitchOptions(
        device_id=endpoint.device_id,
        initial_election_id=endpoint.election_id,
        channel_credentials=endpoint.tls,
    )
    try:
        # First look without configuring a P4Info: finsy then adopts the switch's.
        async with fy.Switch(endpoint.name, endpoint.address, base) as probe:
            if not probe.is_primary:
                raise DciaError(
                    f"switch {endpoint.name}: another controller is primary (election id "
                    f"{probe.primary_id} > ours {endpoint.election_id}); use a higher election id"
                )
            actual = probe.p4info.p4info if probe.p4info.exists else None
        if actual is None and push is PushPolicy.NEVER:
            raise DciaError(f"switch {endpoint.name} has no P4 program; push the DCIA pipeline first")
        if actual is not None and push is not PushPolicy.ALWAYS:
            if actual.SerializeToString(deterministic=True) != expected.SerializeToString(
                deterministic=True
            ):
                raise PipelineMismatch(
                    f"switch {endpoint.name} ({endpoint.address}) runs another P4 program: "
                    f"{describe_difference(expected, actual)}; push the DCIA pipeline "
                    "(PushPolicy.ALWAYS) or point the topology at the right switch"
                )
        options = base(p4info=pipeline.p4info, p4blob=pipeline.bmv2_json,
                       p4force=push is PushPolicy.ALWAYS)
        async with fy.Switch(endpoint.name, endpoint.address, options) as sw:
            yield sw
    except P4ClientError as exc:
        if exc.code == fy.GRPCStatusCode.UNAVAILABLE:
            raise SwitchUnreachable(
                f"switch {endpoint.name}: no P4Runtime server at {endpoint.address} "
                f"({exc.message.strip()}); is the switch running?"
            ) from None
        raise DciaError(f"switch {endpoint.name}: {exc.code.name}: {exc.message.strip()}") from None


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
