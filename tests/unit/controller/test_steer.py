"""The path selector's decisions (controller.steer.PathSelector) on the redundant topology:
moves within the hysteresis bounds, ignores noise, fails over from dead nodes and returns."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import pytest

from controller.demo_model import load_demo
from controller.observe import HostReading, Snapshot
from controller.session import SwitchStatus
from controller.steer import (
    PathSelector,
    SteerConfig,
    constraints_for,
    deployed_plan,
    path_round_trips,
    steering_deployment,
)
from controller.topology import load_topology
from dcia.errors import DciaError
from dcia.metrics import path_rtt_key

TOPOLOGY = load_topology(Path(__file__).resolve().parents[3] / "topologies" / "redundant.toml")
MODEL = load_demo().quantized
SWITCHES = ("s1", "s2", "s3", "s4")


def constraints(edge_layers: int = 1):
    args = argparse.Namespace(edge_layers=edge_layers, objective="latency", max_layers_per_switch=None)
    return constraints_for(args, len(MODEL.layers))


def nominal(**changes) -> dict:
    """Every switch's topology record, with ``name={field: value}`` changes (None: unread)."""
    out = {}
    for name in SWITCHES:
        record = TOPOLOGY.capability(name)
        change = changes.get(name, {})
        out[name] = None if change is None else replace(record, **change)
    return out


def selector(**config) -> PathSelector:
    return PathSelector(TOPOLOGY, MODEL.layers, constraints(), SteerConfig(**config))


def test_first_round_deploys_the_best_plan_and_then_keeps_it():
    s = selector()
    first = s.decide(nominal())
    assert first.action == "deploy" and first.new.route == "primary"
    assert first.new.assignment[0] == "h1"
    assert set(first.candidates) == {"primary", "backup"}
    again = s.decide(nominal())
    assert (again.action, again.changes_deployment) == ("keep", False)


def test_noise_below_the_threshold_changes_nothing():
    s = selector(min_gain=0.2, hold_rounds=1)
    s.decide(nominal())
    for load in (0.05, 0.1, 0.02, 0.08):
        d = s.decide(nominal(s1={"load": load}, s2={"load": load}))
        assert d.action == "keep", d.reason
    assert s.current.route == "primary"


def test_a_loaded_path_is_left_after_the_hold_rounds_with_the_reason_logged():
    s = selector(min_gain=0.2, hold_rounds=2)
    s.decide(nominal())
    busy = nominal(s1={"load": 1.0, "layer_time_s": 2e-3}, s2={"load": 1.0, "layer_time_s": 2e-3})
    waiting = s.decide(busy)
    assert waiting.action == "wait" and waiting.predicted_gain >= 0.2
    moved = s.decide(busy)
    assert moved.action == "move" and moved.new.route == "backup" and moved.old.route == "primary"
    assert moved.changed["s1"]["load"] == [0.0, 1.0]
    line = json.loads(moved.to_json())
    assert line["action"] == "move" and line["old"]["route"] == "primary"
    assert line["new"]["route"] == "backup" and line["predicted_gain"] == moved.predicted_gain
    assert s.decide(busy).action == "keep"  # settled: no flapping


def test_a_better_plan_that_does_not_last_is_not_taken():
    s = selector(min_gain=0.2, hold_rounds=3)
    s.decide(nominal())
    busy = nominal(s1={"load": 1.0, "layer_time_s": 2e-3})
    assert [s.decide(busy).action for _ in range(2)] == ["wait", "wait"]
    assert s.decide(nominal()).action == "keep"            # the spike is over
    assert [s.decide(busy).action for _ in range(2)] == ["wait", "wait"]  # the count restarted
    assert s.current.route == "primary"


def test_a_dead_switch_fails_over_and_traffic_returns_when_it_is_back():
    s = selector(dead_after=2)
    s.decide(nominal())
    assert s.decide(nominal(s1=None)).action == "keep"     # one missed reading: not dead yet
    failover = s.decide(nominal(s1=None))
    assert failover.action == "failover" and failover.new.route == "backup"
    assert failover.dead == ("s1",) and "s1" in failover.reason
    assert failover.candidates["primary"] == "dead: s1"
    back = s.decide(nominal())
    assert back.action == "restore" and back.new.route == "primary"


def test_no_live_path_says_so():
    s = selector(dead_after=1)
    s.decide(nominal())
    d = s.decide(nominal(s1=None, s3=None))
    assert d.action == "no-path" and d.new is None
    assert "dead: s1" in d.reason and "dead: s3" in d.reason


def test_the_edge_gets_exactly_its_layers():
    s = PathSelector(TOPOLOGY, MODEL.layers, constraints(edge_layers=2), SteerConfig())
    d = s.decide(nominal())
    assert d.new.assignment[:2] == ("h1", "h1") and "h1" not in d.new.assignment[2:]
    with pytest.raises(DciaError, match="edge-layers"):
        constraints(edge_layers=9)


