"""The partition planner: exact against brute force, and respectful of every constraint."""

from __future__ import annotations

import itertools
import json
import math
import random
from pathlib import Path

import pytest

from controller.planner import (
    Constraints,
    Forbid,
    LayerSpec,
    Objective,
    evaluate,
    packet_bytes,
    plan,
    read_layer_list,
)
from controller.topology import Endpoint, Link, Route, load_topology
from dcia.capability import Capability
from dcia.errors import ModelImportError, PlanError
from dcia.layers import DenseLayer

LINEAR = Path(__file__).resolve().parents[3] / "topologies" / "linear.toml"
DIGITS = [LayerSpec("dense", 64, 16), LayerSpec("dense", 16, 16), LayerSpec("dense", 16, 16),
          LayerSpec("dense", 16, 10)]


def linear_route(**changes: dict) -> Route:
    """The route of topologies/linear.toml, with some nodes' capability fields changed."""
    route = load_topology(LINEAR).route()
    nodes = tuple(
        Capability.from_dict({**n.to_dict(), **changes.get(n.name, {})}) for n in route.nodes
    )
    return Route(route.name, nodes, route.links)


def chain(nodes: list[Capability], links: list[tuple[float, float]]) -> Route:
    return Route(
        "test",
        tuple(nodes),
        tuple(
            Link(Endpoint(a.name, 1), Endpoint(b.name, 2), bandwidth_mbps=bw, delay_ms=delay)
            for (a, b), (bw, delay) in zip(zip(nodes, nodes[1:]), links)
        ),
    )


# ------------------------------------------------------------------ brute force --


def random_case(rng: random.Random) -> tuple[list[LayerSpec], Route, Constraints]:
    n_layers = rng.randint(1, 5)
    layers: list[LayerSpec] = []
    width = rng.choice([2, 8, 16, 24, 64])
    for i in range(n_layers):
        kind = rng.choice(["dense", "dense", "elementwise"] + (["embedding"] if i == 0 else []))
        if kind == "embedding":
            layers.append(LayerSpec("embedding", 2, rng.choice([8, 16, 32])))
        elif kind == "elementwise":
            layers.append(LayerSpec("elementwise", width, width))
        else:
            layers.append(LayerSpec("dense", width, rng.choice([4, 10, 16, 20, 1100])))
        width = layers[-1].n_out

    def node(name: str, kind: str) -> Capability:
        fields = {
            "name": name, "kind": kind,
            "load": rng.choice([0.0, 0.0, 0.3, 1.0]),
            "layer_time_s": rng.choice([0.0, 1e-4, 5e-4, 2e-3]),
        }
        if kind == "switch":
            fields["operations"] = rng.sample(["dense", "elementwise", "embedding"], rng.randint(1, 3))
            fields["max_elems"] = rng.choice([8, 16, 32])
            fields["layers_per_pass"] = rng.randint(1, 3)
        else:
            fields["operations"] = rng.choice([["any"], ["dense", "elementwise"]])
            fields["macs_per_s"] = rng.choice([1e5, 1e6, 1e8])
            fields["layers_per_pass"] = rng.choice([None, None, 2])
        fields["accelerator_available"] = rng.random() > 0.1
        return Capability.from_dict(fields)

    nodes = [node("e", "edge")] + [node(f"s{k}", "switch") for k in range(rng.randint(0, 3))] + [node("c", "cloud")]
    links = [(rng.choice([1.0, 10.0, 1000.0]), rng.choice([0.0, 0.1, 5.0])) for _ in nodes[1:]]
    forbid = tuple(
        Forbid(rng.choice([n.name for n in nodes] + ["edge", "switch", "cloud"]),
               rng.choice([None, frozenset(rng.sample(range(n_layers), rng.randint(1, n_layers)))]))
        for _ in range(rng.choice([0, 0, 1, 2]))
    )
    constraints = Constraints(
        min_edge_layers=rng.choice([0, 1, 1, 2]),
        forbid=forbid,
        max_layers_per_switch=rng.choice([None, 0, 1, 2]),
        objective=rng.choice(list(Objective)),
    )
    return layers, chain(nodes, links), constraints


