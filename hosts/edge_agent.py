"""The edge agent: runs the first stage of the plan and sends the tensor on its way.

For each input it computes the edge's layers ``[0, edge_layers)`` with the integer
reference, sends the activation as a DCIA tensor packet (UDP to the cloud's address,
destination port 56346, a random request id) and waits for the answer with that id.
Switches on the way compute what they hold; the cloud finishes. Without an answer within
``timeout`` the agent sends the same packet again, waiting ``backoff`` times longer each
attempt, at most ``attempts`` times. ``window`` requests are in flight at once.

A request therefore ends, answered or ``timeout``, within the sum of its waits. When
``give_up_after`` requests in a row (default: a window's worth) time out with no answer
in between, the path is taken for dead (a switch on it is gone; there is no failover): the
agent stops waiting and sending, and every request not finished yet ends ``abandoned``.
Each input gets exactly one result, whatever happens to the network.

Only an answer from an address that may answer is taken: the cloud's (a switch that
answers on the cloud's behalf, ``steer_answer``, sends from the cloud's address) or one of
``answerers``. Any other datagram, and an answer for another model than the request's, is
counted in ``strays`` and dropped.

    python -m hosts.edge_agent --model run/model.json --cloud 10.0.2.2 --edge-layers 1 \\
        --inputs run/inputs.npy

prints one JSON line per request (``RequestResult``) as the answers come in. With
``--metrics HOST:PORT`` it is a metric agent (dcia.metrics): its record (the edge layers it
runs, measured time per edge layer, ``delay_s`` the mean answer time: the path's round
trip as the edge sees it) and its counters at ``/capability.json`` and ``/metrics``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from dcia.capability import Capability
from dcia.metrics import MetricsEndpoint
from dcia.model import QuantizedModel
from dcia.wire import DCIA_UDP_PORT, Flag, is_answer, malformation, peek
from hosts import messages

log = logging.getLogger(__name__)


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
    for to the end, because the agent had given up on the path; ``error <code>`` from an
    ERROR answer."""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class RetryPolicy:
    """Wait ``timeout`` s for an answer, then ``backoff`` times longer each retry."""

    timeout: float = 1.0
    backoff: float = 2.0
    attempts: int = 5

    def waits(self) -> list[float]:
        return [self.timeout * self.backoff**k for k in range(self.attempts)]


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, agent: EdgeAgent):
        self.agent = agent

    def datagram_received(self, data: bytes, addr) -> None:
        agent, head = self.agent, peek(data)
        future = agent.pending.get(head.request_id)
        if (addr[0] not in agent.answerers or not is_answer(data) or future is None
                or (head.model_id, head.model_version) != (agent.model.model_id, agent.model.version)):
            agent.strays += 1
            log.debug("dropped a datagram from %s:%d (request %d): not an answer we wait for",
                      addr[0], addr[1], head.request_id)
            return
        if not future.done():
            future.set_result(data)

    def error_received(self, exc: Exception) -> None:
        log.debug("socket error: %s", exc)


