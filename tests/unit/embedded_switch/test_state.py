"""Counters, meters, registers, replication and clone sessions through the Switch API."""
import pytest

from embedded_switch.errors import InvalidArgument, NotFound, PipelineError
from embedded_switch.match import Exact
from embedded_switch.switch import Switch
from tests.unit.embedded_switch.jsonprog import dumps, frame, unit_program, variant


@pytest.fixture
def sw():
    s = Switch()
    s.load_pipeline(dumps(unit_program()))
    return s


def test_counters_and_registers_follow_packets(sw):
    sw.process(0, frame(e=0x12))
    assert sw.counter_read("ingress.ctr", 1) == (1, len(frame()))
    assert sw.register_read("ingress.reg", 0) == 0x12
    sw.counter_write("ingress.ctr", 1, 5, 6)
    assert sw.counter_read("ingress.ctr", 1) == (5, 6)
    sw.register_write("ingress.reg", 3, 0xFFFF)
    assert sw.register_read("ingress.reg", 3) == 0xFFFF


@pytest.mark.parametrize("call,err,words", [
    (lambda s: s.counter_read("ingress.ctr", 4), InvalidArgument, r"out of range 0\.\.3"),
    (lambda s: s.counter_read("nope", 0), NotFound, "no counter"),
    (lambda s: s.counter_read("ingress.t_fwd_ctr", 0), InvalidArgument, "direct"),
    (lambda s: s.register_write("ingress.reg", 0, 1 << 16), InvalidArgument, "16 bits"),
    (lambda s: s.register_read("ingress.reg", -1), InvalidArgument, "out of range"),
    (lambda s: s.meter_set("ingress.mtr", 2, None), InvalidArgument, r"0\.\.1"),
    (lambda s: s.meter_set("ingress.mtr", 0, [(1, 2)]), InvalidArgument, "two"),
    (lambda s: s.meter_set("ingress.mtr", 0, [(5, 1), (1, 1)]), InvalidArgument, "above peak"),
    (lambda s: s.mc_group_set(0, []), InvalidArgument, "1..65535"),
    (lambda s: s.mc_group_set(1, [(512, 0)]), InvalidArgument, "egress port 512"),
    (lambda s: s.mc_group_set(1, [(1, 0), (1, 0)]), InvalidArgument, "twice"),
    (lambda s: s.mc_group_delete(9), NotFound, "no multicast group 9"),
    (lambda s: s.clone_session_set(0, []), InvalidArgument, "clone session id"),
    (lambda s: s.clone_session_delete(3), NotFound, "no clone session"),
])
def test_bad_requests(sw, call, err, words):
    with pytest.raises(err, match=words):
        call(sw)


def test_meter_colors_packets(sw):
    assert sw.meter_get("ingress.mtr", 0) is None
    sw.meter_set("ingress.mtr", 0, [(1, 1), (1, 2)])
    assert sw.meter_get("ingress.mtr", 0) == [(1, 1), (1, 2)]
    for _ in range(4):
        sw.process(0, frame())
    meter = sw.cp.meters["ingress.mtr"].cells[0]
    assert meter.execute(1) == 2  # the 4 packets above drained both buckets: RED
    sw.meter_set("ingress.mtr", 0, None)
    assert sw.meter_get("ingress.mtr", 0) is None


def test_direct_meter_per_entry(sw):
    h = sw.table_add("ingress.t_fwd", [Exact(0)], "ingress.fwd", [2])
    assert sw.direct_meter_get("ingress.t_fwd", h) is None
    sw.direct_meter_set("ingress.t_fwd", h, [(100, 1000), (200, 2000)])
    assert sw.direct_meter_get("ingress.t_fwd", h) == [(100, 1000), (200, 2000)]
    with pytest.raises(NotFound):
        sw.direct_meter_get("ingress.t_fwd", h + 1)


def test_replication_and_clone_session_records(sw):
    sw.mc_group_set(5, [(1, 0), (2, 1)])
    assert sw.mc_groups() == {5: [(1, 0), (2, 1)]}
    sw.clone_session_set(9, [(3, 0)], class_of_service=1, packet_length_bytes=64)
    assert sw.clone_sessions()[9] == {"replicas": [(3, 0)], "class_of_service": 1, "packet_length_bytes": 64}
    sw.mc_group_delete(5)
    sw.clone_session_delete(9)
    assert sw.mc_groups() == {} and sw.clone_sessions() == {}


def test_failed_load_keeps_program_and_state(sw):
    sw.table_add("ingress.t_exact", [Exact(5)], "ingress.set_out", [9])
    bad = variant(unit_program(), lambda j: j["actions"][1]["primitives"].append({"op": "teleport", "parameters": []}))
    with pytest.raises(PipelineError, match="teleport"):
        sw.load_pipeline(bad)
    assert len(sw.table_entries("ingress.t_exact")) == 1
    [(_, data)] = sw.process(0, frame(e=5))
    assert data[20] == 9


def test_successful_load_starts_fresh(sw):
    sw.table_add("ingress.t_exact", [Exact(5)], "ingress.set_out", [9])
    sw.mc_group_set(1, [(1, 1)])
    sw.register_write("ingress.reg", 1, 7)
    sw.load_pipeline(dumps(unit_program()))
    assert sw.table_entries("ingress.t_exact") == []
    assert sw.mc_groups() == {}
    assert sw.register_read("ingress.reg", 1) == 0


def test_no_program_means_not_found_and_drop():
    s = Switch()
    with pytest.raises(NotFound, match="no P4 program"):
        s.table_entries("t")
    assert s.process(0, frame()) == []
