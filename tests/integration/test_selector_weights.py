"""Weighted action selector members on the embedded switch process, over P4Runtime,
with real frames of 2,000 flows through veth pairs (tests/conformance/selector_rig.py).

A member of weight w is w copies of it in the group, as PI makes BMv2 do: each flow
takes copy number crc16(source address, source port) % (sum of weights) in BMv2's
handle order, so each member's share follows its weight, and one flow always takes the
same member. Groups and one-shot action sets alike; reads give weights and watch ports
back as written; PI's refusals (weight not positive, sum of weights over the group's
max_size or the P4Info's max_group_size) and the P4Runtime spec's (a watch port the
switch does not have)."""
import os
import re
import socket
import struct

import finsy as fy
import grpc
import pytest
from finsy.proto import p4r

from embedded_switch.hashes import ALGORITHMS
from tests.conformance.selector_rig import (
    LB,
    SELECTOR,
    SelectorSwitch,
    flows,
    frames,
    member_mac,
    shares,
)
from tests.p4rt_client import batch_errors, rpc_error

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces and veth pairs"),
]

FLOWS = flows(2000)
MEMBER_PORTS = {1: 2, 2: 3, 3: 4}


@pytest.fixture
def sw(tmp_path):
    with SelectorSwitch("embedded", tmp_path) as switch:
        switch.client.write(*switch.members(MEMBER_PORTS))
        yield switch


def bmv2_choice(weights: dict[int, int]) -> list[int]:
    """The members a group of fresh members {id: weight} (created in id order) chooses
    from, in BMv2's handle order: the members' own handles first, then the copies of
    each weighted member in id order (PI creates them when the group is written)."""
    return list(weights) + [m for m, w in weights.items() for _ in range(w - 1)]


def expected_member(flow: tuple[str, int], choice: list[int]) -> int:
    src, sport = flow
    return choice[ALGORITHMS["crc16"](socket.inet_aton(src) + struct.pack("!H", sport)) % len(choice)]


def check_shares(taken: dict, weights: dict[int, int]) -> None:
    assert len(taken) == len(FLOWS), f"{len(FLOWS) - len(taken)} frames were lost"
    for index, (port, member) in taken.items():
        assert port == MEMBER_PORTS[member], f"frame {index}: member {member} out of port {port}"
    got, total = shares(taken), sum(weights.values())
    print(f"\nweights {weights}: shares {', '.join(f'member {m} {s:.1f}%' for m, s in got.items())}")
    for member, weight in weights.items():
        assert abs(got.get(member, 0.0) - 100.0 * weight / total) < 5.0, got


@pytest.mark.parametrize("weights", [{1: 1, 2: 1}, {1: 3, 2: 1}], ids=["1:1", "3:1"])
def test_shares_of_2000_flows_follow_the_weights(sw, weights):
    sw.client.write(sw.group(1, weights), +sw.entry(1))
    taken = sw.send(frames(FLOWS))
    check_shares(taken, weights)
    choice = bmv2_choice(weights)
    assert all(member == expected_member(FLOWS[i], choice) for i, (_, member) in taken.items())
    again = sw.send(frames(FLOWS[:300]))
    assert again == {i: taken[i] for i in range(300)}  # a flow stays on its member


def test_modify_changes_the_weights(sw):
    sw.client.write(sw.group(1, {1: 1, 2: 1}), +sw.entry(1))
    group = fy.P4ActionProfileGroup(SELECTOR, group_id=1, members=[
        fy.P4Member(1, weight=1), fy.P4Member(2, weight=3)])
    sw.client.write(~group)
    taken = sw.send(frames(FLOWS))
    check_shares(taken, {1: 1, 2: 3})
    [read] = sw.client.read(fy.P4ActionProfileGroup(SELECTOR, group_id=1))
    assert [(m.member_id, m.weight) for m in read.members] == [(1, 1), (2, 3)]


