"""Action profiles and selectors: controller-chosen member and group ids."""
import pytest

from embedded_switch.errors import AlreadyExists, InvalidArgument, NotFound, ResourceExhausted
from embedded_switch.match import Exact
from embedded_switch.runtime import GroupMember
from embedded_switch.switch import Switch
from tests.unit.embedded_switch.jsonprog import dumps, frame, unit_program


@pytest.fixture
def sw():
    s = Switch()
    s.load_pipeline(dumps(unit_program()))
    return s


def test_member_entry_runs_member_action(sw):
    sw.member_add("ingress.prof", 10, "ingress.set_out", [0x44])
    sw.table_add_indirect("ingress.t_prof", [Exact(3)], member=10)
    [(_, data)] = sw.process(0, frame(e=3))
    assert data[20] == 0x44
    sw.member_modify("ingress.prof", 10, "ingress.set_out", [0x45])
    [(_, data)] = sw.process(0, frame(e=3))
    assert data[20] == 0x45
    assert sw.members("ingress.prof") == {10: ("ingress.set_out", [0x45])}


def test_member_in_use_cannot_be_deleted(sw):
    sw.member_add("ingress.prof", 1, "ingress.set_out", [1])
    h = sw.table_add_indirect("ingress.t_prof", [Exact(3)], member=1)
    with pytest.raises(InvalidArgument, match="still used"):
        sw.member_delete("ingress.prof", 1)
    sw.table_delete("ingress.t_prof", h)
    sw.member_delete("ingress.prof", 1)
    assert sw.members("ingress.prof") == {}


def test_group_selection_is_hash_based_and_stable(sw):
    for mid in (1, 2, 3):
        sw.member_add("ingress.sel", mid, "ingress.set_port", [mid, mid])
    sw.group_set("ingress.sel", 7, [3, 1, 2], create=True)
    assert sw.groups("ingress.sel") == {7: [GroupMember(1), GroupMember(2), GroupMember(3)]}
    sw.table_add_indirect("ingress.t_sel", [Exact(0)], group=7)
    seen = {}
    for t in range(64):
        [(_, data)] = sw.process(0, frame(t=t))
        seen.setdefault(t, data[20])
        [(_, again)] = sw.process(0, frame(t=t))
        assert again[20] == seen[t]
    assert set(seen.values()) == {1, 2, 3}


def test_group_errors(sw):
    sw.member_add("ingress.sel", 1, "ingress.set_port", [1, 1])
    with pytest.raises(NotFound):
        sw.group_set("ingress.sel", 1, [2], create=True)
    with pytest.raises(NotFound):
        sw.group_set("ingress.sel", 1, [1], create=False)
    sw.group_set("ingress.sel", 1, [1], create=True, max_size=1)
    with pytest.raises(AlreadyExists):
        sw.group_set("ingress.sel", 1, [1], create=True)
    sw.member_add("ingress.sel", 2, "ingress.set_port", [2, 2])
    with pytest.raises(ResourceExhausted):
        sw.group_set("ingress.sel", 1, [1, 2], create=False)
    with pytest.raises(InvalidArgument, match="no selector"):
        sw.group_set("ingress.prof", 1, [], create=True)
    with pytest.raises(InvalidArgument, match="still in group"):
        sw.member_delete("ingress.sel", 1)
    with pytest.raises(InvalidArgument, match="cannot be used"):
        sw.member_add("ingress.sel", 3, "ingress.set_out", [1])
    with pytest.raises(AlreadyExists):
        sw.member_add("ingress.sel", 1, "ingress.set_port", [1, 1])
    h = sw.table_add_indirect("ingress.t_sel", [Exact(1)], group=1)
    with pytest.raises(InvalidArgument, match="still used"):
        sw.group_delete("ingress.sel", 1)
    sw.table_modify_indirect("ingress.t_sel", h, member=2)
    sw.group_delete("ingress.sel", 1)
    assert sw.groups("ingress.sel") == {}


def test_indirect_entry_needs_exactly_one_reference(sw):
    sw.member_add("ingress.prof", 1, "ingress.set_out", [1])
    with pytest.raises(InvalidArgument, match="exactly one"):
        sw.table_add_indirect("ingress.t_prof", [Exact(1)])
    with pytest.raises(NotFound):
        sw.table_add_indirect("ingress.t_prof", [Exact(1)], member=2)
    with pytest.raises(InvalidArgument, match="not indirect"):
        sw.table_add_indirect("ingress.t_exact", [Exact(1)], member=1)
