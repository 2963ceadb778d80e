"""Sealed tensors between the edge agent and the cloud server on loopback (dcia.sealing)."""

from __future__ import annotations

import asyncio

import pytest

from dcia.sealing import TensorKeys, new_key, seal
from dcia.wire import Flag, Status, peek
from hosts import messages
from hosts.cloud_server import CloudServer
from hosts.edge_agent import EdgeAgent, RetryPolicy
from tests.unit.hosts.test_edge_agent import LoopbackCloud

KEY = bytes(range(32))
EDGE = ("127.0.0.1", 5000)


def test_sealed_requests_get_sealed_answers_equal_to_the_integer_reference(model, digits):
    xs = model.quantize_input(digits.x_test[:40])
    keys = TensorKeys({"127.0.0.1": KEY})
    with LoopbackCloud(model, keys=keys, sealed_models=[model.model_id]) as cloud:
        agent = EdgeAgent(model, "127.0.0.1", 1, port=cloud.port, bind=("127.0.0.1", 0), seed=3,
                          keys=keys)
        results = asyncio.run(agent.run(xs))
    assert [r.logits for r in results] == model.forward_int(xs).tolist()
    assert agent.counts["sealed"] == 40 and agent.counts["seal_failures"] == 0
    assert cloud.server.stats.sealed == 40 and cloud.server.stats.errors == 0


def test_an_edge_with_another_key_gets_bad_seal_errors_not_answers(model, digits):
    xs = model.quantize_input(digits.x_test[:5])
    with LoopbackCloud(model, keys=TensorKeys({"127.0.0.1": KEY})) as cloud:
        agent = EdgeAgent(model, "127.0.0.1", 1, port=cloud.port, bind=("127.0.0.1", 0), seed=3,
                          keys=TensorKeys({"127.0.0.1": new_key()}))
        results = asyncio.run(agent.run(xs))
    assert [r.status for r in results] == [f"error {int(Status.BAD_SEAL)}"] * 5
    assert cloud.server.stats.errors_by_status[Status.BAD_SEAL] == 5


def test_the_cloud_refuses_a_sealed_model_in_the_clear_and_unknown_senders(model):
    server = CloudServer([model], keys=TensorKeys({"10.0.1.1": KEY}), sealed_models=[model.model_id])
    plain = messages.tensor_request(model_id=model.model_id, version=model.version, request_id=1,
                                    next_layer=1, elems=[0] * model.layers[1].n_in)
    for payload, source in [(plain, ("10.0.1.1", 1)), (seal(plain, KEY), ("10.0.1.9", 1)),
                            (seal(plain, new_key()), ("10.0.1.1", 1))]:
        answer = server.handle(payload, source)
        assert peek(answer).flags == Flag.ERROR and peek(answer).status == Status.BAD_SEAL
    answer = server.handle(seal(plain, KEY), ("10.0.1.1", 1))
    assert int(peek(answer).flags) == Flag.RESULT | Flag.ENCRYPTED


def test_a_plain_or_forged_answer_to_a_sealed_request_is_a_stray(model, digits):
    """An on-path forger without the key: its plain RESULT and its sealed RESULT under
    another key are dropped; the real sealed answer is taken."""
    xs = model.quantize_input(digits.x_test[:1])
    keys = TensorKeys({"127.0.0.1": KEY})
    with LoopbackCloud(model, keys=keys) as cloud:
        real = cloud.server.handle

        def forge_first(payload, source):  # the forgeries arrive before the real answer
            answer = real(payload, source)
            plain = messages.result_answer(messages.parse(keys.unseal(payload, "127.0.0.1")),
                                           elems=[9] * 10)
            cloud.sock.sendto(plain, source)
            cloud.sock.sendto(seal(plain, new_key()), source)
            return answer

        cloud.server.handle = forge_first
        agent = EdgeAgent(model, "127.0.0.1", 1, port=cloud.port, bind=("127.0.0.1", 0), seed=3,
                          keys=keys, retry=RetryPolicy(timeout=0.5, attempts=2))
        results = asyncio.run(agent.run(xs))
    assert results[0].ok and results[0].logits == model.forward_int(xs).tolist()[0]
    assert agent.counts["seal_failures"] == 1 and agent.strays >= 2


def test_an_edge_without_a_key_for_a_cloud_does_not_start(model):
    with pytest.raises(ValueError, match="no tensor key for 10.0.4.3"):
        EdgeAgent(model, ["127.0.0.1", "10.0.4.3"], 1, keys=TensorKeys({"127.0.0.1": KEY}))