class EdgeAgent:
    """Sends requests to ``cloud`` and matches the answers by request id."""

    def __init__(self, model: QuantizedModel, cloud: str, edge_layers: int, *,
                 port: int = DCIA_UDP_PORT, bind: tuple[str, int] = ("0.0.0.0", DCIA_UDP_PORT),
                 retry: RetryPolicy = RetryPolicy(),
                 window: int = 16, no_offload: bool = False, seed: int | None = None,
                 answerers: tuple[str, ...] = (), give_up_after: int | None = None):
        if not 0 <= edge_layers <= len(model.layers):
            raise ValueError(f"edge_layers must be in 0..{len(model.layers)}, got {edge_layers}")
        self.model, self.cloud, self.port = model, cloud, port
        self.edge_layers, self.bind = edge_layers, bind
        self.retry, self.window, self.no_offload = retry, window, no_offload
        self.rng = random.Random(seed) if seed is not None else random.SystemRandom()
        self.pending: dict[int, asyncio.Future] = {}
        self.answerers = frozenset({cloud, *answerers})
        self.strays = 0
        """Datagrams dropped: from an address that may not answer, or no answer we wait for."""
        self.give_up_after = window if give_up_after is None else give_up_after
        """Timed-out requests in a row after which the agent gives up the path (0: never)."""
        self.silent = 0
        """Requests in a row that timed out."""
        self.given_up: asyncio.Future | None = None
        """Done once the agent has given up the path (made in ``run``)."""
        self.counts = {"requests": 0, "answered": 0, "errors": 0, "unanswered": 0,
                       "sends": 0, "edge_seconds": 0.0, "answer_seconds": 0.0}
        """Totals for the metric agent (``capability``)."""

    def capability(self, name: str) -> tuple[Capability, dict[str, float]]:
        """This edge's record now and its counters (a dcia.metrics snapshot)."""
        counts = dict(self.counts, strays=self.strays)
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
            if rid not in self.pending:
                return rid

    async def run(self, inputs: np.ndarray,
                  on_result: Callable[[RequestResult], None] | None = None) -> list[RequestResult]:
        """Infer every int8 input (rows of ``inputs``); results in input order."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self), local_addr=self.bind)
        gate = asyncio.Semaphore(self.window)
        self.silent, self.given_up = 0, loop.create_future()

        async def one(index: int) -> RequestResult:
            async with gate:
                result = await self._request(transport, index, inputs[index])
            if on_result:
                on_result(result)
            return result

        try:
            return list(await asyncio.gather(*(one(i) for i in range(len(inputs)))))
        finally:
            transport.close()

    async def _request(self, transport, index: int, x: Sequence[int]) -> RequestResult:
        started = time.perf_counter()
        activation = self.model.forward_int(np.asarray(x, dtype=np.int64), 0, self.edge_layers)
        self.counts["requests"] += 1
        self.counts["edge_seconds"] += time.perf_counter() - started
        rid = self._new_request_id()
        payload = messages.tensor_request(
            model_id=self.model.model_id, version=self.model.version, request_id=rid,
            next_layer=self.edge_layers, elems=activation.tolist(),
            flags=Flag.NO_OFFLOAD if self.no_offload else 0)
        future = asyncio.get_running_loop().create_future()
        self.pending[rid] = future
        attempts = 0
        try:
            for wait in self.retry.waits():
                if self.given_up.done():
                    return self._unanswered(index, rid, started, attempts, "abandoned")
                attempts += 1
                self.counts["sends"] += 1
                transport.sendto(payload, (self.cloud, self.port))
                await asyncio.wait((future, self.given_up), timeout=wait,
                                   return_when=asyncio.FIRST_COMPLETED)
                if future.done():
                    answer = future.result()
                    break
                if self.given_up.done():
                    return self._unanswered(index, rid, started, attempts, "abandoned")
                log.debug("request %d (input %d): no answer in %.2f s", rid, index, wait)
            else:
                self._count_silence()
                return self._unanswered(index, rid, started, attempts, "timeout")
        finally:
            del self.pending[rid]
        self.silent = 0
        latency = time.perf_counter() - started
        msg = messages.parse(answer)
        problem = malformation(msg)
        ok = not (problem or int(msg.flags) & Flag.ERROR)
        self.counts["answered" if ok else "errors"] += 1
        if not ok:
            status = f"error {msg.status}" if not problem else f"error bad answer: {problem}"
            return RequestResult(index, rid, -1, [], latency, attempts, msg.net_layers, -1, status)
        self.counts["answer_seconds"] += latency
        logits = list(msg.elems)
        return RequestResult(index, rid, int(np.argmax(logits)), logits, latency, attempts,
                             msg.net_layers, self.edge_layers + msg.net_layers, "ok")

    def _count_silence(self) -> None:
        """One more request timed out; after ``give_up_after`` in a row, give up the path."""
        self.silent += 1
        if self.give_up_after and self.silent >= self.give_up_after and not self.given_up.done():
            log.warning("no answer to %d requests in a row: the path to %s is down, the "
                        "remaining requests are abandoned", self.silent, self.cloud)
            self.given_up.set_result(None)

    def _unanswered(self, index: int, rid: int, started: float, attempts: int,
                    status: str) -> RequestResult:
        self.counts["unanswered"] += 1
        return RequestResult(index, rid, -1, [], time.perf_counter() - started, attempts, 0,
                             -1, status)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hosts.edge_agent",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="quantized model file")
    parser.add_argument("--cloud", required=True, help="IPv4 address of the cloud server")
    parser.add_argument("--edge-layers", type=int, default=1, help="layers the edge computes")
    parser.add_argument("--inputs", type=Path, required=True,
                        help=".npy file of float inputs (quantized here), one row per request")
    parser.add_argument("--requests", type=int, help="only the first N inputs")
    parser.add_argument("--window", type=int, default=16, help="requests in flight at once")
    parser.add_argument("--timeout", type=float, default=1.0, help="first wait for an answer, s")
    parser.add_argument("--backoff", type=float, default=2.0, help="factor between waits")
    parser.add_argument("--attempts", type=int, default=5, help="sends per request at most")
    parser.add_argument("--give-up-after", type=int,
                        help="abandon the rest after N requests in a row timed out "
                             "(default: the window; 0: never)")
    parser.add_argument("--no-offload", action="store_true", help="forbid switches to compute")
    parser.add_argument("--port", type=int, default=DCIA_UDP_PORT, help="the cloud's UDP port")
    parser.add_argument("--local-port", type=int, default=DCIA_UDP_PORT,
                        help="UDP port to send from and receive answers on")
    parser.add_argument("--metrics", metavar="HOST:PORT",
                        help="serve the capability record and counters over HTTP here")
    parser.add_argument("--name", default="edge", help="the node's name in its record")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="edge: %(levelname)s %(message)s", stream=sys.stderr)
    model = QuantizedModel.load(args.model)
    inputs = model.quantize_input(np.load(args.inputs)[: args.requests])
    agent = EdgeAgent(model, args.cloud, args.edge_layers, port=args.port,
                      bind=("0.0.0.0", args.local_port),
                      retry=RetryPolicy(args.timeout, args.backoff, args.attempts),
                      window=args.window, no_offload=args.no_offload,
                      give_up_after=args.give_up_after)

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
