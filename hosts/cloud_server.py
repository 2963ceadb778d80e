"""The cloud server: finishes every tensor it receives and answers the edge.

It listens on UDP port 56346. Whatever the network did or did not compute, it continues
from the packet's ``next_layer``: it runs layers ``[next_layer, n)`` of the model with the
integer reference and answers with ``RESULT`` and the model's output (the logits; the edge
takes the arg max). A packet it cannot finish gets an ``ERROR`` answer whose ``status``
says why: malformed (as dcia.wire.malformation defines it, or flagged ``MALFORMED`` by a
switch), unknown model or version, a tensor of the wrong size for its next layer.

A retry (the same datagram again from the same source address) gets the very same answer
from a bounded cache and is not counted as a new request. The cache is keyed on the
request's content as well as its source and id, so a replayed or spoofed request id with
another tensor is computed on its own and never poisons the answer of the real one. No
datagram stops the server: an answer it cannot send (a source port of 0, a source it has
no route to) is logged and counted in ``send_errors``.

    python -m hosts.cloud_server --model run/model.json --stats run/cloud.json --metrics 0.0.0.0:9100

runs until SIGINT or SIGTERM and then writes its counters (``CloudStats``) as JSON. With
``--metrics`` it is a metric agent (dcia.metrics): its capability record (the models it
holds, its measured time per layer and per request, its load: the share of the last
interval it spent computing) and its counters at ``/capability.json`` and ``/metrics``.

With ``--tensor-keys FILE`` (dcia.sealing.TensorKeys: edge address -> key) it opens sealed
tensors (``ENCRYPTED``) from those edges and seals its answers to them with the same key;
a sealed tensor it cannot open (no key for its source, a tag that does not verify) gets a
plain ``ERROR`` answer with status ``BAD_SEAL``, as does a plain tensor of a model named
with ``--sealed-model`` (the policy's ``sealed_models``: it must never travel in the clear).

Fusion members and fused tensors (``FUSE``, ``FUSED``) of a model with a fusion layer go
to its join (hosts.fusion.FusionJoin): each group is answered once, to every member
(``--fusion-member ADDRESS``, member 0 first), completed here from what the network
passed on unfused, or after ``--fusion-wait`` from the members present.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import ipaddress
import logging
import signal
import socket
import sys
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from dcia.capability import Capability
from dcia.metrics import MetricsEndpoint
from dcia.model import QuantizedModel
from dcia.sealing import SealError, TensorKeys, is_sealed
from dcia.wire import (
    DCIA_UDP_PORT,
    FLUSH_MEMBER,
    Flag,
    Status,
    decode,
    fusion_member,
    is_answer,
    malformation,
    peek,
)
from hosts import messages
from hosts.fusion import FUSION_FLAGS, FusionJoin

log = logging.getLogger(__name__)

CACHE_SIZE = 4096
"""Answers kept for retries; a retry older than this many requests is computed again."""

Source = tuple[str, int]


@dataclass
class CloudStats:
    """What the cloud did: distinct requests, retries, errors, the layers it computed.

    ``arrivals`` counts distinct requests by the ``next_layer`` they arrived with: how far
    edge and network had got (keys are strings in JSON).
    """

    requests: int = 0
    retries: int = 0
    answered: int = 0
    errors: int = 0
    ignored: int = 0
    send_errors: int = 0
    """Answers the socket refused to send (logged; the server goes on)."""
    sealed: int = 0
    """Distinct requests that came sealed and were opened (their answers went back sealed)."""
    layers_computed: int = 0
    busy_s: float = 0.0
    """Time spent computing answers (not waiting for datagrams)."""
    arrivals: Counter = field(default_factory=Counter)
    errors_by_status: Counter = field(default_factory=Counter)
    fusion: dict = field(default_factory=dict)
    """The fusion join's counters (hosts.fusion.FusionJoin.stats), when a group came."""

    def to_dict(self) -> dict:
        d = asdict(self)
        d["arrivals"] = {str(k): v for k, v in sorted(self.arrivals.items())}
        d["errors_by_status"] = {str(k): v for k, v in sorted(self.errors_by_status.items())}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> CloudStats:
        return cls(**{**d, "arrivals": Counter({int(k): v for k, v in d["arrivals"].items()}),
                      "errors_by_status": Counter({int(k): v for k, v in d["errors_by_status"].items()})})