def all_plans(layers, route, constraints):
    for positions in itertools.product(range(len(route.nodes)), repeat=len(layers)):
        if list(positions) == sorted(positions):
            try:
                yield evaluate(layers, route, positions, constraints)
            except PlanError:
                pass


@pytest.mark.parametrize("block", range(8))
def test_planner_matches_brute_force_on_random_cases(block: int) -> None:
    feasible = 0
    for seed in range(block * 100, (block + 1) * 100):
        layers, route, constraints = random_case(random.Random(seed))
        plans = list(all_plans(layers, route, constraints))
        if not plans:
            with pytest.raises(PlanError):
                plan(layers, route, constraints)
            continue
        feasible += 1
        found = plan(layers, route, constraints)
        assert evaluate(layers, route, [route_index(route, n) for n in found.assignment], constraints) == found
        if constraints.objective is Objective.LATENCY:
            best = min(p.latency_s for p in plans)
            assert found.latency_s == pytest.approx(best, rel=1e-9), f"seed {seed}"
        else:
            bottleneck = min(p.bottleneck_s for p in plans)
            best = min(p.latency_s for p in plans if p.bottleneck_s <= bottleneck * (1 + 1e-9))
            assert found.bottleneck_s == pytest.approx(bottleneck, rel=1e-9), f"seed {seed}"
            assert found.latency_s == pytest.approx(best, rel=1e-9), f"seed {seed}"
    assert feasible >= 30, "the random cases should mostly have plans"


def route_index(route: Route, name: str) -> int:
    return [n.name for n in route.nodes].index(name)


# ------------------------------------------------------------------ behaviour --


def test_weak_edge_offloads_to_the_first_switch_and_the_answer_returns_from_there() -> None:
    p = plan(DIGITS, linear_route())
    assert p.assignment == ("h1", "s1", "s1", "s1")
    assert [s.node for s in p.stages] == ["h1", "s1"]
    assert [(h.src, h.dst, h.elems) for h in p.answer] == [("s1", "h1", 10)]
    assert p.latency_s == pytest.approx(
        sum(s.compute_s for s in p.stages) + p.hops[0].seconds + p.answer[0].seconds
    )


def test_cost_model_of_stages_and_hops() -> None:
    route = linear_route()
    p = evaluate(DIGITS, route, [0, 1, 2, 4])
    edge, s1, s2 = route.nodes[:3]
    assert p.stages[0].compute_s == pytest.approx((2e-4 + 64 * 16 / 2e5) * (1 + edge.load))
    assert p.stages[1].compute_s == pytest.approx(s1.layer_time_s)
    assert [s.compute_s for s in p.stages[3:4]] == [0.0]
    first = p.hops[0]
    assert (first.elems, first.nbytes) == (16, packet_bytes(16)) == (16, 16 + 16 + 42)
    assert first.seconds == pytest.approx(0.1e-3 + 74 * 8 / 100e6)
    assert [h.elems for h in p.hops] == [16, 16, 16, 16]
    assert [h.src for h in p.answer] == ["h2", "s3", "s2", "s1"]


def test_raw_input_never_leaves_the_edge_by_default() -> None:
    fast_cloud_next_door = linear_route(h1={"macs_per_s": 1e3})
    assert plan(DIGITS, fast_cloud_next_door).assignment[0] == "h1"
    no_rule = plan(DIGITS, fast_cloud_next_door, Constraints(min_edge_layers=0))
    assert no_rule.assignment[0] == "h2"


def test_more_edge_layers_on_request() -> None:
    assert plan(DIGITS, linear_route(), Constraints(min_edge_layers=3)).assignment == ("h1", "h1", "h1", "s1")


def test_a_forbidden_switch_is_skipped() -> None:
    p = plan(DIGITS, linear_route(), Constraints(forbid=(Forbid("s1"),)))
    assert p.assignment == ("h1", "s2", "s2", "s2")
    assert p.stages[1].layers == range(0)


