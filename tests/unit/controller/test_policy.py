"""The placement policy (controller.policy) as the operator writes it in a topology file:
each rule kept by the planner, the deployment and the steering loop, each bad policy
refused in one line, and an unsatisfiable one named by its rules."""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path

import pytest

from controller.cli import main
from controller.demo_model import load_demo
from controller import entries as E
from controller.deployment import desired_entries, from_plan
from controller.planner import Constraints, evaluate, plan
from controller.steer import PathSelector, SteerConfig, constraints_for
from controller.topology import load_topology, parse_topology
from dcia.errors import PlanError, PolicyError, TopologyError

ROOT = Path(__file__).resolve().parents[3]
LINEAR = (ROOT / "topologies" / "linear.toml").read_text()
REDUNDANT = (ROOT / "topologies" / "redundant.toml").read_text()
MODEL = load_demo().quantized
N = len(MODEL.layers)


def topology(policy: str, base: str = LINEAR):
    return parse_topology(tomllib.loads(base + "\n" + policy), source="t.toml", base=ROOT / "topologies")


def best(topo, constraints: Constraints = Constraints(), model_id: int = 1, path: str | None = None):
    route = topo.route(path)
    return plan(MODEL.layers, route, topo.policy.constraints(constraints, route, model_id, N))


def deploy(topo, assignment: list[str], model_id: int = 1, path: str | None = None):
    """from_plan of a plan made without the policy (as a stale or hand-made one would be)."""
    route = topo.route(path)
    index = {n.name: i for i, n in enumerate(route.nodes)}
    p = evaluate(MODEL.layers, route, [index[n] for n in assignment], Constraints())
    return from_plan(p, MODEL.layers, topo, model_id=model_id, version=1)


# ---------------------------------------------------------------- each rule --

def test_without_a_policy_the_plan_is_unchanged():
    plain = parse_topology(tomllib.loads(LINEAR), source="t.toml")
    assert best(plain).assignment == ("h1", "s1", "s1", "s1")


def test_a_forbid_rule_keeps_its_node_out_for_its_model_only():
    topo = topology('[[policy.rules]]\nname = "no-s1"\nforbid = ["s1"]\nmodels = [1]\n')
    assert "s1" not in best(topo).assignment
    assert best(topo, model_id=2).assignment == ("h1", "s1", "s1", "s1")
    with pytest.raises(PolicyError, match=r"^policy rule 'no-s1': layer 1 of model 1 may not run on s1"):
        deploy(topo, ["h1", "s1", "s1", "s1"])
    deploy(topo, ["h1", "s1", "s1", "s1"], model_id=2)  # another model: allowed


def test_a_forbid_rule_by_kind_and_layers():
    topo = topology('[[policy.rules]]\nname = "cloud-decides"\nforbid = ["switch"]\nlayers = [3]\n')
    assert best(topo).assignment[3] in ("h1", "h2")
    with pytest.raises(PolicyError, match="policy rule 'cloud-decides': layer 3"):
        deploy(topo, ["h1", "s1", "s1", "s1"])


def test_an_allow_rule_keeps_every_other_node_out():
    topo = topology('[[policy.rules]]\nname = "only-s2"\nallow = ["edge", "s2", "cloud"]\n')
    assignment = best(topo).assignment
    assert set(assignment) <= {"h1", "s2", "h2"} and "s2" in assignment
    with pytest.raises(PolicyError, match="policy rule 'only-s2': layer 1 of model 1 may not run on s1"):
        deploy(topo, ["h1", "s1", "s1", "s1"])


def test_the_raw_input_never_leaves_the_edge():
    topo = topology("[policy]\nraw_input_on_edge = true\n")
    with pytest.raises(PolicyError, match="policy rule 'raw_input_on_edge'.*0 edge layers"):
        best(topo, Constraints(min_edge_layers=0))
    with pytest.raises(PolicyError, match="policy rule 'raw_input_on_edge': layer 0 would run on s1"):
        topo.policy.check(["s1"] * N, topo.route(), 1)
    relaxed = topology("[policy]\nraw_input_on_edge = false\n")
    assert best(relaxed, Constraints(min_edge_layers=0)).assignment  # plans