class CloudServer:
    """The answering logic, independent of sockets: ``handle(payload, source)``.

    >>> from dcia.model import FloatDense, FloatModel
    >>> from dcia.layers import DenseLayer
    >>> fm = FloatModel("m", [FloatDense(np.eye(2), np.zeros(2))])
    >>> qm = QuantizedModel("m", 1, 1, [DenseLayer([[1, 0], [0, 2]], [0, 0], [1, 1], [0, 0])], [1.0, 1.0], fm)
    >>> cloud = CloudServer([qm])
    >>> req = messages.tensor_request(model_id=1, version=1, request_id=5, next_layer=0, elems=[3, 4])
    >>> messages.parse(cloud.handle(req, ("10.0.1.1", 56346))).elems
    [3, 8]
    >>> cloud.handle(req, ("10.0.1.1", 56346)) is not None, cloud.stats.requests, cloud.stats.retries
    (True, 1, 1)
    """

    def __init__(self, models: Iterable[QuantizedModel], cache_size: int = CACHE_SIZE,
                 tenants: Mapping[int, Iterable[str]] | None = None,
                 keys: TensorKeys | None = None, sealed_models: Iterable[int] = (),
                 fusion_members: Iterable[str] = (), fusion_wait_s: float | None = None):
        self.models = {(m.model_id, m.version): m for m in models}
        self.join = FusionJoin(list(fusion_members), wait_s=fusion_wait_s)
        """Fusion groups being completed here, and the answers of the last ones."""
        self.tenants = {model_id: tuple(ipaddress.IPv4Network(p, strict=False) for p in prefixes)
                        for model_id, prefixes in (tenants or {}).items()}
        """Model id -> the source prefixes that may use it (the policy's tenants); models
        left out are open to every source."""
        self.keys = keys
        """Edge address -> the key its sealed tensors and our answers to them use."""
        self.sealed_models = frozenset(sealed_models)
        """Models answered only when they come sealed."""
        self.known_ids = {m.model_id for m in self.models.values()}
        self.cache: OrderedDict[tuple[str, int, int, bytes], bytes] = OrderedDict()
        self.cache_size = cache_size
        self.stats = CloudStats()
        self._lock = threading.Lock()  # the metrics endpoint reads from its own thread
        self._last = (time.monotonic(), 0.0)  # (when, busy_s) at the last capability()

    def handle(self, payload: bytes, source: Source) -> bytes | None:
        """The answer to one datagram from ``source``, or None for answers that strayed here."""
        if is_answer(payload):
            self.stats.ignored += 1
            return None
        request_id = peek(payload).request_id
        key = (source[0], source[1], request_id, hashlib.sha256(payload).digest())
        cached = self.cache.get(key)
        if cached is not None:
            self.cache.move_to_end(key)
            self.stats.retries += 1
            return cached
        started = time.perf_counter()
        self.stats.requests += 1
        try:
            answer = self._opened(payload, source)
        except Exception:  # a bug must cost one request, not the server
            log.exception("request %d from %s failed", request_id, source[0])
            answer = messages.error_answer(payload, Status.INTERNAL)
        with self._lock:
            self.stats.busy_s += time.perf_counter() - started
        head = peek(answer)
        if int(head.flags) & Flag.ERROR:
            self.stats.errors += 1
            self.stats.errors_by_status[head.status] += 1
        else:
            self.stats.answered += 1
        self.cache[key] = answer
        if len(self.cache) > self.cache_size:
            self.cache.popitem(last=False)
        return answer

    def respond(self, payload: bytes, source: Source, now: float) -> list[tuple[bytes, Source]]:
        """The answers to one datagram and where each goes: ``handle``'s answer to the
        source, or for a fusion packet what the join says (nothing yet, or a group's answer
        to every member)."""
        model = self._fusion_model(payload, source)
        if model is None:
            answer = self.handle(payload, source)
            return [] if answer is None else [(answer, source)]
        started = time.perf_counter()
        msg = decode(payload)
        self.stats.requests += 1
        self.stats.arrivals[msg.next_layer] += 1
        before = self.join.layers_computed
        out = self.join.offer(model, msg, source, now)
        self._fusion_done(started, before, out)
        return out

    def expire(self, now: float) -> list[tuple[bytes, Source]]:
        """The answers of fusion groups whose wait here is over."""
        started, before = time.perf_counter(), self.join.layers_computed
        out = self.join.expire(self.models, now)
        if out:
            self._fusion_done(started, before, out)
        return out

    def _fusion_done(self, started: float, before: int, out: list) -> None:
        with self._lock:
            self.stats.busy_s += time.perf_counter() - started
            self.stats.layers_computed += self.join.layers_computed - before
            self.stats.answered += len({peek(a).request_id for a, _ in out})
            self.stats.fusion = {k: v for k, v in self.join.stats.items()}

    def _fusion_model(self, payload: bytes, source: Source) -> QuantizedModel | None:
        """The model of a plain, well-formed fusion packet of a model with a fusion layer
        (a member before the fusion, a flush, a fused tensor after it); None for anything
        else, which ``handle`` answers as any request."""
        if is_answer(payload) or malformation(payload) is not None:
            return None
        head = peek(payload)
        flags = int(head.flags)
        if not flags & FUSION_FLAGS or flags & (Flag.MALFORMED | Flag.ENCRYPTED):
            return None
        model = self.models.get((head.model_id, head.model_version))
        f = None if model is None else model.fusion_index
        if f is None or not self.allowed(head.model_id, source[0]):
            return None
        start = head.next_layer
        if flags & Flag.FUSED:
            fits = f < start <= len(model.layers)
        else:
            fits = start <= f
        size = model.layers[0].n_in if start == 0 else model.layers[min(start, len(model.layers)) - 1].n_out
        flush = (not flags & Flag.FUSED and start == f and head.n_elems == 0
                 and fusion_member(head.reserved)[0] == FLUSH_MEMBER)
        return model if fits and (head.n_elems == size or flush) else None

    def capability(self, name: str) -> tuple[Capability, dict[str, float]]:
        """This server's record now and its counters (a dcia.metrics snapshot).

        ``load`` is the share of the time since the previous call spent computing;
        ``layer_time_s`` and ``delay_s`` are means over all requests so far.
        """
        with self._lock:
            now, busy = time.monotonic(), self.stats.busy_s
            then, busy_then = self._last
            self._last = (now, busy)
            stats = self.stats
            counters = {"requests": stats.requests, "answered": stats.answered,
                        "errors": stats.errors, "retries": stats.retries,
                        "layers_computed": stats.layers_computed, "busy_seconds": busy}
        load = min(1.0, (busy - busy_then) / (now - then)) if now > then else 0.0
        fields = {"load": load,
                  "models": [{"model_id": m, "version": v} for m, v in sorted(self.models)]}
        if counters["layers_computed"]:
            fields["layer_time_s"] = busy / counters["layers_computed"]
        if counters["requests"]:
            fields["delay_s"] = busy / counters["requests"]
        return Capability.nominal(name, "cloud", **fields), counters

    def allowed(self, model_id: int, source: str) -> bool:
        """Whether ``source`` may use ``model_id`` here (the switches' model_tenants rule)."""
        prefixes = self.tenants.get(model_id)
        if prefixes is None:
            return True
        try:
            address = ipaddress.IPv4Address(source)
        except ValueError:
            return False
        return any(address in p for p in prefixes)

    def _opened(self, payload: bytes, source: Source) -> bytes:
        """The answer to a sealed request, opened and its answer sealed; to a plain one, as is."""
        if not is_sealed(payload):
            if peek(payload).model_id in self.sealed_models:
                log.info("request %d from %s: model %d must come sealed", peek(payload).request_id,
                         source[0], peek(payload).model_id)
                return messages.error_answer(payload, Status.BAD_SEAL)
            return self._answer(payload, source)
        if self.keys is None or source[0] not in self.keys:
            log.info("request %d from %s: sealed, and no tensor key for that source",
                     peek(payload).request_id, source[0])
            return messages.error_answer(payload, Status.BAD_SEAL)
        try:
            plain = self.keys.unseal(payload, source[0])
        except SealError as exc:
            log.info("from %s: %s", source[0], exc)
            return messages.error_answer(payload, Status.BAD_SEAL)
        self.stats.sealed += 1
        return self.keys.seal(self._answer(plain, source), source[0])

    def _answer(self, payload: bytes, source: Source) -> bytes:
        if not self.allowed(peek(payload).model_id, source[0]):
            log.info("request %d from %s: model %d is not this source's", peek(payload).request_id,
                     source[0], peek(payload).model_id)
            return messages.error_answer(payload, Status.UNAUTHORISED)
        problem = malformation(payload)
        if problem is None and int(peek(payload).flags) & Flag.MALFORMED:
            problem = "flagged MALFORMED by a switch"
        if problem is not None:
            log.info("malformed request %d: %s", peek(payload).request_id, problem)
            return messages.error_answer(payload, Status.MALFORMED)
        msg = decode(payload)
        model = self.models.get((msg.model_id, msg.model_version))
        if model is None:
            return messages.error_answer(payload, Status.UNKNOWN_MODEL)
        start, n = msg.next_layer, len(model.layers)
        expected = None if start > n else (model.layers[0].n_in if start == 0 else model.layers[start - 1].n_out)
        if expected is None or msg.n_elems != expected:
            return messages.error_answer(payload, Status.BAD_SHAPE)
        self.stats.arrivals[start] += 1
        logits = model.forward_int(np.array(msg.elems, dtype=np.int64), start, n)
        self.stats.layers_computed += n - start
        return messages.result_answer(msg, elems=logits.tolist(), next_layer=n)


