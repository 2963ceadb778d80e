"""The evaluation in the testbed (evaluation.runner): every strategy runs end to end with
answers identical to the integer reference, and the edge's CPU share takes effect.

A short run: a scenario of the evaluation network (topologies/eval.toml, node names of its
own, P4Runtime on free ports: it can share the machine with a `make run`), embedded
switches, a few requests per strategy.

Select them with ``pytest -m system``; they need root and Mininet.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(os.geteuid() != 0, reason="the Mininet testbed needs root"),
]

pytest.importorskip("mininet.net", reason="Mininet is not importable (scripts/bootstrap.sh links it)")

from rich.console import Console  # noqa: E402

from controller.demo_model import load_demo  # noqa: E402
from dcia.targets import free_tcp_ports  # noqa: E402
from evaluation import calibration as cal  # noqa: E402
from evaluation.runner import _progress, cpu_period, evaluate_scenario  # noqa: E402
from evaluation.scenario import load_scenario  # noqa: E402
from evaluation.strategies import Strategy  # noqa: E402
from mininet_topos.testbed import Shaping, Testbed  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
REQUESTS = 12


def scenario_file(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "short.toml"
    path.write_text(f'name = "short"\ntopology = "{REPO / "topologies" / "eval.toml"}"\n'
                    f'requests = {REQUESTS}\n{extra}')
    return path


def test_every_strategy_answers_every_request_as_the_integer_reference(tmp_path):
    scenario = load_scenario(scenario_file(tmp_path, "edge_cpu = 0.5\n[links.sw3-cl1]\ndelay_ms = 5\n"))
    with _progress(Console(file=io.StringIO())) as progress:
        result = evaluate_scenario(scenario, list(Strategy), REQUESTS, "embedded", tmp_path, progress)
    runs = {r.strategy: r for r in result.runs}
    assert set(runs) == {str(s) for s in Strategy}
    for run in runs.values():
        assert (run.answered, run.exact) == (REQUESTS, REQUESTS), run.strategy
    lat = {name: run.stats()["p50_ms"] for name, run in runs.items()}
    # 5 ms each way to the cloud: whatever reaches it takes 10 ms more than what does not
    for far in ("cloud-only", "dcia-cloud"):
        assert lat[far] > 10 and lat[far] > lat["dcia-network"] + 8
    # what each strategy sends: nothing (edge only), the raw input (64 elements: 122 bytes
    # a frame), 16 elements after the edge's layer (74 bytes)
    per_request = {name: run.uplink_bytes / REQUESTS for name, run in runs.items()}
    assert per_request["edge-only"] < 10
    assert 122 <= per_request["cloud-only"] < 122 + 10
    assert 74 <= per_request["dcia-network"] < 74 + 10
    assert runs["dcia-network"].cloud_bytes < 10 * REQUESTS   # the network answered
    assert runs["dcia-cloud"].cloud_bytes >= 74 * REQUESTS
    assert (tmp_path / "calibration" / "short.json").exists()
    assert result.calibration["nodes"]["sw1"]["layer_time_s"] >= 0


def test_the_edge_layer_time_grows_as_its_cpu_share_shrinks(tmp_path):
    """The compute probe in the CPU-limited edge host at two shares of the machine."""
    scenario = load_scenario(scenario_file(tmp_path, "edge_cpu = 0.5\n"))
    topology = scenario.topology()
    demo = load_demo()
    model_file = demo.quantized.save(tmp_path / "model.json")
    inputs_file = tmp_path / "inputs.npy"
    import numpy as np
    np.save(inputs_file, demo.split.x_test[:50])
    grpc = {name: f"127.0.0.1:{port}" for name, port in
            zip(topology.switches, free_tcp_ports(len(topology.switches)))}
    with Testbed(topology, target="embedded", run_dir=tmp_path / "run", grpc=grpc,
                 shaping=Shaping(edge_cpu=0.5)) as bed:
        times = {}
        for share in (0.5, 0.05):
            cpu_period(bed.host("ed1"), share, 1.0)
            times[share] = sum(cal.probe_compute(bed, "ed1", model_file, inputs_file, 0.8)["layer_s"])
    # a tenth of the share: ideally ten times the time; at least three on a busy machine
    assert times[0.05] > 3 * times[0.5], times
