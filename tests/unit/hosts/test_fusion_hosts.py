"""Fusion at the end hosts: the cloud answers every group once, to every member, with the
integer reference of the members it got, whatever the network did with them (fused,
partial, passed on unfused, late, retried), and an edge agent sends its inputs as members."""

import asyncio

import numpy as np
import pytest

from dcia.layers import DenseLayer, FusionLayer
from dcia.model import FloatDense, FloatFusion, FloatModel, QuantizedModel
from dcia.wire import DCIA, Flag, decode, fusion_member
from hosts.cloud_server import CloudServer
from hosts.edge_agent import EdgeAgent
from hosts.fusion import FusionMember, flush_request, member_request

A, B, CLOUD = "10.0.1.1", "10.0.3.1", "10.0.2.2"
PORT = 56346


@pytest.fixture
def model():
    float_model = FloatModel("f", [FloatDense(np.ones((3, 4)), np.zeros(3), relu=True),
                                   FloatFusion(3, 2), FloatDense(np.ones((2, 3)), np.zeros(2))])
    return QuantizedModel("f", 2, 1, [
        DenseLayer([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1]], [0, 0, 0], [1] * 3, [0] * 3),
        FusionLayer(3, 2, 20_000),
        DenseLayer([[1, 1, 0], [0, -1, 2]], [0, 0], [1, 1], [0, 0]),
    ], [1.0] * 4, float_model)


@pytest.fixture
def cloud(model):
    return CloudServer([model], fusion_members=[A, B], fusion_wait_s=0.05)


X = {0: [5, -3, 2, 1], 1: [-1, 7, 0, 4]}


def sent(model, m):
    return model.forward_int(np.array(X[m]), 0, 1).tolist()


def fused_packet(model, group, bitmap, elems, next_layer=2):
    return bytes(DCIA(flags=Flag.FUSED, model_id=2, model_version=1, next_layer=next_layer,
                      net_layers=1, request_id=group, reserved=bitmap, elems=elems))


def answers(out):
    return [(decode(a), dest) for a, dest in out]


def reference(model, members):
    return model.forward_int_group([np.array([X[m]]) for m in members])[0].tolist()


def test_a_complete_fused_group_is_answered_at_once_to_every_member(model, cloud):
    fused = np.maximum(sent(model, 0), sent(model, 1)).tolist()
    out = answers(cloud.respond(fused_packet(model, 9, 0b11, fused), (A, PORT), 0.0))
    assert [dest for _, dest in out] == [(A, PORT), (B, PORT)]
    msg = out[0][0]
    assert int(msg.flags) == Flag.RESULT and msg.request_id == 9 and msg.reserved == 0b11
    assert msg.elems == reference(model, [0, 1])
    assert cloud.stats.fusion["groups complete"] == 1 and cloud.stats.answered == 1


def test_a_partial_and_a_late_member_are_joined_into_the_whole_group(model, cloud):
    assert cloud.respond(fused_packet(model, 4, 0b01, sent(model, 0)), (A, PORT), 0.0) == []
    late = member_request(model, group=4, member=1, elems=sent(model, 1))
    out = answers(cloud.respond(late, (B, PORT), 0.01))
    assert len(out) == 2 and out[0][0].reserved == 0b11
    assert out[0][0].elems == reference(model, [0, 1])
    assert cloud.stats.fusion["joined here"] == 2


def test_members_passed_on_unfused_are_fused_by_the_cloud(model, cloud):
    """A slot collision, or no fusion switch on the path: both members reach the cloud."""
    first = member_request(model, group=300, member=1, elems=sent(model, 1))
    assert cloud.respond(first, (B, PORT), 0.0) == []
    assert cloud.respond(first, (B, PORT), 0.001) == []  # the same member again: a duplicate
    out = answers(cloud.respond(member_request(model, group=300, member=0, elems=sent(model, 0)),
                                (A, PORT), 0.002))
    assert out[0][0].elems == reference(model, [0, 1]) and out[0][0].reserved == 0b11
    assert cloud.stats.fusion["duplicate"] == 1


