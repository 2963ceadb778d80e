"""The capability record: one definition of what a node can compute, how fast, and what it holds."""

from __future__ import annotations

import json

import pytest

from dcia.arithmetic import Activation
from dcia.capability import Capability, LoadedModel, NodeKind
from dcia.errors import CapabilityError
from dcia.layers import DenseLayer, ElementwiseLayer, EmbeddingLayer
from dcia.wire import MAX_NET_ELEMS, MAX_PASSES


def dense(n_in: int, n_out: int) -> DenseLayer:
    return DenseLayer([[1] * n_in] * n_out, [0] * n_out, [1] * n_out, [0] * n_out, Activation.IDENTITY)


ELEMENTWISE = ElementwiseLayer([1] * 8, [0] * 8, 1, 0)
EMBEDDING = EmbeddingLayer({7: [1] * 16}, 16)


def switch(**fields) -> Capability:
    return Capability.nominal("s2", "switch", **fields)


@pytest.mark.parametrize(
    "record",
    [
        switch(load=0.25, models=[{"model_id": 1, "version": 3, "layers": [2, 1]}], delay_s=4e-4),
        Capability.from_dict({"name": "h1", "kind": "edge", "macs_per_s": 2e5, "accelerator": "npu"}),
        Capability.from_dict({"name": "h2", "kind": "cloud", "accelerator": None, "max_elems": None,
                              "models": [{"model_id": 1, "version": 3}]}),
        switch(accelerator=None, operations=["dense"], accelerator_available=False),
    ],
)
def test_round_trip_through_dict_and_json(record: Capability) -> None:
    assert Capability.from_dict(record.to_dict()) == record
    assert Capability.from_dict(json.loads(json.dumps(record.to_dict()))) == record


def test_a_switch_advertises_the_limits_of_the_dcia_program() -> None:
    s = switch()
    assert s.kind is NodeKind.SWITCH
    assert (s.max_elems, s.layers_per_pass) == (MAX_NET_ELEMS, MAX_PASSES) == (16, 8)
    assert s.operations == {"dense", "elementwise", "embedding", "embedding_bag", "fusion"}
    assert s.macs_per_s is None and s.accelerator == "p4-pipeline"


def test_edge_and_cloud_run_any_layer() -> None:
    for kind in ("edge", "cloud"):
        node = Capability.from_dict({"name": "n", "kind": kind})
        assert node.operations == {"any"} and node.max_elems is None
        assert all(node.can_run(layer) is None for layer in (dense(1000, 3), ELEMENTWISE, EMBEDDING))


def test_can_run_within_limits() -> None:
    assert switch().can_run(dense(16, 16)) is None
    assert switch().can_run(EMBEDDING) is None
    assert switch().can_run(ELEMENTWISE) is None


@pytest.mark.parametrize(
    ("record", "layer", "reason"),
    [
        (switch(), dense(64, 10), "has 64 inputs but switch s2 supports at most 16"),
        (switch(), dense(16, 64), "has 64 outputs but switch s2 supports at most 16"),
        (switch(operations=["dense"]), EMBEDDING, "is an embedding layer but switch s2 runs only dense"),
        (switch(operations=[]), ELEMENTWISE, "is an elementwise layer but switch s2 runs no layers"),
        (switch(accelerator_available=False), dense(4, 4),
         "needs the p4-pipeline of switch s2, which is unavailable"),
        (Capability.from_dict({"name": "h1", "kind": "edge", "operations": ["dense"]}), ELEMENTWISE,
         "is an elementwise layer but edge h1 runs only dense"),
    ],
)
def test_can_run_says_why_not(record: Capability, layer, reason: str) -> None:
    assert record.can_run(layer) == reason


