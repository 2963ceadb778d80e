"""Fault specifications, their checks against a topology, the schedule and the measurements."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

pytest.importorskip("mininet.net", reason="Mininet is not importable (scripts/bootstrap.sh links it)")

from controller.routes import host_routes  # noqa: E402
from controller.topology import load_topology  # noqa: E402
from hosts.edge_agent import RequestResult  # noqa: E402
from mininet_topos.faults import Fault, FaultError, Injected, Schedule, check_all, measure  # noqa: E402
from mininet_topos.testbed import failover_paths  # noqa: E402

REDUNDANT = load_topology(Path(__file__).resolve().parents[3] / "topologies" / "redundant.toml")


@pytest.mark.parametrize("spec, fault", [
    ("h2@3s", Fault("h2", 3.0)),
    ("s1@3s-6s", Fault("s1", 3.0, 6.0)),
    ("link:s1-s2@2.5s-4", Fault("link:s1-s2", 2.5, 4.0)),
    ("s3@500ms-1500ms", Fault("s3", 0.5, 1.5)),
])
def test_a_fault_reads_as_target_at_time_and_optionally_until(spec, fault):
    assert Fault.parse(spec) == fault
    assert Fault.parse(str(fault)) == fault


@pytest.mark.parametrize("spec, message", [
    ("h2", "expected NODE@TIME"),
    ("h2@soon", "expected NODE@TIME"),
    ("s1@3s-2s", "must come back after it fails"),
    ("s1@3..1s", "is not a time"),
])
def test_a_malformed_fault_is_refused_with_the_expected_form(spec, message):
    with pytest.raises(FaultError, match=message):
        Fault.parse(spec)


@pytest.mark.parametrize("spec, message", [
    ("h9@1s", "has no node h9"),
    ("h1@1s", "h1 is the edge host"),
    ("link:s1-s3@1s", "has no link s1-s3"),
    ("link:s1@1s", "has no link"),
    ("s1@1s-20s", "the run lasts about 10 s"),
    ("h2@10s", "the run lasts about 10 s"),
])
def test_a_fault_the_topology_cannot_have_is_refused(spec, message):
    with pytest.raises(FaultError, match=message):
        check_all([Fault.parse(spec)], REDUNDANT, 10.0)


def test_a_node_cannot_fail_again_while_it_is_down():
    with pytest.raises(FaultError, match="would fail again while it is down"):
        check_all([Fault.parse("s1@1s-5s"), Fault.parse("s1@3s")], REDUNDANT, 10.0)
    check_all([Fault.parse("s1@1s-2s"), Fault.parse("s1@3s"), Fault.parse("s3@1s")], REDUNDANT, 10.0)


@pytest.mark.parametrize("spec, kind, paths", [
    ("h2@1s", "cloud", ["primary"]),
    ("s3@1s", "switch", ["backup"]),
    ("link:s2-s1@1s", "link", ["primary"]),
    ("link:h1-s3@1s", "link", ["backup"]),
])
def test_a_fault_cuts_the_paths_through_it(spec, kind, paths):
    fault = Fault.parse(spec)
    assert fault.kind(REDUNDANT) == kind and fault.cut_paths(REDUNDANT) == paths


def test_the_edge_gets_each_paths_cloud_through_that_paths_interface():
    """The preferred path first; each cloud's subnet leaves h1 by the interface of its path
    (the default route is the first interface's)."""
    assert failover_paths(REDUNDANT) == ["primary", "backup"]
    assert failover_paths(REDUNDANT, "backup") == ["backup", "primary"]
    routes = {r.prefix: r.interface for r in host_routes(REDUNDANT)["h1"]}
    assert routes == {"default": REDUNDANT.port("h1", "s1"), "10.0.4.0/24": REDUNDANT.port("h1", "s3")}


class Recorder:
    def __init__(self):
        self.calls = []

    def fail(self, target):
        self.calls.append(("fail", target, time.time()))

    def restore(self, target):
        self.calls.append(("restore", target, time.time()))


def test_the_schedule_runs_each_action_at_its_time_from_the_start():
    schedule = Schedule([Fault.parse("s1@50ms-150ms"), Fault.parse("h2@100ms")])
    injector = Recorder()
    assert schedule.next_in() is None, "nothing before the inference starts"
    start = time.time()
    schedule.begin(start)
    deadline = start + 2
    while schedule.next_in() is not None and time.time() < deadline:
        time.sleep(schedule.next_in())
        schedule.run_due(injector)
    assert [(a, t) for a, t, _ in injector.calls] == [("fail", "s1"), ("fail", "h2"), ("restore", "s1")]
    for (_, _, when), due in zip(injector.calls, (0.05, 0.1, 0.15)):
        assert due <= when - start < due + 0.05
    assert schedule.pending == []
    assert [r.failed_at is not None for r in schedule.injected] == [True, True]


def answer(cloud: str, at: float) -> RequestResult:
    return RequestResult(0, 1, 0, [0], 0.0, 1, 0, 1, "ok", answered_by=cloud, ended_at=at)


def test_failover_and_recovery_times_come_from_the_answers():
    results = [answer("a", 9.9), answer("a", 10.01), answer("b", 10.07), answer("b", 10.5),
               answer("a", 12.03), RequestResult(0, 2, -1, [], 0.0, 5, 0, -1, "timeout", ended_at=11)]
    record = Injected(Fault("s1", 5.0, 7.0), failed_at=10.0, restoring_at=11.0, restored_at=12.0)
    m = measure(record, ["a"], results, start=5.0)
    assert m["in_use"] and m["failover_s"] == pytest.approx(0.07)
    assert m["recovery_s"] == pytest.approx(0.03)
    assert (m["failed_at_s"], m["restored_at_s"], m["restore_took_s"]) == (5.0, 7.0, 1.0)
    unused = measure(Injected(Fault("s3", 5.0), failed_at=10.0), ["b"], results[:2], start=5.0)
    assert not unused["in_use"] and unused["failover_s"] is None and unused["recovery_s"] is None
