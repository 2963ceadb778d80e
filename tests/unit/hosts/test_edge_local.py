"""The edge agent answering itself (``local``): edge-only inference, nothing sent."""

from __future__ import annotations

import asyncio
import socket

import pytest

from hosts.edge_agent import LOCAL, EdgeAgent, RetryPolicy


def test_a_local_agent_answers_every_request_itself_with_the_integer_reference(model, digits):
    xs = model.quantize_input(digits.x_test[:20])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as cloud:  # would see any send
        cloud.bind(("127.0.0.1", 0))
        cloud.setblocking(False)
        agent = EdgeAgent(model, "127.0.0.1", len(model.layers), port=cloud.getsockname()[1],
                          bind=("127.0.0.1", 0), seed=1, retry=RetryPolicy(timeout=0.05, attempts=1),
                          local=True)
        results = asyncio.run(agent.run(xs))
        with pytest.raises(BlockingIOError):
            cloud.recv(65535)
    assert [r.logits for r in results] == model.forward_int(xs).tolist()
    assert all(r.ok and r.answered_by == LOCAL and r.attempts == 0 and r.net_layers == 0
               for r in results)
    assert agent.counts["sends"] == 0 and agent.counts["answered"] == 20


def test_answering_locally_needs_every_layer_on_the_edge(model):
    with pytest.raises(ValueError, match="every layer on the edge"):
        EdgeAgent(model, "127.0.0.1", 1, local=True)