def test_private_activations_never_reach_an_untrusted_node_even_passing_through():
    topo = topology('[policy]\nprivate_layers = 2\ntrust = { s2 = "untrusted" }\n')
    assignment = best(topo).assignment
    # layers 0..2 read the input or a private activation: before s2, on h1 or s1
    assert set(assignment[:3]) <= {"h1", "s1"}
    # edge then cloud: layer 1 on h2 would carry layer 0's activation over s2
    with pytest.raises(PolicyError, match=r"private_layers = 2 \(s2 is untrusted\).*layer 1 .* on h2"):
        deploy(topo, ["h1", "h2", "h2", "h2"])
    deploy(topo, ["h1", "s1", "s1", "h2"])  # layer 2's activation may cross s2


def test_a_switch_holding_a_private_layer_gets_no_meter():
    metered = LINEAR.replace('device_id = 1\n', 'device_id = 1\nlayers_per_s = 1000\n')
    private = topology('[policy]\nprivate_layers = 1\ntrust = { s2 = "untrusted" }\n', metered)
    open_ = topology('[policy]\nprivate_layers = 1\ntrust = { s3 = "untrusted" }\n', metered)
    assert deploy(private, ["h1", "s1", "s1", "s1"]).switches[0].layer_rate is None
    on_s1 = deploy(open_, ["h1", "s1", "s1", "s1"]).switches[0]
    assert on_s1.layer_rate is None  # layer 1 on s1 is private here too
    public = topology("", metered)
    assert deploy(public, ["h1", "s1", "s1", "s1"]).switches[0].layer_rate == pytest.approx(1000 / 3)


# ------------------------------------------------------ unsatisfiable policies --

def test_a_policy_no_placement_satisfies_names_its_rules():
    topo = topology('[policy]\nprivate_layers = 1\ntrust = { s1 = "untrusted" }\n'
                    '[[policy.rules]]\nname = "edge-light"\nforbid = ["edge"]\nlayers = [1]\n')
    with pytest.raises(PlanError) as e:
        best(topo)
    message = str(e.value)
    assert message.startswith("layer 1 (dense 16→16) cannot run on any node of path main")
    assert "policy rule 'edge-light'" in message
    assert "policy rule 'private_layers = 1 (s1 is untrusted)'" in message


def test_an_untrusted_edge_with_private_layers_is_unsatisfiable():
    topo = topology('[policy]\nprivate_layers = 1\ntrust = { h1 = "untrusted" }\n')
    with pytest.raises(PlanError, match="layer 0 must run on edge h1 .* policy rule 'private_layers = 1 "
                                        r"\(h1 is untrusted\)'"):
        best(topo)


# ------------------------------------------------------------ bad policies --

@pytest.mark.parametrize("policy, message", [
    ('[policy]\ntrust = { s9 = "untrusted" }\n', r"\[policy\] trust: unknown node s9 \(nodes: h1, h2, s1, s2, s3\)"),
    ('[policy]\ntrust = { s1 = "maybe" }\n', r"trust: s1 = 'maybe'; give \"trusted\" or \"untrusted\""),
    ('[policy]\nprivate_layers = -1\n', "private_layers must be a whole number 0 or more"),
    ('[policy]\nprivate_layers = 2\n', "protects nothing: no node is untrusted"),
    ('[policy]\nraw_input_on_edge = "yes"\n', "raw_input_on_edge must be true or false"),
    ('[policy]\nzones = 1\n', r"\[policy\]: unknown key zones"),
    ('[[policy.rules]]\nforbid = ["s1"]\n', r"#1 needs a name"),
    ('[[policy.rules]]\nname = "r"\n', "policy rule 'r': give either forbid = \\[nodes\\] or allow = \\[nodes\\], not neither"),
    ('[[policy.rules]]\nname = "r"\nforbid = ["s1"]\nallow = ["s2"]\n', "not both"),
    ('[[policy.rules]]\nname = "r"\nforbid = ["s9"]\n', "policy rule 'r': unknown node s9 .*or a kind: cloud, edge, switch"),
    ('[[policy.rules]]\nname = "r"\nforbid = ["s1"]\nlayers = ["1"]\n', "layers must be a non-empty list of whole numbers"),
    ('[[policy.rules]]\nname = "r"\nforbid = ["s1"]\nmodels = [70000]\n', "models must be .* up to 65535"),
    ('[[policy.rules]]\nname = "r"\nforbid = ["s1"]\n[[policy.rules]]\nname = "r"\nforbid = ["s2"]\n',
     "two rules are named 'r'"),
    ('[[policy.rules]]\nname = "a"\nallow = ["switch"]\nmodels = [1]\n'
     '[[policy.rules]]\nname = "b"\nforbid = ["s2"]\nlayers = [2]\n',
     "policy rules 'a' and 'b' contradict each other: 'a' allows s2 to run model 1 layers 2 and 'b' forbids it"),
], ids=["unknown-node", "trust-level", "negative", "nothing-untrusted", "not-bool", "unknown-key",
        "no-name", "no-effect", "both-effects", "unknown-target", "layer-type", "model-range",
        "duplicate-name", "contradiction"])
