"""The edge agent: runs the first stage of the plan and sends the tensor on its way.

For each input it computes the edge's layers ``[0, edge_layers)`` with the integer
reference, sends the activation as a DCIA tensor packet (UDP to a cloud's address,
destination port 56346, a random request id) and waits for the answer with that id.
Switches on the way compute what they hold; the cloud finishes. ``window`` requests are
in flight at once; with ``rate`` the agent starts at most that many requests per second.

Several clouds (``--cloud A --cloud B``, in order of preference; on a topology with
several paths, one per path, each reached through its own edge interface) make the agent
fail over (``FailoverPolicy``):

- an attempt without an answer within its wait (``RetryPolicy``: ``timeout``, then
  ``backoff`` times longer each retry, at most ``attempts`` sends) is retried on the next
  cloud that is up, after the one just tried (the surviving path or server);
- ``down_after`` attempts in a row without an answer from one cloud mark it down: new
  requests go to the most preferred cloud still up at once;
- a down cloud gets a copy of the next request (a probe) every ``hold_down`` seconds; an
  answer to a send after it went down marks it up again, and traffic returns to it when it
  is the preferred one.

A request therefore ends within the sum of its waits: ``ok``, or ``timeout`` when no cloud
answered any attempt. When ``give_up_after`` requests in a row (default: a window's
worth) time out with no answer in between, every path is taken for dead: the agent stops
waiting and sending, and every request not finished yet ends ``abandoned``. Each input
gets exactly one result, whatever happens to the network.

Answers are idempotent: the first answer to a request wins; another one (the first cloud
answering late, after the retry on the second was answered) is counted in ``duplicates``.
Only an answer from an address the request was sent to (a switch that answers on the
cloud's behalf, ``steer_answer``, sends from the cloud's address) or from one of
``answerers`` (``--answerer``: the other clouds of a spread, where a switch steers requests
by weight) is taken. Any other datagram, and an answer for another model than the
request's, is counted in ``strays`` and dropped.

    python -m hosts.edge_agent --model run/model.json --cloud 10.0.2.2 --cloud 10.0.4.3 \\
        --edge-layers 1 --inputs run/inputs.npy --timeout 0.05 --rate 100

prints one JSON line per request (``RequestResult``: which cloud answered, whether it was
retried or redirected, wall-clock send and end times) as the answers come in. With
``--metrics HOST:PORT`` it is a metric agent (dcia.metrics): its record (the edge layers it
runs, measured time per edge layer, ``delay_s`` the mean answer time: the path's round
trip as the edge sees it) and its counters (requests, answers per cloud, retried,
redirected, duplicates, failovers) at ``/capability.json`` and ``/metrics``. With
``--path-probes SECONDS`` it is also the network metric agent of its paths: it sends each
cloud a small tensor that needs no computing at that interval and serves the latest round
trip per cloud (``path_rtt_s_<address>``), which ``dcia steer`` plans with in place of the
topology's nominal link delays.

With ``--tensor-keys FILE`` (dcia.sealing.TensorKeys: cloud address -> key, one per
edge–cloud pair) every request is sealed end to end to the cloud it goes to (AES-GCM,
flag ``ENCRYPTED``: no switch computes on it or can read it) and only a sealed answer that
authenticates with that cloud's key is taken (or a plain ``BAD_SEAL`` error: the cloud could
not open the request); anything else is a stray. Path probes carry no data and stay plain.

With ``--local`` (only with ``--edge-layers`` equal to the model's length) nothing is sent:
the agent computes every layer and answers itself, ``answered_by`` ``local``. That is edge-only
inference (the evaluation's baseline, evaluation.strategies); its latency is the edge's
compute time plus the agent's own bookkeeping, measured as for every other request.

With ``--fusion-member M`` it is member ``M`` of fusion groups (hosts.fusion): it computes
the layers before the model's fusion layer, and its input ``i`` goes out with ``FUSE`` as
member ``M`` of group ``1 + i`` (or the ids of ``--group-ids``), the group id being its
request id. Before each retry it sends a flush of its group's slot, which releases the
group from a switch that still holds it past its timeout. The answer is the group's: its
``reserved`` byte (``RequestResult.fused``) says whose tensors it was made of.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from dcia.capability import Capability
from dcia.metrics import MetricsEndpoint, path_rtt_key
from dcia.model import QuantizedModel
from dcia.sealing import SealError, TensorKeys, is_sealed
from dcia.wire import DCIA_UDP_PORT, Flag, Status, header, is_answer, peek
from hosts import messages
from hosts.fusion import FusionMember, flush_request, member_request

log = logging.getLogger(__name__)

LOCAL = "local"
"""``answered_by`` of a request the edge answered itself (``local``)."""

FINISHED_KEPT = 4096
"""Finished requests remembered, so that a late second answer counts as a duplicate."""


@dataclass(frozen=True)
class RequestResult:
    """One request's outcome. ``predicted`` is -1 when there is no result."""

    index: int
    request_id: int
    predicted: int
    logits: list[int]
    latency_s: float
    attempts: int
    net_layers: int
    """Layers the switches computed on the way."""
    cloud_from: int
    """The layer the rest started at after the network: the model's length when the switches
    computed every layer (the last of them answered; the cloud saw nothing)."""
    status: str
    """``ok``; ``timeout``: no answer to any attempt; ``abandoned``: not sent, or not waited
    for to the end, because the agent had given up on every path; ``error <code>`` from an
    ERROR answer."""
    answered_by: str = ""
    """The address whose answer was taken (a cloud's: its server, or the switch answering
    on its path); empty without an answer."""
    redirected: bool = False
    """Answered by another cloud than the most preferred one."""
    sent_at: float = 0.0
    """Wall-clock time (``time.time()``) of the first send."""
    ended_at: float = 0.0
    """Wall-clock time the answer arrived (or the request was given up)."""
    fused: int = 0
    """For a fusion member: the bitmap of the members the group's answer was made of."""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def retried(self) -> bool:
        return self.attempts > 1


