"""Two disjoint paths from one edge host with two interfaces (topologies/redundant.toml)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(os.geteuid() != 0, reason="the Mininet testbed needs root"),
]

pytest.importorskip("mininet.net", reason="Mininet is not importable (scripts/bootstrap.sh links it)")

from controller.planner import plan  # noqa: E402
from controller.topology import load_topology  # noqa: E402
from dcia.targets import free_tcp_port  # noqa: E402
from mininet_topos import testbed as tb  # noqa: E402
from controller.demo_model import load_demo  # noqa: E402

REDUNDANT = load_topology(Path(__file__).resolve().parents[2] / "topologies" / "redundant.toml")
REQUESTS = 20


@pytest.fixture(scope="module")
def bed(tmp_path_factory):
    grpc = {name: f"127.0.0.1:{free_tcp_port()}" for name in REDUNDANT.switches}
    with tb.Testbed(REDUNDANT, target="embedded", run_dir=tmp_path_factory.mktemp("redundant"),
                    grpc=grpc) as testbed:
        yield testbed


def test_each_end_of_each_path_reaches_the_other(bed):
    assert bed.pingall() == 0


@pytest.mark.parametrize("path", ["primary", "backup"])
def test_inference_along_either_path(bed, path, tmp_path):
    demo = load_demo()
    model, split = demo.quantized, demo.split
    route_plan = plan(model.layers, REDUNDANT.route(path))
    bed.deploy(model, route_plan)
    model_file = model.save(tmp_path / "model.json")
    np.save(tmp_path / "inputs.npy", split.x_test[:REQUESTS])
    cloud = bed.start_cloud(model_file, path=path)
    results = bed.run_edge(model_file, tmp_path / "inputs.npy", path=path, timeout=0.5,
                           attempts=3, edge_layers=route_plan.stages[0].stop)
    cloud.stop()
    reference = model.forward_int(model.quantize_input(split.x_test[:REQUESTS]))
    assert [r.status for r in results] == ["ok"] * REQUESTS
    assert [r.logits for r in results] == reference.tolist()