def serve(server: CloudServer, sock: socket.socket, stop: list[bool]) -> None:
    """Answer datagrams on ``sock`` until ``stop[0]`` is set (checked every 0.2 s), and the
    fusion groups whose wait is over when it is."""
    while not stop[0]:
        deadline = server.join.next_deadline()
        wait = 0.2 if deadline is None else min(0.2, max(0.0, deadline - time.monotonic()))
        sock.settimeout(wait or 0.0005)
        out: list[tuple[bytes, Source]] = []
        try:
            payload, source = sock.recvfrom(65535)
            out = server.respond(payload, source, time.monotonic())
        except (TimeoutError, InterruptedError):
            pass
        except OSError as exc:  # e.g. an ICMP error of an earlier answer, reported here
            log.debug("receive: %s", exc)
        if deadline is not None:
            out += server.expire(time.monotonic())
        for answer, destination in out:
            try:
                sock.sendto(answer, destination)
            except OSError as exc:
                server.stats.send_errors += 1
                log.warning("cannot answer request %d to %s:%d: %s", peek(answer).request_id,
                            destination[0], destination[1], exc)


def _tenant(text: str) -> tuple[int, list[str]]:
    """``1=10.0.1.0/24,10.0.3.5`` as (1, [prefixes]) (the type of ``--allow``).

    >>> _tenant("1=10.0.1.0/24,10.0.3.5")
    (1, ['10.0.1.0/24', '10.0.3.5/32'])
    """
    model, sep, prefixes = text.partition("=")
    try:
        if not sep:
            raise ValueError(text)
        networks = [str(ipaddress.IPv4Network(p, strict=False)) for p in prefixes.split(",")]
        return int(model), networks
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give MODEL=PREFIX[,PREFIX], like "
                                         "1=10.0.1.0/24") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hosts.cloud_server",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, action="append", required=True,
                        help="quantized model file (QuantizedModel.save); repeat for several")
    parser.add_argument("--bind", default="0.0.0.0", help="address to listen on")
    parser.add_argument("--port", type=int, default=DCIA_UDP_PORT)
    parser.add_argument("--stats", type=Path, help="write the counters here as JSON on exit")
    parser.add_argument("--cache", type=int, default=CACHE_SIZE, help="answers kept for retries")
    parser.add_argument("--metrics", metavar="HOST:PORT",
                        help="serve the capability record and counters over HTTP here")
    parser.add_argument("--allow", action="append", default=[], type=_tenant, metavar="MODEL=PREFIX[,PREFIX]",
                        help="model MODEL answers only sources in these IPv4 prefixes (others get "
                             "an UNAUTHORISED error); repeatable; models not named answer anyone")
    parser.add_argument("--tensor-keys", type=Path, metavar="FILE",
                        help="open sealed tensors from these edges and seal the answers "
                             "(JSON: edge address -> hex AES-256 key, dcia.sealing)")
    parser.add_argument("--sealed-model", type=int, action="append", default=[], metavar="MODEL",
                        help="answer this model only when its tensors come sealed; repeatable")
    parser.add_argument("--fusion-member", action="append", default=[], metavar="ADDRESS",
                        help="the address of fusion member 0, 1, ... (repeat in member order): "
                             "every group's answer goes to each of them")
    parser.add_argument("--fusion-wait", type=float, metavar="SECONDS",
                        help="how long a group waits here for its missing members "
                             "(default: the fusion layer's timeout)")
    parser.add_argument("--name", default="cloud", help="the node's name in its record")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="cloud: %(levelname)s %(message)s")
    tenants: dict[int, list[str]] = {}
    for model_id, prefixes in args.allow:
        tenants.setdefault(model_id, []).extend(prefixes)
    try:
        keys = TensorKeys.load(args.tensor_keys) if args.tensor_keys else None
    except SealError as exc:
        parser.error(str(exc))
    if args.sealed_model and keys is None:
        parser.error("--sealed-model needs --tensor-keys: no sealed tensor could be opened")
    server = CloudServer([QuantizedModel.load(p) for p in args.model], args.cache, tenants,
                         keys, args.sealed_model, args.fusion_member, args.fusion_wait)
    stop = [False]

    def request_stop(signum, frame):
        stop[0] = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    endpoint = None
    if args.metrics:
        host, _, port = args.metrics.rpartition(":")
        endpoint = MetricsEndpoint(lambda: server.capability(args.name), host or "0.0.0.0",
                                   int(port)).start()
        print(f"cloud server metrics at http://{endpoint.address}/metrics", flush=True)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        sock.bind((args.bind, args.port))
        print(f"cloud server listening on {args.bind}:{args.port}", flush=True)
        serve(server, sock, stop)
    if endpoint is not None:
        endpoint.stop()
    if args.stats:
        args.stats.write_text(json.dumps(server.stats.to_dict(), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