def test_a_bad_policy_is_one_line_naming_what_is_wrong(policy, message):
    with pytest.raises(TopologyError, match=message) as e:
        topology(policy)
    assert "\n" not in str(e.value) and str(e.value).startswith("t.toml: ")


def test_rules_that_do_not_overlap_do_not_contradict():
    topology('[[policy.rules]]\nname = "a"\nallow = ["s1"]\nmodels = [1]\n'
             '[[policy.rules]]\nname = "b"\nforbid = ["s1"]\nmodels = [2]\n')


def test_a_topology_file_with_bad_toml_is_one_line(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text(LINEAR + "\n[policy\n")
    with pytest.raises(TopologyError, match=r"^t.toml: not valid TOML"):
        load_topology(path)


# ------------------------------------------------- the commands and the loop --

def test_dcia_plan_shows_which_rule_keeps_which_node_out(capsys):
    assert main(["plan", "--topology", str(ROOT / "topologies" / "policy.toml"),
                 "--model", str(ROOT / "models" / "digits.onnx")]) == 0
    out = capsys.readouterr().out
    assert "Policy rule 's3-leased' keeps s3 from layers 0, 1, 2, 3." in out
    assert ("Policy rule 'private_layers = 1 (s2 is untrusted)' keeps s2 from layers 0, 1; "
            "s3 from layers 0, 1; h2 from layers 0, 1.") in out
    assert "edge + cloud not allowed" in out


def test_dcia_plan_refuses_an_edge_layer_count_the_policy_forbids(capsys):
    assert main(["plan", "--topology", str(ROOT / "topologies" / "policy.toml"),
                 "--model", str(ROOT / "models" / "digits.onnx"), "--edge-layers", "0"]) == 2
    assert capsys.readouterr().err == ("error: policy rule 'raw_input_on_edge': the raw input never "
                                       "leaves the edge, but 0 edge layers were asked for (give at least 1)\n")


def steering(topo, model_id=1) -> PathSelector:
    args = argparse.Namespace(edge_layers=1, objective="latency", max_layers_per_switch=None)
    return PathSelector(topo, MODEL.layers, constraints_for(args, N), SteerConfig(), model_id=model_id)


def test_the_steering_loop_plans_within_the_policy():
    # s1 (primary) may not run model 1: the loop deploys on the backup path's s3
    topo = topology('[[policy.rules]]\nname = "no-s1"\nforbid = ["s1"]\nmodels = [1]\n', REDUNDANT)
    first = steering(topo).decide({})
    assert first.action == "deploy" and "s1" not in first.new.assignment
    assert "s1" not in steering(topo, model_id=None).decide({}).new.assignment
    assert "s1" in steering(topo, model_id=2).decide({}).new.assignment


def test_the_steering_loop_replaces_a_deployed_plan_that_breaks_the_policy():
    topo = topology('[[policy.rules]]\nname = "no-s1"\nforbid = ["s1"]\nmodels = [1]\n', REDUNDANT)
    open_ = parse_topology(tomllib.loads(REDUNDANT), source="t.toml", base=ROOT / "topologies")
    stale = steering(open_).decide({}).new           # made before the rule existed
    assert "s1" in stale.assignment
    s = steering(topo)
    s.current = stale
    d = s.decide({})
    assert d.action == "enforce" and d.changes_deployment
    assert "policy rule 'no-s1'" in d.reason and "s1" not in d.new.assignment


# ------------------------------------------------------------------ tenants --

def test_tenants_are_installed_where_the_model_is_computed():
    topo = topology('[[policy.tenants]]\nname = "a"\nmodels = [1]\nsources = ["10.0.1.0/24", "10.0.3.5"]\n')
    assert topo.policy.sources(1) == ("10.0.1.0/24", "10.0.3.5/32") and topo.policy.sources(2) is None
    deployment = deploy(topo, ["h1", "s1", "s1", "s1"])
    s1, s2 = deployment.switches[0], deployment.switches[1]
    tenants = [e for e in desired_entries(1, 1, s1) if e.table_id == E.T_TENANTS]
    assert [(e.match["src"], e.action.name) for e in tenants] == [
        ("0.0.0.0/0", "tenant_denied"), ("10.0.1.0/24", "tenant_allowed"), ("10.0.3.5/32", "tenant_allowed")]
    assert desired_entries(1, 1, s2) == []   # s2 computes nothing: no state at all
    open_ = deploy(topo, ["h1", "s1", "s1", "s1"], model_id=2).switches[0]
    assert not [e for e in desired_entries(2, 1, open_) if e.table_id == E.T_TENANTS]


@pytest.mark.parametrize("policy, message", [
    ('[[policy.tenants]]\nname = "a"\nsources = ["10.0.1.0/24"]\n', "give models"),
    ('[[policy.tenants]]\nname = "a"\nmodels = [1]\n', "give sources"),
    ('[[policy.tenants]]\nname = "a"\nmodels = [1]\nsources = ["10.0.1.300/24"]\n', "is not an IPv4 address or prefix"),
    ('[[policy.tenants]]\nmodels = [1]\nsources = ["10.0.1.0/24"]\n', "needs a name"),
])
def test_a_bad_tenant_is_one_line(policy, message):
    with pytest.raises(TopologyError, match=message):
        topology(policy)



# ------------------------------------------------------------- sealed models --

SEALED = '[policy]\nsealed_models = [1]\n[security]\ntensor_keys = "keys/t.toml"\n'


def test_a_sealed_model_runs_on_no_switch_and_other_models_still_do():
    topo = topology(SEALED)
    assert best(topo).assignment in (("h1", "h1", "h1", "h1"), ("h1", "h2", "h2", "h2"),
                                     ("h1", "h1", "h2", "h2"), ("h1", "h1", "h1", "h2"))
    assert best(topo, model_id=2).assignment == ("h1", "s1", "s1", "s1")
    with pytest.raises(PolicyError, match=r"^policy rule 'sealed_models \(model 1's tensors are "
                                          r"sealed end to end\)': layer 1 of model 1 may not run on s1"):
        deploy(topo, ["h1", "s1", "s1", "s1"])
    assert topo.security.tensor_keys == ROOT / "topologies" / "keys" / "t.toml"


def test_sealed_models_need_a_secrets_file():
    with pytest.raises(TopologyError, match=r"sealed_models = \[1\] needs \[security\] tensor_keys"):
        topology('[policy]\nsealed_models = [1]\n')
    with pytest.raises(TopologyError, match="sealed_models must be a non-empty list"):
        topology('[policy]\nsealed_models = []\n[security]\ntensor_keys = "k"\n')


def test_the_confidential_topology_splits_between_edge_and_cloud_only(capsys):
    assert main(["plan", "--topology", str(ROOT / "topologies" / "confidential.toml"),
                 "--model", str(ROOT / "models" / "digits.onnx")]) == 0
    out = capsys.readouterr().out
    assert "Policy rule 'sealed_models (the model's tensors are sealed end to end)' keeps s1 from layers 0, 1, 2, 3" in out
    assert "h2 (cloud)" in out and "forwards" in out
