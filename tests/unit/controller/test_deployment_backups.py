"""Backup layers (controller.deployment.from_plan ``backups``): a later switch on the path
also holds layers planned on an earlier one, metered at its own capacity, so that what the
earlier switch defers is computed there; nothing else of the deployment changes, and a
backup the plan or the policy does not allow is refused."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from controller.demo_model import load_demo
from controller.deployment import from_plan
from controller.planner import Constraints, evaluate
from controller.topology import load_topology, parse_topology
from dcia.errors import PolicyError, TopologyError
from demos.video.run import video_plan

ROOT = Path(__file__).resolve().parents[3]
VIDEO = ROOT / "topologies" / "video.toml"
MODEL = load_demo().quantized


def assigned(topo, nodes: list[str], path: str = "cam1"):
    route = topo.route(path)
    index = {n.name: i for i, n in enumerate(route.nodes)}
    return evaluate(MODEL.layers, route, [index[n] for n in nodes], Constraints())


def shares(deployment) -> dict[str, tuple[list[int], float | None]]:
    return {a.endpoint.name: (sorted(a.layers), a.layer_rate) for a in deployment.switches}


def test_a_backup_holds_the_earlier_switchs_layers_at_its_own_meter_rate():
    topo = load_topology(VIDEO)
    p = assigned(topo, ["cam1", "agg1", "agg1", "dc1"])
    plain = from_plan(p, MODEL.layers, topo, model_id=1, version=1)
    backed = from_plan(p, MODEL.layers, topo, model_id=1, version=1, backups={"metro1": [1, 2]})
    assert shares(plain) == {"agg1": ([1, 2], 20.0), "metro1": ([], None)}
    assert shares(backed) == {"agg1": ([1, 2], 20.0), "metro1": ([1, 2], 8.0)}
    agg1 = next(a for a in backed.switches if a.endpoint.name == "agg1")
    assert agg1 == next(a for a in plain.switches if a.endpoint.name == "agg1")


@pytest.mark.parametrize("backups, message", [
    ({"metro1": [3]}, "not a layer before the model's last"),
    ({"metro1": [0]}, "planned on cam1, not on a switch before metro1"),
    ({"agg1": [1]}, "planned on agg1, not on a switch before agg1"),
    ({"dc1": [1]}, "dc1 is not a switch on path cam1"),
])
def test_a_backup_the_plan_does_not_allow_is_refused(backups, message):
    topo = load_topology(VIDEO)
    p = assigned(topo, ["cam1", "agg1", "agg1", "dc1"])
    with pytest.raises(TopologyError, match=message):
        from_plan(p, MODEL.layers, topo, model_id=1, version=1, backups=backups)


def test_a_backup_the_policy_forbids_is_refused():
    text = VIDEO.read_text() + '\n[policy]\n[[policy.rules]]\nname = "no-metro"\nforbid = ["metro1"]\n'
    topo = parse_topology(tomllib.loads(text), source="video.toml", base=VIDEO.parent)
    p = assigned(topo, ["cam1", "agg1", "agg1", "dc1"])
    with pytest.raises(PolicyError, match="no-metro"):
        from_plan(p, MODEL.layers, topo, model_id=1, version=1, backups={"metro1": [1]})


def test_the_video_plan_puts_features_on_the_camera_the_middle_on_agg1_the_last_on_the_cloud():
    topo = load_topology(VIDEO)
    for path in topo.paths:
        vp = video_plan(MODEL, topo, path)
        assert vp.plan.assignment == (path, "agg1", "agg1", "dc1")
        assert vp.aggregation == "agg1" and vp.backups == {"metro1": [1, 2]}
        assert vp.edge_layers == 1