def test_the_deployed_plan_is_read_back_from_the_switches():
    best = selector().decide(nominal()).new
    held = {}
    for stage in best.stages:
        if stage.node in SWITCHES and stage.layers:
            held[stage.node] = list(stage.layers)
    statuses = [SwitchStatus(n, models={(MODEL.model_id, MODEL.version): held[n]} if n in held else {})
                for n in SWITCHES]
    snap = Snapshot(1.0, [(st, None, None) for st in statuses], [])
    found = deployed_plan(TOPOLOGY, MODEL.layers, constraints(), snap, MODEL.model_id, MODEL.version)
    assert found is not None and found.assignment == best.assignment and found.route == best.route
    empty = Snapshot(1.0, [(SwitchStatus(n), None, None) for n in SWITCHES], [])
    assert deployed_plan(TOPOLOGY, MODEL.layers, constraints(), empty, MODEL.model_id, MODEL.version) is None


def test_a_change_removes_the_model_from_every_other_live_switch():
    s = selector(dead_after=1)
    s.decide(nominal())
    failover = s.decide(nominal(s1=None))
    target = steering_deployment(TOPOLOGY, failover.new, MODEL.layers, model_id=MODEL.model_id,
                                 version=MODEL.version, dead=failover.dead)
    shares = {a.endpoint.name: a for a in target.switches}
    assert set(shares) == {"s2", "s3", "s4"}                 # the dead s1 is not written
    assert not shares["s2"].layers and not shares["s2"].steering
    assert any(shares[n].layers for n in ("s3", "s4"))


BALANCED = load_topology(Path(__file__).resolve().parents[3] / "topologies" / "balanced.toml")


def clouds(**loads) -> dict:
    """The switches' and clouds' records of the balanced topology, clouds at ``loads``
    (None: the cloud's agent does not answer)."""
    out = {n: BALANCED.capability(n) for n in ("s1", "s2")}
    for name in ("h2", "h3"):
        load = loads.get(name, 0.0)
        out[name] = None if load is None else replace(BALANCED.capability(name), load=load)
    return out


def test_spread_weights_follow_the_clouds_capacity_left_and_ignore_small_changes():
    s = PathSelector(BALANCED, MODEL.layers, constraints(), SteerConfig(dead_after=1),
                     spread=("cloud-a", "cloud-b"))
    first = s.decide(clouds())
    assert first.action == "deploy" and first.weights == {"cloud-a": 8, "cloud-b": 8}
    assert s.decide(clouds(h2=0.05)).action == "keep"                # 8:8 -> 8:8
    loaded = s.decide(clouds(h2=0.75))                               # capacity left 1:4
    assert loaded.action == "rebalance" and loaded.weights == {"cloud-a": 3, "cloud-b": 13}
    assert loaded.new.assignment == first.new.assignment
    gone = s.decide(clouds(h2=None))                                 # cloud-a's agent is silent
    assert gone.weights is None and gone.changes_deployment
    assert gone.new.route == "cloud-b"


def test_a_spread_deployment_gives_the_branch_a_weighted_group_per_layer():
    s = PathSelector(BALANCED, MODEL.layers, constraints(), SteerConfig(),
                     spread=("cloud-a", "cloud-b"))
    d = s.decide(clouds(h3=0.5))
    target = steering_deployment(BALANCED, d.new, MODEL.layers, model_id=MODEL.model_id,
                                 version=MODEL.version, weights=d.weights)
    s2 = next(a for a in target.switches if a.endpoint.name == "s2")
    groups = [e for e in s2.steering if e.match["layer"] < len(MODEL.layers)]
    assert [e.match["layer"] for e in groups] == list(range(1, len(MODEL.layers)))
    assert [w for w, _ in groups[0].action.action_set] == [(11, 2), (5, 3)]


def test_measured_round_trips_replace_the_nominal_delays_of_their_path():
    congested = {"primary": 0.4}                   # nominal: about 20 ms there and back
    s = selector(min_gain=0.2, hold_rounds=2)
    s.decide(nominal())
    assert s.decide(nominal(), {"primary": 0.0203}).action == "keep"   # as the file says
    waiting = s.decide(nominal(), congested)
    assert waiting.action == "wait" and waiting.round_trips == congested
    moved = s.decide(nominal(), congested)
    assert moved.action == "move" and moved.new.route == "backup"
    assert json.loads(moved.to_json())["round_trips"] == congested
    assert moved.candidates["primary"] > moved.candidates["backup"]


def test_round_trips_come_from_the_edge_agents_path_probes():
    cloud_a = TOPOLOGY.host_address("h2", "primary")
    reading = HostReading("h1", None, {path_rtt_key(cloud_a): 0.021, "requests": 5.0}, 0.0)
    snap = Snapshot(1.0, [], [(reading, None)])
    assert path_round_trips(TOPOLOGY, snap) == {"primary": 0.021}
    assert path_round_trips(TOPOLOGY, Snapshot(1.0, [], [])) == {}