@dataclass(frozen=True)
class RetryPolicy:
    """Wait ``timeout`` s for an answer, then ``backoff`` times longer each retry."""

    timeout: float = 1.0
    backoff: float = 2.0
    attempts: int = 5

    def waits(self) -> list[float]:
        return [self.timeout * self.backoff**k for k in range(self.attempts)]


@dataclass(frozen=True)
class FailoverPolicy:
    """When a cloud is taken for down, and how soon it is tried again."""

    down_after: int = 3
    """Attempts in a row without an answer from a cloud that mark it down."""
    hold_down: float = 0.5
    """Seconds between probes of a down cloud (a copy of the next request)."""

    def __post_init__(self) -> None:
        if self.down_after < 1:
            raise ValueError(f"down_after must be 1 or more, got {self.down_after}")
        if self.hold_down <= 0:
            raise ValueError(f"hold_down must be positive, got {self.hold_down}")


@dataclass
class CloudState:
    """What the agent knows of one cloud: its silence, and since when it is down."""

    address: str
    silent: int = 0
    """Attempts in a row it did not answer."""
    down_since: float | None = None
    """``time.monotonic()`` when it was marked down; None while it is up."""
    probe_at: float = 0.0
    """When a down cloud gets its next probe."""

    @property
    def up(self) -> bool:
        return self.down_since is None


@dataclass
class _Pending:
    future: asyncio.Future
    sent: dict[str, float] = field(default_factory=dict)
    """Cloud address -> ``time.monotonic()`` of the latest send of this request to it."""


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, agent: EdgeAgent):
        self.agent = agent

    def datagram_received(self, data: bytes, addr) -> None:
        self.agent._received(data, addr[0])

    def error_received(self, exc: Exception) -> None:
        log.debug("socket error: %s", exc)