def test_one_shot_action_sets_are_weighted_too(sw):
    entry = fy.P4TableEntry(LB, match=fy.P4TableMatch({"hdr.ipv4.dstAddr": "10.0.0.1"}),
                            action=fy.P4IndirectAction([3 * sw.forward(1, 2), (1, 3) * sw.forward(2, 3)]))
    sw.client.write(+entry)
    taken = sw.send(frames(FLOWS))
    check_shares(taken, {1: 3, 2: 1})
    # PI creates a one-shot action's copies in a row: [1, 1, 1, 2] in handle order
    assert all(member == expected_member(FLOWS[i], [1, 1, 1, 2]) for i, (_, member) in taken.items())
    [read] = sw.client.read(fy.P4TableEntry(LB))
    assert [(w, a.args["smac"]) for w, a in read.action.action_set] == [
        (3, member_mac(1)), ((1, 3), member_mac(2))]
    assert sw.client.read(fy.P4ActionProfileMember(SELECTOR)) == sw.client.read(
        fy.P4ActionProfileMember(SELECTOR, member_id=0))  # the hidden copies stay hidden
    assert len(sw.client.read(fy.P4ActionProfileMember(SELECTOR))) == len(MEMBER_PORTS)


def test_weights_and_watch_ports_are_read_back_as_written(sw):
    schema = sw.client.schema
    profile_id = schema.action_profiles[SELECTOR].id
    Member = p4r.ActionProfileGroup.Member
    written = p4r.ActionProfileGroup(action_profile_id=profile_id, group_id=4, max_size=8, members=[
        Member(member_id=3, weight=2),
        Member(member_id=1, weight=3, watch_port=b"\x00\x02"),  # not canonical: kept as sent
        Member(member_id=2, weight=1, watch=3),  # the deprecated int32 form
    ])
    sw.client.write(p4r.Update(type=p4r.Update.INSERT, entity=p4r.Entity(action_profile_group=written)))
    [read] = sw.client.read_raw(p4r.Entity(action_profile_group=p4r.ActionProfileGroup(
        action_profile_id=profile_id, group_id=4)))
    expected = p4r.ActionProfileGroup()
    expected.CopyFrom(written)
    del expected.members[:]
    expected.members.extend(sorted(written.members, key=lambda m: m.member_id))  # PI's order
    assert read.action_profile_group == expected

    action = sw.forward(1, 2).encode_action(schema)  # a one-shot set with both forms
    item = p4r.ActionProfileAction
    action_set = p4r.ActionProfileActionSet(action_profile_actions=[
        item(action=action, weight=2, watch=2), item(action=action, weight=1, watch_port=b"\x03"),
        item(action=action, weight=1)])
    entry = fy.P4TableEntry(LB, match=fy.P4TableMatch({"hdr.ipv4.dstAddr": "10.0.0.1"})).encode(schema)
    entry.table_entry.action.action_profile_action_set.CopyFrom(action_set)
    sw.client.write(p4r.Update(type=p4r.Update.INSERT, entity=entry))
    [read] = sw.client.read_raw(fy.P4TableEntry(LB).encode(schema))
    assert read.table_entry.action.action_profile_action_set == action_set


def member(member_id: int, weight: int, watch_port: bytes | None = None) -> p4r.ActionProfileGroup.Member:
    m = p4r.ActionProfileGroup.Member(member_id=member_id, weight=weight)
    if watch_port is not None:
        m.watch_port = watch_port
    return m


