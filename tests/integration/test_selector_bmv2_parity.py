"""Weighted selector groups and watch ports on BMv2 simple_switch_grpc and on the
embedded switch process: the same P4Runtime writes, the same frames, compared
(tests/conformance/selector_rig.py). Skips, saying why, where BMv2 or root is missing.

What BMv2 does here was measured by these tests: it takes the same member for every
frame; it honours watch ports (its port monitor reads /sys/class/net/IF/operstate every
200 ms and PI's WatchPortEnforcer deactivates the members); and it stops with SIGFPE
on the first frame a group takes once every member's watch port is down (PI's
GroupSelection computes hash % 0), where the embedded switch treats the group as empty."""
import os
import re
import signal
import time

import finsy as fy
import grpc
import pytest
from finsy.proto import p4r

from dcia.targets import find_bmv2
from tests.conformance.selector_rig import (
    LB,
    SELECTOR,
    SelectorSwitch,
    Traffic,
    flows,
    frames,
    measure_failover,
)
from tests.p4rt_client import batch_errors, rpc_error

pytestmark = [
    pytest.mark.parity, pytest.mark.netns,
    pytest.mark.skipif(find_bmv2() is None, reason="BMv2 simple_switch_grpc is not installed"),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces and veth pairs"),
]

FLOWS = flows(2000)
TARGETS = ("bmv2", "embedded")


def on_both(tmp_path, program, batch: list[bytes]) -> dict[str, dict]:
    """What each target does with `batch` after `program(sw)` wrote its state."""
    taken = {}
    for target in TARGETS:
        with SelectorSwitch(target, tmp_path / target) as sw:
            program(sw)
            taken[target] = sw.send(batch)
    return taken


def churned_members(sw) -> None:
    """Members created out of id order, one deleted (BMv2 gives its handle to the next
    member), then a weighted group and a one-shot entry beside it."""
    sw.client.write(*sw.members({30: 2, 10: 3, 20: 4}))
    sw.client.write(-fy.P4ActionProfileMember(SELECTOR, member_id=10))
    sw.client.write(*sw.members({40: 3, 50: 2}))
    sw.client.write(sw.group(1, {20: 2, 30: 1, 40: 3}), sw.group(2, {50: 1, 30: 2}))
    sw.client.write(~fy.P4ActionProfileGroup(SELECTOR, group_id=2, members=[
        fy.P4Member(50, weight=2), fy.P4Member(20, weight=1)]))
    sw.client.write(+sw.entry(1))


@pytest.mark.parametrize("program", [
    lambda sw: sw.client.write(*sw.members({1: 2, 2: 3}), sw.group(1, {1: 1, 2: 1}), +sw.entry(1)),
    lambda sw: sw.client.write(*sw.members({1: 2, 2: 3}), sw.group(1, {1: 3, 2: 1}), +sw.entry(1)),
    churned_members,
    lambda sw: sw.client.write(+fy.P4TableEntry(
        LB, match=fy.P4TableMatch({"hdr.ipv4.dstAddr": "10.0.0.1"}),
        action=fy.P4IndirectAction([2 * sw.forward(1, 2), 1 * sw.forward(2, 3), 3 * sw.forward(3, 4)]))),
], ids=["1:1", "3:1", "churned members", "one-shot 2:1:3"])
def test_each_frame_takes_the_same_member_on_bmv2(tmp_path, program):
    taken = on_both(tmp_path, program, frames(FLOWS))
    assert len(taken["bmv2"]) == len(FLOWS)
    assert taken["embedded"] == taken["bmv2"]


def test_weights_and_watch_ports_read_back(tmp_path):
    """Both give weights back; BMv2 (PI) gives every member of a group the watch port of
    its last member, the embedded switch the one each member was written with."""
    reads = {}
    for target in TARGETS:
        with SelectorSwitch(target, tmp_path / target) as sw:
            sw.client.write(*sw.members({1: 2, 2: 3, 3: 4}))
            sw.client.write(sw.group(1, {1: 3, 2: 1, 3: 2}, watch={1: 2, 2: 3}))
            [group] = sw.client.read(fy.P4ActionProfileGroup(SELECTOR, group_id=1))
            reads[target] = [(m.member_id, m.weight) for m in group.members]
    assert reads["embedded"] == [(1, (3, 2)), (2, (1, 3)), (3, 2)]
    print(f"\nBMv2 reads back {reads['bmv2']}")
    assert [(m, w if isinstance(w, int) else w[0]) for m, w in reads["bmv2"]] == [(1, 3), (2, 1), (3, 2)]


def member(member_id: int, weight: int, watch_port: bytes | None = None) -> p4r.ActionProfileGroup.Member:
    m = p4r.ActionProfileGroup.Member(member_id=member_id, weight=weight)
    if watch_port is not None:
        m.watch_port = watch_port
    return m


REFUSALS = [
    (0, [member(1, 0)], grpc.StatusCode.INVALID_ARGUMENT),
    (4, [member(1, 3), member(2, 2)], grpc.StatusCode.RESOURCE_EXHAUSTED),
    (0, [member(1, 5), member(2, 4)], grpc.StatusCode.RESOURCE_EXHAUSTED),  # P4Info max_group_size 8
    (9, [member(1, 1)], grpc.StatusCode.INVALID_ARGUMENT),
    (0, [member(1, 1), member(1, 1)], grpc.StatusCode.INVALID_ARGUMENT),
]