def test_policy_for_some_layers_of_a_kind() -> None:
    no_last_layer_in_network = Constraints(forbid=(Forbid("switch", frozenset({3})),))
    assert plan(DIGITS, linear_route(), no_last_layer_in_network).assignment == ("h1",) * 4


def test_a_loaded_switch_loses_to_an_idle_one() -> None:
    p = plan(DIGITS, linear_route(s1={"load": 1.0}))
    assert p.assignment == ("h1", "s2", "s2", "s2")


def test_a_switch_whose_pipeline_is_unavailable_runs_nothing() -> None:
    p = plan(DIGITS, linear_route(s1={"accelerator_available": False}))
    assert "s1" not in p.assignment


def test_max_layers_per_switch_spreads_the_layers() -> None:
    p = plan(DIGITS, linear_route(), Constraints(max_layers_per_switch=1))
    assert p.assignment == ("h1", "s1", "s2", "s3")


def test_layers_per_pass_bounds_a_switch_stage() -> None:
    layers = [LayerSpec("dense", 64, 16)] + [LayerSpec("dense", 16, 16)] * 10
    p = plan(layers, linear_route())
    assert max(len(s.layers) for s in p.stages if s.kind == "switch") <= 8
    assert set(p.assignment[1:]) == {"s1", "s2"}


def test_throughput_objective_balances_stages() -> None:
    layers = [LayerSpec("dense", 4, 16)] + [LayerSpec("dense", 16, 16)] * 3
    route = linear_route(h1={"macs_per_s": 2e5, "layer_time_s": 0.0})
    fastest = plan(layers, route)
    steadiest = plan(layers, route, Constraints(objective=Objective.THROUGHPUT))
    assert fastest.assignment == ("h1", "s1", "s1", "s1")
    assert steadiest.assignment == ("h1", "s1", "s2", "s3")
    assert steadiest.bottleneck_s < fastest.bottleneck_s
    assert steadiest.latency_s > fastest.latency_s


def test_tensors_larger_than_a_packet_do_not_travel() -> None:
    layers = [LayerSpec("dense", 8, 2000), LayerSpec("dense", 2000, 10)]
    assert plan(layers, linear_route()).assignment == ("h1", "h1")
    with pytest.raises(PlanError, match="packets carry at most 1024"):
        plan(layers, linear_route(), Constraints(forbid=(Forbid("edge", frozenset({1})),)))


def test_real_layer_records_plan_like_their_shapes() -> None:
    dense = [DenseLayer([[1] * s.n_in] * s.n_out, [0] * s.n_out, [1] * s.n_out, [0] * s.n_out) for s in DIGITS]
    assert plan(dense, linear_route()) == plan(DIGITS, linear_route())


# ------------------------------------------------------------------ impossible --


def test_a_layer_no_node_may_run_names_the_layer_and_every_node() -> None:
    layers = DIGITS[:3] + [LayerSpec("dense", 16, 64), LayerSpec("dense", 64, 10)]
    with pytest.raises(PlanError) as e:
        plan(layers, linear_route(), Constraints(forbid=(Forbid("cloud"), Forbid("edge", frozenset({3})))))
    message = str(e.value)
    assert message == (
        "layer 3 (dense 16→64) cannot run on any node of path main (h1 → s1 → s2 → s3 → h2): "
        "it is forbidden on edge h1 by policy; "
        "it has 64 outputs but switch s1 supports at most 16 (likewise s2, s3); "
        "it is forbidden on cloud h2 by policy"
    )


def test_the_edge_must_be_able_to_run_the_first_layer() -> None:
    with pytest.raises(PlanError, match=r"layer 0 must run on edge h1 \(the raw input never leaves the edge\) "
                                        r"but it is an embedding layer but edge h1 runs only dense"):
        plan([LayerSpec("embedding", 2, 8)], linear_route(h1={"operations": ["dense"]}))


def test_layers_out_of_path_order_have_no_plan() -> None:
    layers = [LayerSpec("dense", 4, 4)] * 3
    policy = Constraints(forbid=(Forbid("edge", frozenset({1, 2})), Forbid("switch", frozenset({1})),
                                 Forbid("cloud", frozenset({2}))))
    with pytest.raises(PlanError, match=r"after layers 0..1, no node further along the path can run layer 2 "
                                        r"\(it may run on s1, s2, s3;"):
        plan(layers, linear_route(), policy)