def test_a_partial_group_is_answered_after_the_wait_from_the_members_present(model, cloud):
    assert cloud.respond(fused_packet(model, 5, 0b10, sent(model, 1)), (B, PORT), 1.0) == []
    assert cloud.join.next_deadline() == pytest.approx(1.05)
    assert cloud.expire(1.04) == []
    out = answers(cloud.expire(1.06))
    assert [dest for _, dest in out] == [(A, PORT), (B, PORT)]
    assert out[0][0].reserved == 0b10 and out[0][0].elems == reference(model, [1])
    assert cloud.stats.fusion["groups partial"] == 1
    # the missing member comes after all: it gets the group's answer, nothing is recomputed
    again = answers(cloud.respond(member_request(model, group=5, member=0, elems=sent(model, 0)),
                                  (A, PORT), 2.0))
    assert again == [(again[0][0], (A, PORT))] and again[0][0].reserved == 0b10
    assert cloud.stats.fusion["late"] == 1


def test_a_partial_carried_past_the_fusion_is_final(model, cloud):
    """Switches computed a layer after the fusion: no member can join it any more."""
    h = model.forward_int(np.array(sent(model, 0)), 1, 3).tolist()
    out = answers(cloud.respond(fused_packet(model, 7, 0b01, h, next_layer=3), (A, PORT), 0.0))
    assert len(out) == 2 and out[0][0].reserved == 0b01
    assert out[0][0].elems == reference(model, [0]) and cloud.join.pending == {}
    late = member_request(model, group=7, member=1, elems=sent(model, 1))
    assert answers(cloud.respond(late, (B, PORT), 0.01)) == [(out[0][0], (B, PORT))]


def test_flushes_and_foreign_members_are_not_groups(model, cloud):
    assert cloud.respond(flush_request(model, group=3), (A, PORT), 0.0) == []
    assert cloud.stats.fusion["flush"] == 1
    wrong = bytes(DCIA(flags=Flag.FUSE, model_id=2, model_version=1, next_layer=1, request_id=3,
                       reserved=0x13, elems=sent(model, 0)))  # member 1 of 3: not this layer's
    [(answer, dest)] = answers(cloud.respond(wrong, (A, PORT), 0.0))
    assert int(answer.flags) & Flag.ERROR and dest == (A, PORT)


def test_plain_requests_are_answered_as_before(model, cloud):
    plain = bytes(DCIA(model_id=2, model_version=1, next_layer=0, request_id=11, elems=X[0]))
    [(answer, dest)] = answers(cloud.respond(plain, (A, 40000), 0.0))
    assert dest == (A, 40000) and answer.elems == reference(model, [0])


def test_an_edge_agent_sends_its_inputs_as_members_and_flushes_before_a_retry(model):
    agent = EdgeAgent(model, CLOUD, 1, fusion=FusionMember(1, first_group=100))
    sent_packets = []

    class Transport:
        def sendto(self, data, addr):
            sent_packets.append(decode(data))
            if len(sent_packets) == 3:  # the retry: answer it, as the cloud answers a group
                answer = bytes(DCIA(flags=Flag.RESULT, model_id=2, model_version=1,
                                    next_layer=3, request_id=101, reserved=0b01, elems=[4, 2]))
                asyncio.get_running_loop().call_soon(agent._received, answer, CLOUD)

    async def go():
        agent.given_up = asyncio.get_running_loop().create_future()
        agent.retry = type(agent.retry)(0.01, 2.0, 3)
        return await agent._request(Transport(), 1, X[1])

    result = asyncio.run(go())
    member, flush, retry = sent_packets
    assert (member.request_id, fusion_member(member.reserved), member.next_layer) == (101, (1, 2), 1)
    assert int(member.flags) == Flag.FUSE and member.elems == sent(model, 1)
    assert fusion_member(flush.reserved)[0] == 15 and flush.n_elems == 0 and flush.request_id == 101
    assert bytes(retry) == bytes(member)
    assert result.ok and result.request_id == 101 and result.fused == 0b01 and result.predicted == 0
    with pytest.raises(ValueError, match="fusion member"):
        EdgeAgent(model, CLOUD, 2, fusion=FusionMember(0))
