"""Tables through the Switch API: every match kind, priorities, defaults, errors, atomicity."""
import time

import pytest

from embedded_switch.errors import AlreadyExists, InvalidArgument, NotFound, ResourceExhausted
from embedded_switch.match import Exact, Lpm, OptionalMatch, Range, Ternary, Valid
from embedded_switch.switch import Switch
from tests.unit.embedded_switch.jsonprog import dumps, frame, unit_program

OUT = 14 + 6  # offset of h.out in a frame


@pytest.fixture
def sw():
    s = Switch()
    s.load_pipeline(dumps(unit_program()))
    return s


def out_of(sw, **fields):
    [(port, data)] = sw.process(0, frame(**fields))
    return data[OUT]


def test_exact_hit_and_miss(sw):
    sw.table_add("ingress.t_exact", [Exact(5)], "ingress.set_out", [9])
    assert out_of(sw, e=5) == 9
    assert out_of(sw, e=6) == 0


def test_lpm_longest_prefix_wins(sw):
    sw.table_add("ingress.t_lpm", [Lpm(0x1200, 8)], "ingress.set_out", [1])
    sw.table_add("ingress.t_lpm", [Lpm(0x1230, 12)], "ingress.set_out", [2])
    sw.table_add("ingress.t_lpm", [Lpm(0, 0)], "ingress.set_out", [3])
    assert out_of(sw, l=0x1234) == 2
    assert out_of(sw, l=0x12FF) == 1
    assert out_of(sw, l=0x9999) == 3


def test_ternary_higher_priority_wins(sw):
    sw.table_add("ingress.t_tern", [Ternary(0x10, 0xF0), Exact(0)], "ingress.set_out", [1], priority=10)
    sw.table_add("ingress.t_tern", [Ternary(0x12, 0xFF), Exact(0)], "ingress.set_out", [2], priority=20)
    assert out_of(sw, t=0x12) == 2
    assert out_of(sw, t=0x13) == 1
    assert out_of(sw, t=0x12, e=1) == 0


def test_range_and_optional(sw):
    sw.table_add("ingress.t_range", [Range(10, 20)], "ingress.set_out", [1], priority=1)
    sw.table_add("ingress.t_range", [Range(15, 30)], "ingress.set_out", [2], priority=2)
    assert [out_of(sw, r=r) for r in (9, 10, 16, 30, 31)] == [0, 1, 2, 2, 0]
    sw.table_add("ingress.t_opt", [OptionalMatch(None)], "ingress.set_out", [7], priority=1)
    sw.table_add("ingress.t_opt", [OptionalMatch(4)], "ingress.set_out", [8], priority=2)
    assert out_of(sw, o=4) == 8
    assert out_of(sw, o=5) == 7


def test_default_action_set_reset_and_const(sw):
    assert sw.table_get_default("ingress.t_exact") == ("NoAction", [])
    sw.table_set_default("ingress.t_exact", "ingress.set_out", [0x33])
    assert out_of(sw, e=1) == 0x33
    sw.table_reset_default("ingress.t_exact")
    assert out_of(sw, e=1) == 0
    with pytest.raises(InvalidArgument, match="const"):
        sw.table_set_default("ingress.t_const", "ingress.set_out", [1])


def test_action_resolved_within_table_even_with_duplicate_names(sw):
    h = sw.table_add("ingress.t_exact", [Exact(1)], "NoAction", [])
    assert sw.table_entries("ingress.t_exact")[0].action == "NoAction"
    sw.table_modify("ingress.t_exact", h, "ingress.set_out", [4])
    assert out_of(sw, e=1) == 4


def test_find_modify_delete_clear(sw):
    h = sw.table_add("ingress.t_tern", [Ternary(1, 0xFF), Exact(2)], "ingress.set_out", [1], priority=5)
    assert sw.table_find("ingress.t_tern", [Ternary(1, 0xFF), Exact(2)], priority=5) == h
    assert sw.table_find("ingress.t_tern", [Ternary(1, 0xFF), Exact(2)], priority=6) is None
    sw.table_modify("ingress.t_tern", h, "ingress.set_out", [9])
    [entry] = sw.table_entries("ingress.t_tern")
    assert (entry.handle, entry.args, entry.priority, entry.is_const) == (h, [9], 5, False)
    sw.table_delete("ingress.t_tern", h)
    assert sw.table_entries("ingress.t_tern") == []
    with pytest.raises(NotFound):
        sw.table_delete("ingress.t_tern", h)
    sw.table_add("ingress.t_exact", [Exact(1)], "NoAction", [])
    sw.table_clear("ingress.t_exact")
    assert sw.table_entries("ingress.t_exact") == []