def test_layer_time_follows_macs_fixed_cost_and_load() -> None:
    edge = Capability.from_dict({"name": "h1", "kind": "edge", "macs_per_s": 1e6, "layer_time_s": 1e-4})
    assert edge.layer_seconds(dense(10, 10)) == pytest.approx(1e-4 + 100 / 1e6)
    busy = Capability.from_dict({**edge.to_dict(), "load": 0.5})
    assert busy.layer_seconds(dense(10, 10)) == pytest.approx(1.5 * edge.layer_seconds(dense(10, 10)))
    pipeline = switch(layer_time_s=3e-4)
    assert pipeline.layer_seconds(dense(16, 16)) == pipeline.layer_seconds(dense(1, 1)) == 3e-4


def test_which_model_layers_a_node_holds() -> None:
    s = switch(models=[{"model_id": 1, "version": 2, "layers": [3, 4]}])
    assert s.holds(1, 2, 3) and s.holds(1, 2, 4)
    assert not s.holds(1, 2, 5) and not s.holds(1, 1, 3) and not s.holds(2, 2, 3)
    cloud = Capability.nominal("h2", NodeKind.CLOUD, models=[{"model_id": 1, "version": 2}])
    assert cloud.holds(1, 2, 99) and cloud.models == (LoadedModel(1, 2),)


def test_nominal_records_start_from_the_kind() -> None:
    assert Capability.nominal("s1", "switch") == Capability.from_dict({"name": "s1", "kind": "switch"})
    assert Capability.nominal("h2", "cloud").can_run(dense(64, 64)) is None
    assert Capability("h2", NodeKind.CLOUD).can_run(dense(1, 1)) == "is a dense layer but cloud h2 runs no layers"


def test_cats_metrics_levels() -> None:
    idle = switch(layer_time_s=1e-3, delay_s=0.0)
    metrics = {(m.level, m.type): m for m in idle.metrics()}
    assert {level for level, _ in metrics} == {0, 1, 2}
    assert metrics[0, "compute_layer_time"].unit == "s"
    assert metrics[0, "delay_raw"].source == "measurement"
    assert metrics[1, "compute_norm"].value == 10
    assert metrics[1, "delay_norm"].value == 5
    assert metrics[2, "score"].value == 8
    loaded = {(m.level, m.type): m.value for m in switch(layer_time_s=1e-3, load=1.0).metrics()}
    assert loaded[1, "compute_norm"] == 0 and loaded[2, "score"] < metrics[2, "score"].value
    down = {(m.level, m.type): m.value for m in switch(accelerator_available=False).metrics()}
    assert down[2, "score"] == 0


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"load": 1.5}, "load 1.5 is outside 0..1"),
        ({"load": -0.1}, "load = -0.1 must be at least 0"),
        ({"load": "high"}, "load must be a number, not 'high'"),
        ({"layer_time_s": None}, "layer_time_s must be a number, not None"),
        ({"max_elems": 16.5}, "max_elems must be an integer, not 16.5"),
        ({"operations": "dense"}, "operations must be a list"),
        ({"accelerator_available": "no"}, "accelerator_available must be true or false"),
        ({"operations": ["any"]}, "switch s2 cannot run 'any' layer"),
        ({"operations": ["conv"]}, r"unknown operations \['conv'\]"),
        ({"max_elems": 0}, "max_elems = 0 must be at least 1"),
        ({"macs_per_s": 0}, "macs_per_s = 0 must be greater than 0"),
        ({"spead": 3}, r"unknown capability fields \['spead'\]"),
        ({"models": [{"model": 1}]}, "a loaded model has model_id, version"),
    ],
)
def test_invalid_records_are_refused(fields: dict, error: str) -> None:
    with pytest.raises(CapabilityError, match=error):
        switch(**fields)


def test_name_and_a_known_kind_are_required() -> None:
    with pytest.raises(CapabilityError, match="needs a name and a kind"):
        Capability.from_dict({"name": "x"})
    with pytest.raises(CapabilityError, match="node r1: kind 'router' is not one of edge, switch, cloud"):
        Capability.nominal("r1", "router")
    with pytest.raises(CapabilityError, match="node r1: kind 'router' is not one of edge, switch, cloud"):
        Capability("r1", "router")
