"""The report's arithmetic: percentiles, rates, accuracy, prediction error, speedups."""

from __future__ import annotations

import json

import pytest

from evaluation.report import ScenarioResult, StrategyRun, error_pct, speedup, write


def run(strategy, latencies, predicted=1.0, requests=None, answered=None, correct=None,
        duration=1.0, uplink=0):
    n = len(latencies)
    return StrategyRun(strategy, {"stages": []}, predicted, predicted, list(latencies),
                       requests or n, answered if answered is not None else n, n,
                       correct if correct is not None else n, duration, uplink, 0)


def test_stats_of_one_strategy():
    r = run("edge-only", [float(v) for v in range(1, 101)], predicted=60.0, requests=100,
            correct=90, duration=2.0, uplink=12200)
    s = r.stats()
    assert s["p50_ms"] == pytest.approx(50.5)
    assert s["p95_ms"] == pytest.approx(95.05)
    assert s["p99_ms"] == pytest.approx(99.01)
    assert s["mean_ms"] == pytest.approx(50.5)
    assert s["requests_per_s"] == 50.0
    assert s["accuracy"] == 0.9
    assert s["uplink_bytes_per_request"] == 122.0
    assert s["error_pct"] == pytest.approx((60 - 50.5) / 50.5 * 100)


def test_unanswered_requests_count_against_accuracy_not_latency():
    r = run("cloud-only", [10.0, 10.0], requests=4, answered=2, correct=2)
    s = r.stats()
    assert s["accuracy"] == 0.5 and s["p50_ms"] == 10.0 and s["requests_per_s"] == 2.0


def test_no_answer_at_all_has_no_latency():
    s = run("cloud-only", [], requests=3, answered=0, correct=0).stats()
    assert s["p50_ms"] is None and s["error_pct"] is None


def test_error_and_speedup():
    assert error_pct(8.0, 10.0) == pytest.approx(-20.0)
    assert error_pct(8.0, None) is None
    assert speedup(30.0, 10.0) == 3.0
    assert speedup(None, 10.0) is None


def test_dcia_is_the_variant_the_planner_predicts_faster_and_speedups_use_p50():
    result = ScenarioResult("s", "", [
        run("edge-only", [40.0] * 5),
        run("cloud-only", [30.0] * 5),
        run("edge-cloud", [20.0] * 5),
        run("dcia-network", [10.0] * 5, predicted=5.0),
        run("dcia-cloud", [8.0] * 5, predicted=6.0),   # measured faster, predicted slower
    ], planner_choice="dcia-network")
    s = result.summary()
    assert s["dcia"] == "dcia-network" and s["dcia_p50_ms"] == 10.0
    assert s["best_single_tier"] == "cloud-only"
    assert s["speedup_over_best_single_tier"] == 3.0
    assert s["speedup_over_edge_cloud"] == 2.0
    assert s["fastest_measured"] == "dcia-cloud"


def test_a_scenario_where_dcia_loses_has_a_speedup_below_one():
    result = ScenarioResult("s", "", [run("edge-only", [1.0] * 3), run("cloud-only", [9.0] * 3),
                                      run("dcia-network", [2.0] * 3)], "edge-only")
    assert result.summary()["speedup_over_best_single_tier"] == 0.5
    assert result.summary()["speedup_over_edge_cloud"] is None


def test_write_makes_the_json_and_the_plots(tmp_path):
    result = ScenarioResult("s", "d", [run("edge-only", [1.0, 2.0]), run("dcia-network", [3.0])],
                            "edge-only")
    files = write([result], tmp_path, {"target": "embedded"})
    assert [f.name for f in files] == ["eval.json", "eval-cdf-s.png", "eval-p50.png"]
    body = json.loads(files[0].read_text())
    assert body["target"] == "embedded"
    assert body["scenarios"][0]["strategies"][1]["stats"]["p50_ms"] == 3.0
    assert all(f.stat().st_size > 1000 for f in files[1:])