def test_bad_groups_are_refused_with_the_codes_bmv2_gives(tmp_path):
    """Each bad group under a group id of its own: BMv2 keeps a group whose insert it
    refused for a member's weight (PI creates the group, then fails on the member), so a
    second refusal under the same id would only say "Duplicate group id"."""
    codes, left = {}, {}
    for target in TARGETS:
        with SelectorSwitch(target, tmp_path / target) as sw:
            sw.client.write(*sw.members({1: 2, 2: 3}))
            profile_id = sw.client.schema.action_profiles[SELECTOR].id
            codes[target] = []
            for group_id, (max_size, members, _) in enumerate(REFUSALS, start=1):
                group = p4r.ActionProfileGroup(action_profile_id=profile_id, group_id=group_id,
                                               max_size=max_size, members=members)
                error = rpc_error(sw.client.write, p4r.Update(
                    type=p4r.Update.INSERT, entity=p4r.Entity(action_profile_group=group)))
                [detail] = batch_errors(error)
                codes[target].append((detail.canonical_code, detail.message))
            left[target] = sorted(g.group_id for g in sw.client.read(fy.P4ActionProfileGroup(SELECTOR)))
    print("\n" + "\n".join(f"BMv2: {code} {message}" for code, message in codes["bmv2"]))
    print(f"groups left after the refusals: {left}")
    for (code, message), (_, _, wanted) in zip(codes["bmv2"], REFUSALS):
        assert code == wanted.value[0], message
    assert [c for c, _ in codes["embedded"]] == [c for c, _ in codes["bmv2"]]
    assert left["embedded"] == []   # a refused write changes nothing


def test_bmv2_takes_a_watch_port_it_does_not_have_and_never_chooses_that_member(tmp_path):
    """The P4Runtime spec asks for INVALID_ARGUMENT, which the embedded switch gives."""
    with SelectorSwitch("bmv2", tmp_path) as sw:
        sw.client.write(*sw.members({1: 2, 2: 3}))
        sw.client.write(sw.group(1, {1: 1, 2: 1}, watch={1: 7}), +sw.entry(1))
        taken = sw.send(frames(FLOWS[:500]))
    assert {member for _, member in taken.values()} == {2}
    with SelectorSwitch("embedded", tmp_path / "embedded") as sw:
        sw.client.write(*sw.members({1: 2, 2: 3}))
        error = rpc_error(sw.client.write, sw.group(1, {1: 1, 2: 1}, watch={1: 7}))
        [detail] = batch_errors(error)
        assert detail.canonical_code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        assert re.search("port 7, which this switch does not have", detail.message)


@pytest.mark.parametrize("side", ["host", "switch"])
def test_bmv2_honours_watch_ports(tmp_path, side):
    """BMv2 polls each port's operstate every 200 ms: when the link goes down at the
    host's end, failover within a poll, and (PI's enforcer) the member back when the port
    is up. When the switch's own interface goes down, BMv2 stops forwarding on every
    port and does not start again when it comes back up (measured at 1,000 frames/s: no
    frame of any flow came out from the moment the interface went down); the embedded
    switch fails over as on the host side."""
    results = {}
    for target in TARGETS:
        with SelectorSwitch(target, tmp_path / target) as sw:
            sw.client.write(*sw.members({1: 2, 2: 3}),
                            sw.group(1, {1: 1, 2: 1}, watch={1: 2, 2: 3}), +sw.entry(1))
            results[target] = measure_failover(sw, flows(400, seed=5), port=2, side=side,
                                               bound=0.5, rate=1000)
            assert sw.process.proc.poll() is None
    for target, result in results.items():
        print(f"\n{target}, link down on the {side} side: {result}")
    bmv2, embedded = results["bmv2"], results["embedded"]
    assert embedded.other_flows_disturbed == 0
    assert embedded.down_delay < 0.5 and embedded.moved_not_on_survivor == 0
    assert embedded.up_delay < 0.5 and embedded.not_back == 0
    if side == "switch":
        assert bmv2.other_flows_disturbed > 0.5 * bmv2.other_flows and bmv2.not_back > 0
        return
    assert bmv2.other_flows_disturbed == 0
    assert bmv2.down_delay < 0.5 and bmv2.moved_not_on_survivor == 0
    assert bmv2.up_delay < 0.5 and bmv2.not_back == 0
    assert embedded.down_delay < bmv2.down_delay + 0.05


def test_bmv2_stops_with_sigfpe_once_every_watch_port_is_down(tmp_path):
    with SelectorSwitch("bmv2", tmp_path) as sw:
        sw.client.write(*sw.members({1: 4, 2: 4}),
                        sw.group(1, {1: 1, 2: 1}, watch={1: 2, 2: 3}), +sw.entry(1))
        assert len(sw.send(frames(FLOWS[:100]))) == 100
        sw.set_link(2, False)
        sw.set_link(3, False)
        time.sleep(0.6)  # three polls of BMv2's port monitor
        assert sw.process.proc.poll() is None  # the ports going down do not stop it...
        with Traffic(sw, FLOWS[:10], rate=100):
            time.sleep(0.3)
        deadline = time.monotonic() + 5
        while sw.process.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sw.process.proc.returncode == -signal.SIGFPE  # ...the next frame does
