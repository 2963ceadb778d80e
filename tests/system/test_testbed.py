"""The testbed end to end: Mininet, three P4 switches, the edge agent, the cloud.

The linear topology (h1 - s1 - s2 - s3 - h2) runs the demo model split one layer per
node: h1 layer 0, s1 layer 1, s2 layer 2, s3 layer 3, which also answers the edge; the
cloud only finishes what the network did not. The
tests check the answers against the integer reference, each switch's counters against
the plan, that a switch losing its state costs no request, and that stopping leaves
nothing behind (test_teardown.py: also after a failed start, Ctrl-C and SIGTERM).

Each test runs on embedded switches, and again on BMv2 where it is installed. Select them
with ``pytest -m system``; they need root and Mininet.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(os.geteuid() != 0, reason="the Mininet testbed needs root"),
]

pytest.importorskip("mininet.net", reason="Mininet is not importable (scripts/bootstrap.sh links it)")

from controller.planner import Constraints, plan  # noqa: E402
from dcia.targets import find_bmv2  # noqa: E402
from mininet_topos import testbed as tb  # noqa: E402
from controller.demo_model import load_demo  # noqa: E402

SAMPLE = 200
AFTER_LOSS = 60


@pytest.fixture(scope="module")
def demo(tmp_path_factory, linear):
    demo = load_demo()
    model, split = demo.quantized, demo.split
    spread = plan(model.layers, linear.route(), Constraints(max_layers_per_switch=1))
    run_dir = tmp_path_factory.mktemp("testbed")
    model_file = model.save(run_dir / "model.json")
    inputs_file = run_dir / "inputs.npy"
    np.save(inputs_file, split.x_test[:SAMPLE])
    return dict(model=model, plan=spread, x=split.x_test[:SAMPLE], run_dir=run_dir,
                model_file=model_file, inputs_file=inputs_file)


@pytest.fixture(scope="module", params=["embedded", "bmv2"])
def bed(request, demo, linear, free_ports):
    if request.param == "bmv2" and find_bmv2() is None:
        pytest.skip("BMv2 simple_switch_grpc is not installed here (PATH, $SIMPLE_SWITCH_GRPC, "
                    "/opt/p4/bin); the embedded switch runs the same tests")
    testbed = tb.Testbed(linear, target=request.param, run_dir=demo["run_dir"] / request.param,
                         grpc=free_ports())
    with testbed:
        testbed.deploy(demo["model"], demo["plan"])
        yield testbed


def run_requests(bed, demo, n):
    cloud = bed.start_cloud(demo["model_file"])
    before = bed.counters()
    results = bed.run_edge(demo["model_file"], demo["inputs_file"], requests=n,
                           edge_layers=demo["plan"].stages[0].stop, window=8, timeout=3.0)
    after = bed.counters()
    return results, {k: after[k] - before[k] for k in after}, cloud.stop()


@pytest.fixture(scope="module")
def first_run(bed, demo):
    return run_requests(bed, demo, SAMPLE)


def test_the_plan_gives_each_switch_one_middle_layer(demo):
    assert demo["plan"].assignment == ("h1", "s1", "s2", "s3")


def test_pingall_crosses_the_p4_switches(bed):
    assert bed.pingall() == 0


def test_in_network_answers_equal_the_integer_reference(first_run, demo):
    results, _, cloud = first_run
    model = demo["model"]
    reference = model.forward_int(model.quantize_input(demo["x"]))
    assert len(results) == SAMPLE
    assert [r.status for r in results] == ["ok"] * SAMPLE
    assert [r.logits for r in results] == reference.tolist()
    assert [r.predicted for r in results] == reference.argmax(axis=1).tolist()
    assert {r.net_layers for r in results} == {3}, "s1, s2 and s3 each compute one layer"
    assert cloud["requests"] == 0, "s3 computes the last layer and answers the edge itself"


def test_each_switch_computed_the_layers_the_plan_gave_it(first_run):
    results, counters, _ = first_run
    sent = sum(r.attempts for r in results)  # a retry crosses the switches again
    for switch, layer in (("s1", 1), ("s2", 2), ("s3", 3)):
        assert counters[switch].layers == {layer: sent}, switch
        assert counters[switch].stats["computed"] == sent
        assert counters[switch].stats["malformed"] == 0


@pytest.mark.parametrize("lost, net_layers", [("s2", 1), ("s3", 2)])
def test_every_request_is_answered_correctly_when_a_switch_loses_its_state(bed, demo, first_run,
                                                                           lost, net_layers):
    """s2: s1 computes layer 1, the cloud layers 2 and 3 (s3 holds only layer 3);
    s3, the switch that answers: the cloud computes layer 3 and answers instead."""
    model = demo["model"]
    bed.undeploy(model, lost)
    try:
        results, counters, cloud = run_requests(bed, demo, AFTER_LOSS)
    finally:
        bed.deploy(model, demo["plan"])
    reference = model.forward_int(model.quantize_input(demo["x"][:AFTER_LOSS]))
    assert [r.status for r in results] == ["ok"] * AFTER_LOSS
    assert [r.logits for r in results] == reference.tolist()
    assert {r.net_layers for r in results} == {net_layers}
    sent = sum(r.attempts for r in results)
    assert counters[lost].layers == {} and counters[lost].stats["pass-through"] == sent
    assert counters["s1"].layers == {1: sent}
    assert cloud["requests"] == AFTER_LOSS
    assert cloud["arrivals"] == {str(1 + net_layers): AFTER_LOSS}
    assert cloud["layers_computed"] == (3 - net_layers) * AFTER_LOSS


def test_stopping_leaves_no_interface_or_process(bed, linear):
    owned = bed.owned_processes()
    assert len(owned) >= 5, "host shells and switch processes are recorded"
    bed.stop()
    assert tb.leftovers(linear, owned) == []