@pytest.mark.parametrize("table,key,action,args,prio,err,words", [
    ("nope", [Exact(1)], "NoAction", [], 0, NotFound, "no table"),
    ("ingress.t_exact", [Exact(256)], "NoAction", [], 0, InvalidArgument, "does not fit in 8 bits"),
    ("ingress.t_exact", [Lpm(1, 8)], "NoAction", [], 0, InvalidArgument, "expected Exact"),
    ("ingress.t_exact", [], "NoAction", [], 0, InvalidArgument, "1 key fields"),
    ("ingress.t_exact", [Exact(1)], "ingress.fwd", [1], 0, InvalidArgument, "not an action of table"),
    ("ingress.t_exact", [Exact(1)], "ingress.set_out", [], 0, InvalidArgument, "takes 1 arguments"),
    ("ingress.t_exact", [Exact(1)], "ingress.set_out", [300], 0, InvalidArgument, "0..255"),
    ("ingress.t_exact", [Exact(1)], "NoAction", [], 3, InvalidArgument, "priority must be 0"),
    ("ingress.t_tern", [Ternary(1, 1), Exact(1)], "NoAction", [], 0, InvalidArgument, "needs a priority"),
    ("ingress.t_tern", [Ternary(3, 1), Exact(1)], "NoAction", [], 1, InvalidArgument, "outside mask"),
    ("ingress.t_lpm", [Lpm(0x1234, 8)], "NoAction", [], 0, InvalidArgument, "outside the /8 prefix"),
    ("ingress.t_lpm", [Lpm(0, 17)], "NoAction", [], 0, InvalidArgument, "prefix length 17"),
    ("ingress.t_range", [Range(5, 4)], "NoAction", [], 1, InvalidArgument, "above high"),
    ("ingress.t_prof", [Exact(1)], "NoAction", [], 0, InvalidArgument, "indirect"),
    ("ingress.t_keyless", [], "NoAction", [], 0, InvalidArgument, "no key"),
])
def test_bad_requests_are_refused_and_change_nothing(sw, table, key, action, args, prio, err, words):
    with pytest.raises(err, match=words):
        sw.table_add(table, key, action, args, priority=prio)
    assert all(sw.table_entries(t) == [] for t in sw.program.tables if t != "nope")


def test_duplicates_and_full_table(sw):
    sw.table_add("ingress.t_exact", [Exact(1)], "NoAction", [])
    with pytest.raises(AlreadyExists):
        sw.table_add("ingress.t_exact", [Exact(1)], "ingress.set_out", [1])
    for i in range(4):
        sw.table_add("ingress.t_lpm", [Lpm(i << 8, 8)], "NoAction", [])
    with pytest.raises(ResourceExhausted, match="full"):
        sw.table_add("ingress.t_lpm", [Lpm(9 << 8, 8)], "NoAction", [])


def test_direct_counter_counts_hits(sw):
    h = sw.table_add("ingress.t_fwd", [Exact(0)], "ingress.fwd", [2])
    sw.process(0, frame())
    sw.process(0, frame())
    pkts, nbytes = sw.direct_counter_read("ingress.t_fwd", h)
    assert (pkts, nbytes) == (2, 2 * len(frame()))
    sw.direct_counter_write("ingress.t_fwd", h, 0, 0)
    assert sw.direct_counter_read("ingress.t_fwd", h) == (0, 0)
    with pytest.raises(InvalidArgument, match="no direct counter"):
        sw.direct_counter_read("ingress.t_exact", h)


def test_valid_match_kind_accepts_valid_records():
    from tests.unit.embedded_switch.jsonprog import unit_program as up
    j = up()
    t = j["pipelines"][0]["tables"][0]
    t["key"] = [{"match_type": "valid", "target": "h", "mask": None, "name": "h.$valid$"}]
    sw = Switch()
    sw.load_pipeline(dumps(j))
    sw.table_add("ingress.t_exact", [Valid(True)], "ingress.set_out", [5])
    assert out_of(sw) == 5
    assert sw.program.tables["ingress.t_exact"].key[0].match_kind == "valid"


def test_idle_time_restarts_on_each_hit():
    j = unit_program()
    j["pipelines"][0]["tables"][0]["support_timeout"] = True
    sw = Switch()
    sw.load_pipeline(dumps(j))
    assert sw.program.tables["ingress.t_exact"].support_timeout
    h = sw.table_add("ingress.t_exact", [Exact(5)], "ingress.set_out", [9])
    time.sleep(0.05)
    assert sw.table_entry_idle_time("ingress.t_exact", h) >= 0.05
    sw.process(0, frame(e=5))
    assert sw.table_entry_idle_time("ingress.t_exact", h) < 0.05
    with pytest.raises(InvalidArgument, match="idle timeout"):
        sw.table_entry_idle_time("ingress.t_lpm", 1)
