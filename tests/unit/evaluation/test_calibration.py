"""The calibration: fitting per-layer times, the link delays, the file, and the topology
the planner plans with."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.planner import LayerSpec, packet_bytes, plan
from controller.topology import load_topology
from evaluation.calibration import (Calibration, CalibrationError, NodeTiming, fit, link_delays,
                                    switch_layer_seconds)

REPO = Path(__file__).resolve().parents[3]
LAYERS = [LayerSpec("dense", 64, 16), LayerSpec("dense", 16, 16), LayerSpec("dense", 16, 16),
          LayerSpec("dense", 16, 10)]


@pytest.fixture
def topology():
    return load_topology(REPO / "topologies" / "eval.toml")


def test_fit_recovers_a_linear_cost_exactly():
    macs = [1024, 256, 256, 160]
    timing = fit(macs, [3e-5 + m / 4e6 for m in macs])
    assert timing.layer_time_s == pytest.approx(3e-5)
    assert timing.macs_per_s == pytest.approx(4e6)


def test_fit_predicts_the_mean_time_of_the_layers_it_was_given():
    macs, seconds = [1024, 256, 256, 160], [2.1e-4, 0.9e-4, 1.0e-4, 0.7e-4]
    timing = fit(macs, seconds)
    predicted = [timing.layer_time_s + m / timing.macs_per_s for m in macs]
    assert sum(predicted) == pytest.approx(sum(seconds), rel=1e-6)


def test_link_delays_make_the_planner_see_the_measured_round_trips(topology):
    delays = link_delays(topology, None, edge_round_trip_s=0.002, path_round_trip_s=0.005, elems=10)
    assert set(delays) == {"ed1-sw1", "sw1-sw2", "sw2-sw3", "sw3-cl1"}
    assert delays["sw1-sw2"] == delays["sw2-sw3"] == delays["sw3-cl1"]
    calibrated = Calibration("x", {}, delays).apply(topology).route()
    one_way = [link.transfer_seconds(packet_bytes(10)) for link in calibrated.links]
    assert 2 * one_way[0] == pytest.approx(0.002)
    assert 2 * sum(one_way) == pytest.approx(0.005)


def test_the_rest_of_the_path_keeps_its_nominal_delay_at_least():
    wan = load_topology(REPO / "topologies" / "linear.toml")   # 10 ms to the cloud
    delays = link_delays(wan, None, edge_round_trip_s=0.0005, path_round_trip_s=0.001, elems=10)
    assert delays["s3-h2"] == 10.0 and delays["s1-s2"] == 0.05


def test_switch_layer_time_is_the_difference_of_two_round_trips():
    assert switch_layer_seconds(0.002, 0.003, 0.0004) == pytest.approx(0.0007)
    assert switch_layer_seconds(0.003, 0.002, 0.0) == 0.0   # noise never gives a negative time


def test_the_file_round_trips_and_the_planner_plans_with_it(tmp_path, topology):
    calibration = Calibration("x", {"ed1": NodeTiming(0.01, None), "sw1": NodeTiming(1e-5)},
                              {"sw3-cl1": 25.0}, {"path_rtt_s": 0.05})
    loaded = Calibration.load(calibration.save(tmp_path / "c" / "x.json"))
    assert loaded == calibration
    calibrated = loaded.apply(topology)
    assert calibrated.capability("ed1").layer_time_s == 0.01
    assert calibrated.capability("ed1").macs_per_s is None
    assert calibrated.link("sw3", "cl1").delay_ms == 25.0
    assert calibrated.link("ed1", "sw1").delay_ms == topology.link("ed1", "sw1").delay_ms
    # a slow edge (10 ms a layer) and a fast sw1: the planner leaves the edge one layer
    assert plan(LAYERS, calibrated.route()).assignment == ("ed1", "sw1", "sw1", "sw1")


@pytest.mark.parametrize("text", ["{}", "not json", '{"scenario": "x", "nodes": {"a": {"x": 1}}, "link_delay_ms": {}}'])
def test_a_bad_calibration_file_says_to_make_it_again(tmp_path, text):
    path = tmp_path / "c.json"
    path.write_text(text)
    with pytest.raises(CalibrationError, match="dcia calibrate"):
        Calibration.load(path)