@pytest.mark.parametrize("max_size, members, code, message", [
    (0, [member(1, 0)], grpc.StatusCode.INVALID_ARGUMENT, "weight must be a positive integer"),
    (0, [member(1, 2), member(2, -1)], grpc.StatusCode.INVALID_ARGUMENT, "weight must be a positive"),
    (4, [member(1, 3), member(2, 2)], grpc.StatusCode.RESOURCE_EXHAUSTED,
     r"Sum of member weights exceeds maximum group size \(5 > 4\)"),
    (0, [member(1, 5), member(2, 4)], grpc.StatusCode.RESOURCE_EXHAUSTED,
     r"exceeds maximum group size \(9 > 8\)"),  # the P4Info's max_group_size
    (9, [member(1, 1)], grpc.StatusCode.INVALID_ARGUMENT, "exceeds the P4Info max_group_size 8"),
    (-1, [member(1, 1)], grpc.StatusCode.INVALID_ARGUMENT, "max_size cannot be less than 0"),
    (0, [member(1, 1, b"\x07")], grpc.StatusCode.INVALID_ARGUMENT,
     r"watches port 7, which this switch does not have \(its ports: 1, 2, 3, 4\)"),
    (0, [member(1, 1, b"\x01\x00\x00\x00\x00")], grpc.StatusCode.INVALID_ARGUMENT, "does not fit in 32 bits"),
    (0, [member(1, 1), member(1, 2)], grpc.StatusCode.INVALID_ARGUMENT, "listed twice, use weights"),
    (0, [member(9, 1)], grpc.StatusCode.NOT_FOUND, "no member 9"),
])
def test_bad_groups_are_refused_with_pis_codes(sw, max_size, members, code, message):
    profile_id = sw.client.schema.action_profiles[SELECTOR].id
    group = p4r.ActionProfileGroup(action_profile_id=profile_id, group_id=1, max_size=max_size,
                                   members=members)
    update = p4r.Update(type=p4r.Update.INSERT, entity=p4r.Entity(action_profile_group=group))
    error = rpc_error(sw.client.write, update)
    [detail] = batch_errors(error)
    assert detail.canonical_code == code.value[0], detail
    assert re.search(message, detail.message), detail.message
    assert sw.client.read(fy.P4ActionProfileGroup(SELECTOR)) == []
    sw.client.write(sw.group(1, {1: 1, 2: 1, 3: 1}), +sw.entry(1))  # nothing was left behind
    taken = sw.send(frames(FLOWS[:200]))
    assert all(m == expected_member(FLOWS[i], [1, 2, 3]) for i, (_, m) in taken.items())


@pytest.mark.parametrize("actions, code, message", [
    ([(0, None)], grpc.StatusCode.INVALID_ARGUMENT, "weight must be a positive integer"),
    ([(5, None), (4, None)], grpc.StatusCode.RESOURCE_EXHAUSTED,
     r"Sum of weights exceeds static max_group_size \(from P4Info\) \(9 > 8\)"),
    ([(1, b"\x00\x09")], grpc.StatusCode.INVALID_ARGUMENT, "port 9, which this switch does not have"),
])
def test_bad_one_shot_action_sets_are_refused(sw, actions, code, message):
    schema = sw.client.schema
    entry = fy.P4TableEntry(LB, match=fy.P4TableMatch({"hdr.ipv4.dstAddr": "10.0.0.1"})).encode(schema)
    action_set = entry.table_entry.action.action_profile_action_set
    for weight, watch_port in actions:
        item = action_set.action_profile_actions.add(action=sw.forward(1, 2).encode_action(schema),
                                                     weight=weight)
        if watch_port is not None:
            item.watch_port = watch_port
    error = rpc_error(sw.client.write, p4r.Update(type=p4r.Update.INSERT, entity=entry))
    [detail] = batch_errors(error)
    assert detail.canonical_code == code.value[0], detail
    assert re.search(message, detail.message), detail.message
    assert sw.client.read(fy.P4TableEntry(LB)) == []
    assert len(sw.client.read(fy.P4ActionProfileMember(SELECTOR))) == len(MEMBER_PORTS)


def test_a_watch_port_outside_a_selector_is_refused(sw):
    """A table of a plain action profile takes no action set, so no watch port."""
    entry = fy.P4TableEntry("SelIngress.pinned", match=fy.P4TableMatch({"hdr.ipv4.dstAddr": "10.0.0.1"}),
                            action=fy.P4IndirectAction([(1, 2) * sw.forward(1, 2)]))
    error = rpc_error(sw.client.write, +entry)
    [detail] = batch_errors(error)
    assert detail.canonical_code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "need an action selector" in detail.message