class EdgeAgent:
    """Sends requests to ``clouds`` (one address, or several in order of preference) and
    matches the answers by request id."""

    def __init__(self, model: QuantizedModel, clouds: str | Sequence[str], edge_layers: int, *,
                 port: int = DCIA_UDP_PORT, bind: tuple[str, int] = ("0.0.0.0", DCIA_UDP_PORT),
                 retry: RetryPolicy = RetryPolicy(), failover: FailoverPolicy = FailoverPolicy(),
                 window: int = 16, rate: float | None = None, no_offload: bool = False,
                 seed: int | None = None, answerers: tuple[str, ...] = (),
                 give_up_after: int | None = None, path_probe_s: float | None = None,
                 keys: TensorKeys | None = None, local: bool = False,
                 fusion: FusionMember | None = None, start_at: float | None = None):
        if not 0 <= edge_layers <= len(model.layers):
            raise ValueError(f"edge_layers must be in 0..{len(model.layers)}, got {edge_layers}")
        if local and edge_layers != len(model.layers):
            raise ValueError(f"answering locally needs every layer on the edge (edge_layers "
                             f"{len(model.layers)}), got {edge_layers}")
        self.local = local
        """Answer every request here, sending nothing (edge-only inference)."""
        clouds = [clouds] if isinstance(clouds, str) else list(clouds)
        if not clouds or len(set(clouds)) != len(clouds):
            raise ValueError(f"give one or more different cloud addresses, got {clouds}")
        if rate is not None and rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        if path_probe_s is not None and path_probe_s <= 0:
            raise ValueError(f"the path probe interval must be positive, got {path_probe_s}")
        unkeyed = [c for c in (*clouds, *answerers) if keys is not None and c not in keys]
        if unkeyed:
            raise ValueError(f"no tensor key for {', '.join(unkeyed)}: every cloud must have one "
                             "to seal requests to it")
        if fusion is not None and (model.fusion_index is None or edge_layers != model.fusion_index
                                   or not 0 <= fusion.member < model.layers[model.fusion_index].members):
            raise ValueError(f"a fusion member computes the layers before the model's fusion "
                             f"layer ({model.fusion_index}) and has an index below its group size")
        self.fusion = fusion
        """This agent's part in fusion groups (None: plain requests)."""
        self.start_at = start_at
        """Wall-clock time (``time.time()``) of the first request; None: at once. With
        ``rate``, agents given one start pace one clock (the members of a group)."""
        self.keys = keys
        """Cloud address -> key: requests are sealed to their cloud (None: plain)."""
        self.model, self.clouds, self.port = model, clouds, port
        self.edge_layers, self.bind = edge_layers, bind
        self.retry, self.failover = retry, failover
        self.window, self.rate, self.no_offload = window, rate, no_offload
        self.rng = random.Random(seed) if seed is not None else random.SystemRandom()
        self.state = {c: CloudState(c) for c in clouds}
        self.pending: dict[int, _Pending] = {}
        self.finished: OrderedDict[int, dict[str, float]] = OrderedDict()
        """Request id -> its sends, for the last FINISHED_KEPT finished requests."""
        self.answerers = frozenset(answerers)
        """Addresses besides the clouds a request was sent to that may answer it."""
        self.strays = 0
        """Datagrams dropped: from an address that may not answer, or no answer we wait for."""
        self.duplicates = 0
        """Second answers to a request already answered (the first one won)."""
        self.give_up_after = window if give_up_after is None else give_up_after
        """Timed-out requests in a row after which the agent gives up (0: never)."""
        self.silent_requests = 0
        """Requests in a row that timed out."""
        self.given_up: asyncio.Future | None = None
        """Done once the agent has given up every path (made in ``run``)."""
        self.path_probe_s = path_probe_s
        """Seconds between two probes of each cloud's path (None: no probes)."""
        self.path_probes: dict[int, tuple[str, float]] = {}
        """Request id of a probe in flight -> (its cloud, ``time.monotonic()`` it left)."""
        self.counts = {"requests": 0, "answered": 0, "errors": 0, "unanswered": 0,
                       "sends": 0, "probes": 0, "path_probes": 0, "retried": 0, "redirected": 0,
                       "failovers": 0, "recoveries": 0, "sealed": 0, "seal_failures": 0,
                       "flushes": 0,
                       "edge_seconds": 0.0, "seal_seconds": 0.0, "answer_seconds": 0.0,
                       **{answered_key(c): 0 for c in clouds}}
        """Totals for the metric agent (``capability``); ``answered_by_<address>``: answers
        taken from each cloud; ``sealed``: requests sent sealed; ``seal_failures``: answers
        that did not authenticate (dropped as strays); ``seal_seconds``: time spent sealing
        and opening."""

    def capability(self, name: str) -> tuple[Capability, dict[str, float]]:
        """This edge's record now and its counters (a dcia.metrics snapshot)."""
        counts = dict(self.counts, strays=self.strays, duplicates=self.duplicates,
                      clouds_up=sum(s.up for s in self.state.values()))
        fields = {"models": [{"model_id": self.model.model_id, "version": self.model.version,
                              "layers": list(range(self.edge_layers))}]}
        if counts["requests"] and self.edge_layers:
            fields["layer_time_s"] = counts["edge_seconds"] / (counts["requests"] * self.edge_layers)
        if counts["answered"]:
            fields["delay_s"] = counts["answer_seconds"] / counts["answered"]
        return Capability.nominal(name, "edge", **fields), counts

    def _new_request_id(self) -> int:
        while True:
            rid = self.rng.getrandbits(32)
            if rid not in self.pending and rid not in self.finished:
                return rid

    async def run(self, inputs: np.ndarray,
                  on_result: Callable[[RequestResult], None] | None = None) -> list[RequestResult]:
        """Infer every int8 input (rows of ``inputs``); results in input order."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self), local_addr=self.bind)
        gate = asyncio.Semaphore(self.window)
        self.silent_requests, self.given_up = 0, loop.create_future()
        start = loop.time() + (0.0 if self.start_at is None else max(0.0, self.start_at - time.time()))

        async def one(index: int) -> RequestResult:
            if self.rate or self.start_at is not None:  # a fusion member paces by its frame
                frame = index if self.fusion is None else self.fusion.frame(index)
                await asyncio.sleep(start + (frame / self.rate if self.rate else 0.0) - loop.time())
            async with gate:
                result = await self._request(transport, index, inputs[index])
            if on_result:
                on_result(result)
            return result

        prober = (asyncio.ensure_future(self._probe_paths(transport))
                  if self.path_probe_s else None)
        try:
            return list(await asyncio.gather(*(one(i) for i in range(len(inputs)))))
        finally:
            if prober is not None:
                prober.cancel()
            transport.close()

    # ----------------------------------------------------------- path probes --

    async def _probe_paths(self, transport) -> None:
        """The network metric agent (CATS C-NMA): every ``path_probe_s`` seconds, a small
        tensor to each cloud that needs no computing (``next_layer`` past the last layer:
        switches pass it on, the cloud sends it back as its answer); its round trip is the
        path's delay as the edge sees it, ``path_rtt_s_<cloud>`` in the counters."""
        n = len(self.model.layers)
        size = self.model.layers[-1].n_out
        while True:
            for cloud in self.clouds:
                rid = self._new_request_id()
                self.path_probes[rid] = (cloud, time.monotonic())
                transport.sendto(messages.tensor_request(
                    model_id=self.model.model_id, version=self.model.version, request_id=rid,
                    next_layer=n, elems=[0] * size), (cloud, self.port))
                self.counts["path_probes"] += 1
            await asyncio.sleep(self.path_probe_s)
            for rid in [r for r, (_, t) in self.path_probes.items()
                        if time.monotonic() - t > 10 * self.path_probe_s]:
                del self.path_probes[rid]  # lost: a missing sample, not a metric

    # ----------------------------------------------------------- one request --

    async def _request(self, transport, index: int, x: Sequence[int]) -> RequestResult:
        started, sent_at = time.perf_counter(), time.time()
        activation = self.model.forward_int(np.asarray(x, dtype=np.int64), 0, self.edge_layers)
        self.counts["requests"] += 1
        self.counts["edge_seconds"] += time.perf_counter() - started
        rid = self._new_request_id() if self.fusion is None else self.fusion.group(index)
        if self.local:
            self.counts["answered"] += 1
            logits = activation.tolist()
            return RequestResult(index, rid, int(np.argmax(logits)), logits,
                                 time.perf_counter() - started, 0, 0, self.edge_layers, "ok",
                                 answered_by=LOCAL, sent_at=sent_at, ended_at=time.time())
        plain = messages.tensor_request(
            model_id=self.model.model_id, version=self.model.version, request_id=rid,
            next_layer=self.edge_layers, elems=activation.tolist(),
            flags=Flag.NO_OFFLOAD if self.no_offload else 0) if self.fusion is None else (
            member_request(self.model, group=rid, member=self.fusion.member,
                           elems=activation.tolist()))
        payloads: dict[str, bytes] = {}  # cloud -> what is sent there (sealed with its key)
        request = _Pending(asyncio.get_running_loop().create_future())
        self.pending[rid] = request
        attempts, tried = 0, None
        unanswered = "timeout"
        try:
            for wait in self.retry.waits():
                if self.given_up.done():
                    unanswered = "abandoned"
                    break
                attempts += 1
                targets = self._targets(tried)
                for cloud in targets:
                    if self.fusion is not None and attempts > 1:
                        transport.sendto(flush_request(self.model, group=rid), (cloud, self.port))
                        self.counts["flushes"] += 1
                    self.counts["sends"] += 1
                    if cloud not in payloads:  # a retry to one cloud resends the same bytes
                        payloads[cloud] = self._sealed(plain, cloud)
                    request.sent[cloud] = time.monotonic()
                    transport.sendto(payloads[cloud], (cloud, self.port))
                await asyncio.wait((request.future, self.given_up), timeout=wait,
                                   return_when=asyncio.FIRST_COMPLETED)
                if request.future.done():
                    break
                if self.given_up.done():
                    unanswered = "abandoned"
                    break
                log.debug("request %d (input %d): no answer from %s in %.3f s", rid, index,
                          ", ".join(targets), wait)
                for cloud in targets:
                    self._silent(cloud)
                tried = targets[0]
        finally:
            del self.pending[rid]
            self.finished[rid] = request.sent
            if len(self.finished) > FINISHED_KEPT:
                self.finished.popitem(last=False)
        self.counts["retried"] += attempts > 1
        if not request.future.done():
            if unanswered == "timeout":
                self._count_silence()
            return self._unanswered(index, rid, started, sent_at, attempts, unanswered)
        self.silent_requests = 0
        answer, source = request.future.result()
        latency = time.perf_counter() - started
        redirected = source != self.clouds[0]
        self.counts["redirected"] += redirected
        if source in self.state:
            self.counts[answered_key(source)] += 1
        msg, logits, problem = messages.answer(answer)
        ok = not (problem or msg.flags & Flag.ERROR)
        self.counts["answered" if ok else "errors"] += 1
        where = dict(answered_by=source, redirected=redirected, sent_at=sent_at,
                     ended_at=time.time())
        if not ok:
            status = f"error {msg.status}" if not problem else f"error bad answer: {problem}"
            return RequestResult(index, rid, -1, [], latency, attempts, msg.net_layers, -1,
                                 status, **where)
        self.counts["answer_seconds"] += latency
        return RequestResult(index, rid, int(np.argmax(logits)), logits, latency, attempts,
                             msg.net_layers, self.edge_layers + msg.net_layers, "ok", **where,
                             fused=msg.reserved if self.fusion is not None else 0)

    def _sealed(self, plain: bytes, cloud: str) -> bytes:
        if self.keys is None:
            return plain
        started = time.perf_counter()
        sealed = self.keys.seal(plain, cloud)
        self.counts["sealed"] += 1
        self.counts["seal_seconds"] += time.perf_counter() - started
        return sealed

    def _opened(self, data: bytes, source: str) -> bytes | None:
        """A sealed answer opened with ``source``'s key; None for an answer a sealing agent
        must not take (plain, but for a BAD_SEAL error; or one that does not authenticate)."""
        if not is_sealed(data):
            head = peek(data)
            return data if int(head.flags) & Flag.ERROR and head.status == Status.BAD_SEAL else None
        started = time.perf_counter()
        try:
            return self.keys.unseal(data, source)
        except SealError as exc:
            self.counts["seal_failures"] += 1
            log.warning("answer from %s: %s", source, exc)
            return None
        finally:
            self.counts["seal_seconds"] += time.perf_counter() - started

    def _unanswered(self, index: int, rid: int, started: float, sent_at: float, attempts: int,
                    status: str) -> RequestResult:
        self.counts["unanswered"] += 1
        return RequestResult(index, rid, -1, [], time.perf_counter() - started, attempts, 0,
                             -1, status, sent_at=sent_at, ended_at=time.time())

    def _count_silence(self) -> None:
        """One more request timed out; after ``give_up_after`` in a row, give up."""
        self.silent_requests += 1
        if (self.give_up_after and self.silent_requests >= self.give_up_after
                and not self.given_up.done()):
            log.warning("no answer to %d requests in a row from any of %s: the remaining "
                        "requests are abandoned", self.silent_requests, ", ".join(self.clouds))
            self.given_up.set_result(None)

    # ------------------------------------------------------------- failover --

    def _targets(self, tried: str | None) -> list[str]:
        """Where the next attempt goes: the first cloud up after ``tried`` (the previous
        attempt's; None: from the most preferred), or the next one when none is up; and a
        probe to each down cloud whose hold-down has passed."""
        start = 0 if tried is None else self.clouds.index(tried) + 1
        order = self.clouds[start:] + self.clouds[:start]
        target = next((c for c in order if self.state[c].up), order[0])
        now = time.monotonic()
        probes = [c for c in self.clouds
                  if c != target and not self.state[c].up and self.state[c].probe_at <= now]
        for cloud in probes:
            self.state[cloud].probe_at = now + self.failover.hold_down
            self.counts["probes"] += 1
        return [target, *probes]

    def _silent(self, cloud: str) -> None:
        """An attempt sent to ``cloud`` got no answer in time."""
        state = self.state[cloud]
        state.silent += 1
        if state.up and state.silent >= self.failover.down_after:
            now = time.monotonic()
            state.down_since, state.probe_at = now, now + self.failover.hold_down
            self.counts["failovers"] += 1
            after = next((c for c in self.clouds if self.state[c].up), None)
            log.warning("cloud %s: no answer to %d attempts in a row: down; %s", cloud,
                        state.silent, f"new requests go to {after}" if after else
                        "no cloud is up")

    def _heard(self, cloud: str, sent: float | None) -> None:
        """``cloud`` answered a request sent to it at ``sent`` (monotonic)."""
        state = self.state.get(cloud)
        if state is None:
            return
        state.silent = 0
        if not state.up and sent is not None and sent >= state.down_since:
            log.warning("cloud %s answers again after %.3f s down", cloud,
                        time.monotonic() - state.down_since)
            state.down_since = None
            self.counts["recoveries"] += 1

    def _received(self, data: bytes, source: str) -> None:
        head = header(data)
        probe = self.path_probes.get(head.request_id)
        if probe is not None and probe[0] == source and is_answer(data):
            del self.path_probes[head.request_id]
            self.counts[path_rtt_key(source)] = time.monotonic() - probe[1]
            return
        request = self.pending.get(head.request_id)
        sent = request.sent if request is not None else self.finished.get(head.request_id)
        if (not is_answer(data) or sent is None
                or (source not in sent and source not in self.answerers)
                or (head.model_id, head.model_version) != (self.model.model_id, self.model.version)):
            self.strays += 1
            log.debug("dropped a datagram from %s (request %d): not an answer we wait for",
                      source, head.request_id)
            return
        if self.keys is not None:
            data = self._opened(data, source)
            if data is None:
                self.strays += 1
                return
        self._heard(source, sent.get(source))
        if request is not None and not request.future.done():
            request.future.set_result((data, source))
        else:
            self.duplicates += 1
            log.debug("request %d: a second answer, from %s (the first one counts)",
                      head.request_id, source)


