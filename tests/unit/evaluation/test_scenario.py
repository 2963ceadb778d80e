"""Scenario files: a topology and the experiment's overrides, checked with clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from evaluation.scenario import ScenarioError, load_scenario

REPO = Path(__file__).resolve().parents[3]
TOPOLOGY = REPO / "topologies" / "eval.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.toml"
    path.write_text(f'topology = "{TOPOLOGY}"\n' + text)
    return path


def test_the_overrides_change_only_the_links_they_name(tmp_path):
    s = load_scenario(write(tmp_path, 'name = "x"\nedge_cpu = 0.25\nrequests = 7\n'
                                      '[links.cl1-sw3]\ndelay_ms = 30\nbandwidth_mbps = 5\n'))
    topology = s.topology()
    assert (s.name, s.edge_cpu, s.requests) == ("x", 0.25, 7)
    wan = topology.link("sw3", "cl1")
    assert (wan.delay_ms, wan.bandwidth_mbps) == (30.0, 5.0)
    assert topology.link("ed1", "sw1").bandwidth_mbps == 100.0
    assert topology.link("ed1", "sw1").delay_ms == 0.0


def test_every_committed_scenario_loads():
    names = {load_scenario(p).name for p in (REPO / "scenarios").glob("*.toml")}
    assert {"baseline", "constrained"} <= names


def test_the_constrained_scenario_is_the_issues():
    s = load_scenario(REPO / "scenarios" / "constrained.toml")
    topology = s.topology()
    assert topology.link("ed1", "sw1").bandwidth_mbps <= 5
    assert 10 <= topology.link("sw3", "cl1").delay_ms <= 50
    assert s.edge_cpu is not None and s.edge_cpu < 0.5
    assert not topology.policy.raw_input_on_edge


@pytest.mark.parametrize("text, message", [
    ('name = "x"\n[links.ed1-sw9]\ndelay_ms = 1\n', "no link ed1-sw9"),
    ('name = "x"\n[links.ed1]\ndelay_ms = 1\n', "name a link by its two nodes"),
    ('name = "x"\n[links.ed1-sw1]\njitter_ms = 1\n', "unknown key jitter_ms"),
    ('name = "x"\n[links.ed1-sw1]\nbandwidth_mbps = 0\n', "bandwidth_mbps must be a number above 0"),
    ('name = "x"\n[links.ed1-sw1]\ndelay_ms = -1\n', "delay_ms must be a number of at least 0"),
    ('name = "x"\nedge_cpu = 1.5\n', "edge_cpu is a share"),
    ('name = "x"\nrequests = 0\n', "requests must be an integer"),
    ('name = "x"\ncolour = "red"\n', "unknown key colour"),
    ('edge_cpu = 0.5\n', "'name' must be a non-empty string"),
])
def test_a_bad_scenario_says_what_is_wrong(tmp_path, text, message):
    with pytest.raises(ScenarioError, match=message):
        load_scenario(write(tmp_path, text))


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ScenarioError, match="not found"):
        load_scenario(tmp_path / "nope.toml")


def test_the_cpu_period_defaults_to_one_millisecond_and_is_checked(tmp_path):
    assert load_scenario(write(tmp_path, 'name = "x"\nedge_cpu = 0.2\n')).edge_cpu_period_ms == 1.0
    assert load_scenario(write(tmp_path, 'name = "x"\nedge_cpu_period_ms = 100\n')).edge_cpu_period_ms == 100
    with pytest.raises(ScenarioError, match="edge_cpu_period_ms must be 1..1000"):
        load_scenario(write(tmp_path, 'name = "x"\nedge_cpu_period_ms = 0.5\n'))


def test_the_loaded_cloud_scenario_limits_the_cloud_and_evaluates_the_conv_model():
    s = load_scenario(REPO / "scenarios" / "loaded_cloud.toml")
    assert (s.name, s.model, s.cloud_cpu, s.cloud_cpu_period_ms) == ("loaded-cloud", "conv", 0.05, 1.0)
    assert s.edge_cpu == 0.1 and s.topology().link("sw3", "cl1").delay_ms == 20.0


def test_a_scenario_evaluates_the_digits_model_unless_it_names_another(tmp_path):
    assert load_scenario(write(tmp_path, 'name = "x"\n')).model == "digits"
    assert load_scenario(write(tmp_path, 'name = "x"\nmodel = "conv"\n')).model == "conv"
    assert load_scenario(write(tmp_path, 'name = "x"\n')).cloud_cpu is None


@pytest.mark.parametrize("text,message", [
    ('model = "resnet"\n', "model must be one of digits, conv"),
    ("cloud_cpu = 0\n", "cloud_cpu is a share of the machine"),
    ("cloud_cpu = 1.5\n", "cloud_cpu is a share of the machine"),
    ("cloud_cpu_period_ms = 0.5\n", "cloud_cpu_period_ms must be 1..1000"),
])
def test_bad_model_and_cloud_values_are_refused(tmp_path, text, message):
    with pytest.raises(ScenarioError, match=message):
        load_scenario(write(tmp_path, 'name = "x"\n' + text))


def test_eval_model_renames_a_scenario_that_evaluates_another_model():
    from evaluation.runner import with_model

    s = load_scenario(REPO / "scenarios" / "constrained.toml")
    assert with_model(s, None) is s and with_model(s, "digits") is s
    conv = with_model(s, "conv")
    assert (conv.name, conv.model, conv.edge_cpu) == ("constrained-conv", "conv", 0.1)
