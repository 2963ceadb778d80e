"""The edge agent against a cloud server on loopback: answers, retries, timeouts."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import numpy as np
import pytest

from hosts import messages
from hosts.cloud_server import CloudServer, serve
from hosts.edge_agent import EdgeAgent, RetryPolicy


class LoopbackCloud:
    """A cloud server thread on 127.0.0.1; ``drop`` decides which answers get lost."""

    def __init__(self, model, drop=lambda n: False, **server_options):
        self.server = CloudServer([model], **server_options)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.stop = [False]
        self.sent = 0
        self.drop = drop
        handle = self.server.handle

        def lossy(payload, source):
            answer = handle(payload, source)
            self.sent += 1
            return None if self.drop(self.sent) else answer

        self.server.handle = lossy
        self.thread = threading.Thread(target=serve, args=(self.server, self.sock, self.stop))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop[0] = True
        self.thread.join()
        self.sock.close()


def agent(model, cloud, edge_layers=1, **kw):
    return EdgeAgent(model, "127.0.0.1", edge_layers, port=cloud.port, bind=("127.0.0.1", 0),
                     seed=1, **kw)


def test_many_requests_in_flight_all_match_the_integer_reference(model, digits):
    xs = model.quantize_input(digits.x_test[:60])
    with LoopbackCloud(model) as cloud:
        seen = []
        results = asyncio.run(agent(model, cloud, window=8).run(xs, seen.append))
    want = model.forward_int(xs).tolist()
    assert [r.index for r in results] == list(range(60)) and len(seen) == 60
    assert all(r.ok and r.attempts == 1 and r.cloud_from == 1 for r in results)
    assert [r.logits for r in results] == want
    assert [r.predicted for r in results] == list(np.argmax(want, axis=1))
    assert len({r.request_id for r in results}) == 60
    assert cloud.server.stats.requests == 60 and cloud.server.stats.arrivals == {1: 60}


def test_a_lost_answer_is_retried_and_the_cloud_counts_the_request_once(model, digits):
    xs = model.quantize_input(digits.x_test[:10])
    with LoopbackCloud(model, drop=lambda n: n % 2 == 1) as cloud:  # every first answer lost
        results = asyncio.run(agent(model, cloud, window=1,
                                    retry=RetryPolicy(timeout=0.05, attempts=3)).run(xs))
    assert all(r.ok and r.attempts == 2 for r in results)
    assert [r.logits for r in results] == model.forward_int(xs).tolist()
    assert (cloud.server.stats.requests, cloud.server.stats.retries) == (10, 10)


def test_no_answer_at_all_gives_up_after_the_bounded_attempts(model, digits):
    xs = model.quantize_input(digits.x_test[:2])
    with LoopbackCloud(model, drop=lambda n: True) as cloud:
        results = asyncio.run(agent(model, cloud,
                                    retry=RetryPolicy(timeout=0.02, backoff=2, attempts=3)).run(xs))
    assert [(r.status, r.attempts, r.predicted) for r in results] == [("timeout", 3, -1)] * 2
    assert all(r.latency_s >= 0.02 + 0.04 + 0.08 for r in results)


@pytest.mark.parametrize("edge_layers", [0, 2, 4])
def test_the_edge_runs_the_layers_it_is_given(model, digits, edge_layers):
    xs = model.quantize_input(digits.x_test[:5])
    with LoopbackCloud(model) as cloud:
        results = asyncio.run(agent(model, cloud, edge_layers).run(xs))
    assert [r.logits for r in results] == model.forward_int(xs).tolist()
    assert cloud.server.stats.arrivals == {edge_layers: 5}


def test_an_answer_from_an_address_that_may_not_answer_is_counted_and_dropped(model, digits):
    """A forged RESULT from 127.0.0.2 for a pending request id is not taken as the answer."""
    xs = model.quantize_input(digits.x_test[:1])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as cloud_sock:
        cloud_sock.bind(("127.0.0.1", 0))
        cloud_sock.settimeout(5)
        edge = EdgeAgent(model, "127.0.0.1", 1, port=cloud_sock.getsockname()[1],
                         bind=("127.0.0.1", 0), seed=1, retry=RetryPolicy(timeout=5, attempts=1))
        server = CloudServer([model])

        def cloud_with_a_forger_first():
            payload, source = cloud_sock.recvfrom(65535)
            head = messages.parse(payload)
            forged = messages.result_answer(head, elems=[127] + [0] * 9, next_layer=len(model.layers))
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as forger:
                forger.bind(("127.0.0.2", 0))
                forger.sendto(forged, source)
            time.sleep(0.2)  # the forgery arrives first
            cloud_sock.sendto(server.handle(payload, source), source)

        thread = threading.Thread(target=cloud_with_a_forger_first)
        thread.start()
        try:
            results = asyncio.run(edge.run(xs))
        finally:
            thread.join(10)
    assert results[0].ok and results[0].logits == model.forward_int(xs).tolist()[0]
    assert edge.strays == 1


def test_the_edge_advertises_what_it_did(model, digits):
    """The edge's metric-agent record and counters follow its requests, also over HTTP."""
    from dcia.capability import LoadedModel, NodeKind
    from dcia.metrics import MetricsEndpoint, fetch

    xs = model.quantize_input(digits.x_test[:20])
    with LoopbackCloud(model, drop=lambda n: n == 3) as cloud:
        edge = agent(model, cloud, edge_layers=2, retry=RetryPolicy(0.2, 2.0, 3))
        with MetricsEndpoint(lambda: edge.capability("h1")) as endpoint:
            results = asyncio.run(edge.run(xs))
            record, counters = fetch(endpoint.address)
    assert all(r.ok for r in results)
    assert record.kind is NodeKind.EDGE and record.name == "h1"
    assert record.models == (LoadedModel(model.model_id, model.version, (0, 1)),)
    assert counters["requests"] == counters["answered"] == 20 and counters["errors"] == 0
    assert counters["sends"] == 21          # one answer lost: one request sent twice
    assert record.delay_s == pytest.approx(sum(r.latency_s for r in results) / 20)
    assert record.layer_time_s == pytest.approx(counters["edge_seconds"] / 40)
