"""Watch ports (P4Runtime fast failover) on the embedded switch process: a member whose
watch port goes down leaves its group's choice at once, with no controller involved,
and takes its flows back when the port comes up. Real veth links taken down with
`ip link set dev X down`, on the peer (the host's end: the switch's port loses its
carrier) or on the switch's own interface; traffic of 400 flows at 2,000 frames per
second through the group while it happens (tests/conformance/selector_rig.py).

The embedded switch follows the kernel's link notifications (rtnetlink), so the delay
is the kernel's; `pytest -s` prints what each run measured."""
import os
import time

import finsy as fy
import pytest

from tests.conformance.selector_rig import LB, SelectorSwitch, Traffic, flows, measure_failover

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces and veth pairs"),
]

FLOWS = flows(400, seed=5)
BOUND = 0.1
"""Seconds within which traffic must leave a dead member and return to a live one: the
issue's target for failover (the embedded switch measures a few milliseconds)."""


def one_shot_entry(sw) -> fy.P4TableEntry:
    return fy.P4TableEntry(LB, match=fy.P4TableMatch({"hdr.ipv4.dstAddr": "10.0.0.1"}),
                           action=fy.P4IndirectAction([(1, 2) * sw.forward(1, 2),
                                                       (1, 3) * sw.forward(2, 3)]))


@pytest.mark.parametrize("programming, side", [("group", "host"), ("group", "switch"), ("one-shot", "host")])
def test_traffic_leaves_a_member_whose_watch_port_goes_down_and_comes_back(tmp_path, programming, side):
    with SelectorSwitch("embedded", tmp_path) as sw:
        if programming == "group":
            sw.client.write(*sw.members({1: 2, 2: 3}),
                            sw.group(1, {1: 1, 2: 1}, watch={1: 2, 2: 3}), +sw.entry(1))
        else:
            sw.client.write(+one_shot_entry(sw))
        result = measure_failover(sw, FLOWS, port=2, side=side, bound=BOUND)
        print(f"\nembedded switch, {programming}, link down on the {side} side: {result}")
        assert result.other_flows_disturbed == 0
        assert result.down_delay < BOUND and result.moved_not_on_survivor == 0
        assert result.up_delay < BOUND and result.not_back == 0
        assert sw.process.proc.poll() is None


def test_with_every_watch_port_down_no_member_is_chosen_until_one_comes_back(tmp_path):
    """Both members forward out of port 4, which stays up; they watch ports 2 and 3.
    With both watch ports down the group acts as an empty group: nothing comes out.
    The down phase ends when the `ip link set up` command starts, not when it returns:
    the switch sees the port come up before `ip` has exited."""
    with SelectorSwitch("embedded", tmp_path) as sw:
        sw.client.write(*sw.members({1: 4, 2: 4}),
                        sw.group(1, {1: 1, 2: 1}, watch={1: 2, 2: 3}), +sw.entry(1))
        with Traffic(sw, FLOWS) as traffic:
            time.sleep(0.3)
            both_down = max(sw.set_link(2, False), sw.set_link(3, False))
            time.sleep(0.4)
            up_begins = time.monotonic()
            one_up = sw.set_link(3, True)
            time.sleep(0.4)
        members = {}
        for a in traffic.arrivals:
            t = traffic.sent[a.index]
            phase = "before" if t < both_down - BOUND else "down" if both_down + BOUND < t < up_begins else \
                "up" if t > one_up + BOUND else "changing"
            members.setdefault(phase, set()).add(a.member)
        assert members.get("before") == {1, 2}
        assert "down" not in members  # not one frame while every watch port was down
        assert members.get("up") == {2}
        assert sw.process.proc.poll() is None