def test_switches_can_be_kept_from_computing() -> None:
    assert plan(DIGITS, linear_route(), Constraints(max_layers_per_switch=0)).assignment == ("h1",) * 4


@pytest.mark.parametrize(
    ("fields", "error"),
    [({"min_edge_layers": -1}, "edge layers must be 0 or more, not -1"),
     ({"max_layers_per_switch": -2}, "layers per switch must be 0 or more, not -2")],
)
def test_invalid_constraints(fields: dict, error: str) -> None:
    with pytest.raises(PlanError, match=error):
        Constraints(**fields)


def test_an_empty_model_has_no_plan() -> None:
    with pytest.raises(PlanError, match="no layers"):
        plan([], linear_route())


@pytest.mark.parametrize(
    ("positions", "error"),
    [
        ([0, 2, 1, 3], "path order"),
        ([1, 1, 1, 1], "must run on the edge"),
        ([0, 0, 0, 9], "must lie on the path"),
        ([0, 0], "one position per layer"),
    ],
)
def test_evaluate_rejects_invalid_assignments(positions: list[int], error: str) -> None:
    with pytest.raises(PlanError, match=error):
        evaluate(DIGITS, linear_route(), positions)


def test_evaluate_applies_the_switch_limit() -> None:
    with pytest.raises(PlanError, match="switch s1 may run at most 2 consecutive layers, got 3"):
        evaluate(DIGITS, linear_route(), [0, 1, 1, 1], Constraints(max_layers_per_switch=2))


def test_plan_as_json() -> None:
    body = json.loads(json.dumps(plan(DIGITS, linear_route()).to_dict()))
    assert body["assignment"] == ["h1", "s1", "s1", "s1"]
    assert body["stages"][1] == {"node": "s1", "kind": "switch", "layers": [1, 2, 3], "compute_s": pytest.approx(9e-4)}
    assert math.isclose(body["latency_s"], plan(DIGITS, linear_route()).latency_s)


# ------------------------------------------------------------------ layer lists --


def test_layer_list_in_toml_and_json(tmp_path) -> None:
    toml = tmp_path / "m.toml"
    toml.write_text('[[layers]]\nkind = "dense"\nn_in = 64\nn_out = 16\n\n'
                    '[[layers]]\nkind = "elementwise"\nn_in = 16\nn_out = 16\n')
    js = tmp_path / "m.json"
    js.write_text(json.dumps({"layers": [{"kind": "embedding", "n_in": 2, "n_out": 8, "macs": 5}]}))
    assert read_layer_list(toml) == [LayerSpec("dense", 64, 16, 1024), LayerSpec("elementwise", 16, 16, 16)]
    assert read_layer_list(js) == [LayerSpec("embedding", 2, 8, 5)]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('{"layers": []}', "non-empty 'layers' array"),
        ('{"layers": [{"kind": "attention", "n_in": 1, "n_out": 1}]}', "layer 0: layer kind 'attention'"),
        ('{"layers": [{"kind": "conv", "n_in": 64, "n_out": 512}]}', "a conv layer's multiply-accumulates"),
        ('{"layers": [{"kind": "dense", "n_in": 4}]}', "layer 0: .*n_out"),
        ('{"layers": [{"kind": "dense", "n_in": 4, "n_out": 3}, {"kind": "dense", "n_in": 4, "n_out": 1}]}',
         "layer 0 has 3 outputs but layer 1 takes 4 inputs"),
        ("{", "not a valid layer list"),
        ('{"layers": [{"kind": "dense", "n_in": "64", "n_out": 3}]}', "layer 0: n_in must be an integer, not '64'"),
        ('{"layers": [7]}', "layer 0: .*each layer has kind, n_in, n_out"),
    ],
)
def test_bad_layer_lists(tmp_path, text: str, error: str) -> None:
    path = tmp_path / "m.json"
    path.write_text(text)
    with pytest.raises(ModelImportError, match=error):
        read_layer_list(path)
