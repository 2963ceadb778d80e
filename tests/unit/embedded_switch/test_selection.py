"""Action selector groups with weights and watch ports: the choice PI makes BMv2 make.

A member of weight w stands in its group as w target members (its own handle and w - 1
copies), handles come lowest free first, and a packet takes copy number
`crc16(selector fields) % active copies` in handle order."""
import pytest

from embedded_switch.errors import InvalidArgument, NotFound, ResourceExhausted
from embedded_switch.hashes import ALGORITHMS
from embedded_switch.match import Exact
from embedded_switch.runtime import GroupMember
from embedded_switch.switch import Switch
from tests.unit.embedded_switch.jsonprog import dumps, frame, unit_program

SEL = "ingress.sel"


@pytest.fixture
def sw():
    s = Switch()
    s.load_pipeline(dumps(unit_program()))
    for port in (1, 2, 3):
        s.set_port_status(port, True)
    return s


def add_members(sw, *ids):
    for mid in ids:
        sw.member_add(SEL, mid, "ingress.set_port", [mid, mid])


def chosen(sw, t: int) -> int:
    """The member (its id, which its action writes into h.out) a frame with h.t = t takes."""
    [(_, data)] = sw.process(0, frame(t=t))
    return data[20]


def test_a_weighted_member_is_chosen_by_its_copies_in_handle_order(sw):
    add_members(sw, 1, 2)  # handles 0 and 1; member 1's two copies get handles 2 and 3
    sw.group_set(SEL, 7, [GroupMember(1, weight=3), GroupMember(2, weight=1)], create=True)
    assert sw.group_choice(SEL, 7) == [1, 2, 1, 1]
    sw.table_add_indirect("ingress.t_sel", [Exact(0)], group=7)
    crc16 = ALGORITHMS["crc16"]
    picks = [chosen(sw, t) for t in range(256)]
    assert picks == [[1, 2, 1, 1][crc16(bytes([t])) % 4] for t in range(256)]
    assert sw.groups(SEL) == {7: [GroupMember(1, 3), GroupMember(2, 1)]}


def test_copies_are_shared_by_groups_and_released_when_no_group_needs_them(sw):
    add_members(sw, 1, 2, 3)  # handles 0, 1, 2
    sw.group_set(SEL, 1, [GroupMember(1, 3)], create=True)  # copies: handles 3, 4
    sw.group_set(SEL, 2, [GroupMember(1, 2), GroupMember(2, 1)], create=True)  # shares handle 3
    assert sw.group_choice(SEL, 2) == [1, 2, 1]
    sw.group_set(SEL, 1, [GroupMember(3, 1)], create=False)  # member 1 now needs 2: handle 4 freed
    add_members(sw, 4)  # takes handle 4, BMv2's lowest free
    sw.group_set(SEL, 3, [GroupMember(4, 1), GroupMember(1, 2)], create=True)
    assert sw.group_choice(SEL, 3) == [1, 1, 4]
    sw.group_delete(SEL, 2)
    sw.group_delete(SEL, 3)  # member 1's copy (handle 3) is free again
    sw.member_delete(SEL, 2)  # and handle 1
    add_members(sw, 5, 6)
    sw.group_set(SEL, 4, [GroupMember(m) for m in (1, 3, 4, 5, 6)], create=True)
    assert sw.group_choice(SEL, 4) == [1, 5, 3, 6, 4]


def test_a_member_whose_watch_port_is_down_leaves_the_choice_until_it_is_up(sw):
    add_members(sw, 1, 2)
    sw.group_set(SEL, 7, [GroupMember(1, 1, watch=2), GroupMember(2, 1, watch=3)], create=True)
    sw.table_add_indirect("ingress.t_sel", [Exact(0)], group=7)
    assert {chosen(sw, t) for t in range(64)} == {1, 2}
    sw.set_port_status(2, False)
    assert sw.group_choice(SEL, 7) == [2]
    assert {chosen(sw, t) for t in range(64)} == {2}
    sw.set_port_status(2, True)
    assert sw.group_choice(SEL, 7) == [1, 2]
    assert sw.port_status() == {1: True, 2: True, 3: True}


def test_a_group_whose_every_watch_port_is_down_acts_as_an_empty_group(sw):
    add_members(sw, 1, 2)
    sw.group_set(SEL, 7, [GroupMember(1, 2, watch=2), GroupMember(2, 1, watch=3)], create=True)
    sw.group_set(SEL, 8, [], create=True)
    handle = sw.table_add_indirect("ingress.t_sel", [Exact(0)], group=7)
    sw.set_port_status(2, False)
    sw.set_port_status(3, False)
    assert sw.group_choice(SEL, 7) == []
    all_down = sw.process(0, frame(t=5))
    sw.table_modify_indirect("ingress.t_sel", handle, group=8)
    assert all_down == sw.process(0, frame(t=5))
    assert all_down[0][1][20] == 0  # no member's action ran
    sw.table_modify_indirect("ingress.t_sel", handle, group=7)
    sw.set_port_status(3, True)
    assert sw.group_choice(SEL, 7) == [2]
    assert chosen(sw, 5) == 2


def test_a_watch_port_changed_by_modify_takes_effect_at_once(sw):
    add_members(sw, 1, 2)
    sw.set_port_status(3, False)
    sw.group_set(SEL, 7, [GroupMember(1, watch=2), GroupMember(2)], create=True)
    assert sw.group_choice(SEL, 7) == [1, 2]
    sw.group_set(SEL, 7, [GroupMember(1, watch=3), GroupMember(2)], create=False)
    assert sw.group_choice(SEL, 7) == [2]


@pytest.mark.parametrize("members, max_size, error, message", [
    ([GroupMember(1, 0)], 0, InvalidArgument, "weight 0"),
    ([GroupMember(1, -2)], 0, InvalidArgument, "positive"),
    ([GroupMember(1, 3), GroupMember(2, 2)], 4, ResourceExhausted, "at most 4 .* got 5"),
    ([GroupMember(1, watch=9)], 0, InvalidArgument, r"port 9, which this switch does not have \(its ports: 1, 2, 3\)"),
    ([GroupMember(1), GroupMember(1, 2)], 0, InvalidArgument, "listed twice"),
    ([GroupMember(4)], 0, NotFound, "no member 4"),
])
def test_bad_groups_are_refused_and_change_nothing(sw, members, max_size, error, message):
    add_members(sw, 1, 2)
    with pytest.raises(error, match=message):
        sw.group_set(SEL, 7, members, create=True, max_size=max_size)
    assert sw.groups(SEL) == {}
    add_members(sw, 3)
    sw.group_set(SEL, 8, [GroupMember(m) for m in (1, 2, 3)], create=True)
    assert sw.group_choice(SEL, 8) == [1, 2, 3]  # no copy was left behind


def test_port_status_takes_only_ports():
    sw = Switch()
    with pytest.raises(InvalidArgument, match="out of range"):
        sw.set_port_status(512, True)
    assert sw.port_status() == {}