def answered_key(cloud: str) -> str:
    """The counter of answers taken from ``cloud``: ``answered_by_10_0_2_2``."""
    return "answered_by_" + cloud.replace(".", "_").replace(":", "_")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hosts.edge_agent",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="quantized model file")
    parser.add_argument("--cloud", action="append", required=True,
                        help="IPv4 address of a cloud server; repeat for failover, most "
                             "preferred first")
    parser.add_argument("--answerer", action="append", default=[], metavar="ADDRESS",
                        help="also take answers from this address: a cloud that a switch "
                             "may steer requests to (dcia deploy --spread); repeatable")
    parser.add_argument("--edge-layers", type=int, default=1, help="layers the edge computes")
    parser.add_argument("--inputs", type=Path, required=True,
                        help=".npy file of float inputs (quantized here), one row per request")
    parser.add_argument("--requests", type=int, help="only the first N inputs")
    parser.add_argument("--window", type=int, default=16, help="requests in flight at once")
    parser.add_argument("--rate", type=float, help="start at most N requests per second")
    parser.add_argument("--timeout", type=float, default=1.0,
                        help="first wait for an answer, s (the failure detection interval)")
    parser.add_argument("--backoff", type=float, default=2.0, help="factor between waits")
    parser.add_argument("--attempts", type=int, default=5, help="sends per request at most")
    parser.add_argument("--down-after", type=int, default=FailoverPolicy.down_after,
                        help="attempts in a row without an answer that mark a cloud down")
    parser.add_argument("--hold-down", type=float, default=FailoverPolicy.hold_down,
                        help="seconds between probes of a down cloud")
    parser.add_argument("--give-up-after", type=int,
                        help="abandon the rest after N requests in a row timed out "
                             "(default: the window; 0: never)")
    parser.add_argument("--no-offload", action="store_true", help="forbid switches to compute")
    parser.add_argument("--local", action="store_true",
                        help="compute every layer here and answer without sending (edge-only "
                             "inference; needs --edge-layers equal to the model's length)")
    parser.add_argument("--port", type=int, default=DCIA_UDP_PORT, help="the clouds' UDP port")
    parser.add_argument("--local-port", type=int, default=DCIA_UDP_PORT,
                        help="UDP port to send from and receive answers on")
    parser.add_argument("--metrics", metavar="HOST:PORT",
                        help="serve the capability record and counters over HTTP here")
    parser.add_argument("--path-probes", type=float, metavar="SECONDS",
                        help="probe each cloud's path this often; the round trips are metrics "
                             "(path_rtt_s_<cloud>) for the path selector")
    parser.add_argument("--tensor-keys", type=Path, metavar="FILE",
                        help="seal every request to its cloud and take only sealed answers "
                             "(JSON: cloud address -> hex AES-256 key, dcia.sealing)")
    parser.add_argument("--fusion-member", type=int, metavar="M",
                        help="send each input as member M of a fusion group (group 1 + its "
                             "index, or --group-ids); --edge-layers must be the fusion layer's index")
    parser.add_argument("--group-ids", type=Path, metavar="FILE",
                        help=".npy file of the fusion group id of each input")
    parser.add_argument("--start-at", type=float, metavar="UNIX_TIME",
                        help="send the first request at this wall-clock time (several agents "
                             "pacing one frame rate together: the members of a group)")
    parser.add_argument("--name", default="edge", help="the node's name in its record")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="edge: %(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    try:
        failover = FailoverPolicy(args.down_after, args.hold_down)
        model = QuantizedModel.load(args.model)
        keys = TensorKeys.load(args.tensor_keys) if args.tensor_keys else None
        inputs = model.quantize_input(np.load(args.inputs)[: args.requests])
        agent = EdgeAgent(model, args.cloud, args.edge_layers, port=args.port,
                          bind=("0.0.0.0", args.local_port),
                          retry=RetryPolicy(args.timeout, args.backoff, args.attempts),
                          failover=failover, window=args.window, rate=args.rate,
                          no_offload=args.no_offload, give_up_after=args.give_up_after,
                          answerers=tuple(args.answerer), path_probe_s=args.path_probes,
                          keys=keys, local=args.local, fusion=None if args.fusion_member is None
                          else FusionMember(args.fusion_member, tuple(
                              int(g) for g in np.load(args.group_ids)[: args.requests])
                              if args.group_ids else ()), start_at=args.start_at)
    except (ValueError, SealError) as exc:
        parser.error(str(exc))

    def emit(result: RequestResult) -> None:
        print(json.dumps(asdict(result)), flush=True)

    endpoint = None
    if args.metrics:
        host, _, port = args.metrics.rpartition(":")
        endpoint = MetricsEndpoint(lambda: agent.capability(args.name), host or "0.0.0.0",
                                   int(port)).start()
    try:
        results = asyncio.run(agent.run(inputs, emit))
    finally:
        if endpoint is not None:
            endpoint.stop()
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
