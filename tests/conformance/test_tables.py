"""tables.p4: match kinds, const entries, hit/miss and action_run, counters, meters,
registers, action profile and selector, with p4c's own table and action names."""
import pytest

from embedded_switch.errors import InvalidArgument
from embedded_switch.match import Exact, Lpm, OptionalMatch, Range, Ternary
from tests.conformance.loader import eth, load

I = "TblIngress."
RES_FIELDS = ["exact", "lpm", "ternary", "range", "optional", "valid", "konst", "hitmiss", "run", "color",
              "dcolor"]


@pytest.fixture
def sw():
    return load("tables")


def frame(e=0, l=0, t=0, r=0, o=0, sel=0, extra=None) -> bytes:
    k = bytes([e]) + l.to_bytes(2, "big") + bytes([t, r, o, sel, 1 if extra is not None else 0])
    return eth(0x1234) + k + (bytes([extra]) if extra is not None else b"")


def res(sw, **kw) -> dict:
    f = frame(**kw)
    [(port, data)] = sw.process(0, f)
    r = data[len(f):]
    out = dict(zip(RES_FIELDS, r[:11]))
    out["reg"] = int.from_bytes(r[11:15], "big")
    out["prof"], out["selected"], out["port"] = r[15], r[16], port
    return out


def test_defaults(sw):
    r = res(sw)
    assert (r["exact"], r["lpm"], r["konst"], r["hitmiss"], r["run"], r["color"], r["dcolor"]) == \
        (0, 0xEE, 0xCC, 2, 0x55, 0, 3)


def test_exact_with_direct_counter(sw):
    h = sw.table_add(I + "t_exact", [Exact(5)], I + "set_exact", [0x51])
    assert res(sw, e=5)["exact"] == 0x51
    assert res(sw, e=6)["exact"] == 0
    assert sw.direct_counter_read(I + "t_exact", h) == (1, len(frame()))


def test_lpm_ternary_range_optional_valid(sw):
    sw.table_add(I + "t_lpm", [Lpm(0xAB00, 8)], I + "set_lpm", [1])
    sw.table_add(I + "t_lpm", [Lpm(0xABC0, 12)], I + "set_lpm", [2])
    assert [res(sw, l=v)["lpm"] for v in (0xABCD, 0xAB00, 0x1111)] == [2, 1, 0xEE]
    sw.table_add(I + "t_ternary", [Ternary(0x40, 0xC0), Exact(1)], I + "set_ternary", [1], priority=1)
    sw.table_add(I + "t_ternary", [Ternary(0x42, 0xFF), Exact(1)], I + "set_ternary", [2], priority=2)
    assert [res(sw, t=v, e=1)["ternary"] for v in (0x42, 0x43, 0x80)] == [2, 1, 0]
    sw.table_add(I + "t_range", [Range(10, 20)], I + "set_range", [1], priority=5)
    assert [res(sw, r=v)["range"] for v in (9, 10, 20, 21)] == [0, 1, 1, 0]
    sw.table_add(I + "t_optional", [OptionalMatch(None), Exact(3)], I + "set_optional", [1], priority=1)
    sw.table_add(I + "t_optional", [OptionalMatch(7), Exact(3)], I + "set_optional", [2], priority=2)
    assert [res(sw, o=v, e=3)["optional"] for v in (7, 8)] == [2, 1]
    sw.table_add(I + "t_valid", [Exact(1), Ternary(0, 0)], I + "set_valid", [1], priority=1)
    assert res(sw, extra=9)["valid"] == 1
    assert res(sw)["valid"] == 0


def test_const_entries_first_listed_wins_and_table_is_immutable(sw):
    assert [res(sw, t=v)["konst"] for v in (0x11, 0x1F, 0x25, 0x05)] == [1, 1, 3, 0xCC]
    with pytest.raises(InvalidArgument, match="const"):
        sw.table_add(I + "t_const", [Ternary(1, 0xFF)], I + "set_konst", [1], priority=1)
    with pytest.raises(InvalidArgument, match="const"):
        sw.table_set_default(I + "t_const", I + "set_konst", [1])
    assert len(sw.table_entries(I + "t_const")) == 3 and all(e.is_const for e in sw.table_entries(I + "t_const"))


def test_hit_miss_and_action_run(sw):
    sw.table_add(I + "t_hitmiss", [Exact(1)], "NoAction", [])
    assert res(sw, e=1)["hitmiss"] == 1
    sw.table_add(I + "t_run", [Exact(2)], I + "run_a", [])
    sw.table_add(I + "t_run", [Exact(3)], I + "run_b", [0x20])
    assert [res(sw, e=v)["run"] for v in (2, 3, 4)] == [0xB, 0x22, 0x55]


def test_indirect_counter_meter_register(sw):
    for _ in range(3):
        r = res(sw, e=9)
    assert sw.counter_read(I + "by_e", 1) == (3, 3 * len(frame()))
    assert r["reg"] == 2 and sw.register_read(I + "regs", 1) == 3
    sw.meter_set(I + "m", 1, [(1, 1), (1, 1)])
    assert [res(sw, e=1)["color"] for _ in range(2)] == [0, 2]


def test_direct_meter(sw):
    h = sw.table_add(I + "t_dmeter", [Exact(4)], I + "read_dmeter", [])
    assert res(sw, e=4)["dcolor"] == 0
    sw.direct_meter_set(I + "t_dmeter", h, [(1, 1), (1, 1)])
    assert [res(sw, e=4)["dcolor"] for _ in range(2)] == [0, 2]


def test_action_profile_and_selector(sw):
    [prof] = [p for p in sw.program.action_profiles.values() if not p.with_selector]
    [sel] = [p for p in sw.program.action_profiles.values() if p.with_selector]
    sw.member_add(prof.name, 1, I + "set_prof", [0x61])
    sw.table_add_indirect(I + "t_prof", [Exact(6)], member=1)
    assert res(sw, e=6)["prof"] == 0x61
    for m in (1, 2):
        sw.member_add(sel.name, m, I + "set_selected", [m, m + 1])
    sw.group_set(sel.name, 1, [1, 2], create=True)
    sw.table_add_indirect(I + "t_sel", [Exact(6)], group=1)
    picks = {s: res(sw, e=6, sel=s) for s in range(32)}
    assert {p["selected"] for p in picks.values()} == {1, 2}
    assert all(p["port"] == p["selected"] + 1 for p in picks.values())
