"""The evaluation with the convolutional model (evaluation.conv_model) and a loaded cloud,
in the testbed: every strategy's answers identical to the integer reference, the
convolutions never on a switch, and the cloud's CPU limit taking effect.

A short run on the evaluation network (topologies/eval.toml), embedded switches, a few
requests per strategy; ``pytest -m system``, root and Mininet.
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

from evaluation.runner import _progress, evaluate_scenario  # noqa: E402
from evaluation.scenario import load_scenario  # noqa: E402
from evaluation.strategies import Strategy  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
REQUESTS = 10


def test_the_conv_model_on_a_loaded_cloud_answers_as_the_integer_reference(tmp_path):
    path = tmp_path / "conv.toml"
    path.write_text(f'name = "short-conv"\ntopology = "{REPO / "topologies" / "eval.toml"}"\n'
                    f'requests = {REQUESTS}\nmodel = "conv"\ncloud_cpu = 0.05\n')
    scenario = load_scenario(path)
    with _progress(Console(file=io.StringIO())) as progress:
        result = evaluate_scenario(scenario, list(Strategy), REQUESTS, "embedded", tmp_path, progress)
    runs = {r.strategy: r for r in result.runs}
    assert set(runs) == {str(s) for s in Strategy}
    for run in runs.values():
        assert (run.answered, run.exact) == (REQUESTS, REQUESTS), run.strategy
        placement = [stage for stage in run.plan["stages"] if stage["kind"] == "switch"]
        assert all(min(stage["layers"]) >= 3 for stage in placement if stage["layers"]), run.plan
    # the convolutions run on the edge except in cloud-only; the raw input is 64 elements
    # (122 bytes a frame), the edge's output after three layers 16 (74 bytes)
    assert 122 <= runs["cloud-only"].uplink_bytes / REQUESTS < 132
    assert 74 <= runs["dcia-network"].uplink_bytes / REQUESTS < 84
    # the cloud at 5 %: its compute probe times the model at several times the edge's
    nodes = result.calibration["nodes"]
    raw = result.calibration["raw"]
    assert sum(raw["compute_cl1"]["layer_s"]) > 3 * sum(raw["compute_ed1"]["layer_s"]), nodes
