"""Load balancing end to end: two cloud servers behind one switch (topologies/balanced.toml),
the requests spread over them by weight by the switch's steering selector
(``dcia testbed run --spread``), with real cloud servers answering.

Every request reaches a cloud (``--cloud-layers 1``); each cloud's share of 2,000 answers
must be within 5 points of its weight's share, nothing lost, every answer equal to the
integer reference. Select them with ``pytest -m system``; they need root and Mininet.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(os.geteuid() != 0, reason="the Mininet testbed needs root"),
]

pytest.importorskip("mininet.net", reason="Mininet is not importable (scripts/bootstrap.sh links it)")

from dcia.targets import find_bmv2  # noqa: E402
from tests.system.testbed_cli import REPO, dcia_testbed_run  # noqa: E402

REQUESTS = 2000


def spread_run(run_dir: Path, target: str, *args: str) -> tuple[int, str, dict]:
    """`dcia testbed run` on topologies/balanced.toml; its exit status, output and summary."""
    code, output, saved = dcia_testbed_run(run_dir, "--topology", "topologies/balanced.toml",
                                      "--target", target, "--cloud-layers", "1", "--requests",
                                      str(REQUESTS), *args)
    return code, output, saved.get("summary", {})


@pytest.mark.parametrize("weights, target", [
    ({"cloud-a": 1, "cloud-b": 1}, "embedded"),
    ({"cloud-a": 3, "cloud-b": 1}, "embedded"),
    ({"cloud-a": 3, "cloud-b": 1}, "bmv2"),
], ids=["1:1", "3:1", "3:1-bmv2"])
def test_each_cloud_answers_its_weights_share(tmp_path, weights, target):
    if target == "bmv2" and find_bmv2() is None:
        pytest.skip("BMv2 simple_switch_grpc is not installed here; the embedded switch runs it")
    spec = ",".join(f"{path}={w}" for path, w in weights.items())
    code, output, s = spread_run(tmp_path, target, "--spread", spec)
    assert code == 0, output
    assert s["answered"] == REQUESTS and s["lost"] == 0, output
    assert s["identical_to_reference"] == REQUESTS
    print(f"\n{target} {spec}: " + ", ".join(
        f"{name} {sp['share']:.1%} (weight {sp['expected']:.1%})" for name, sp in s["spread"].items()))
    for name, sp in s["spread"].items():
        assert sp["share"] == pytest.approx(sp["expected"], abs=0.05), (name, s["spread"])
    assert s["answers_by_cloud"].keys() == {"h2", "h3"}


def test_a_bad_spread_is_refused_before_the_network_starts(tmp_path):
    code, output, s = spread_run(tmp_path, "embedded", "--spread", "cloud-a=1,nowhere=1")
    assert code == 2 and "has no path 'nowhere'" in output and s == {}, output
    assert not list(tmp_path.glob("*.log")), "nothing was started"


def test_a_topology_that_requires_signed_deployments_is_refused_before_the_network_starts(tmp_path):
    topology = tmp_path / "signed.toml"
    (tmp_path / "ops.pub").write_text("")
    topology.write_text((REPO / "topologies" / "linear.toml").read_text()
                        + '\n[security]\ntrusted_keys = { ops = "ops.pub" }\nrequire_signed = true\n')
    code, output, saved = dcia_testbed_run(tmp_path / "run", "--topology", str(topology), "--target",
                                      "embedded", timeout=120)
    assert code == 2 and "requires signed deployments" in output and saved == {}, output
    assert not (tmp_path / "run").exists() or not list((tmp_path / "run").glob("*.log"))
