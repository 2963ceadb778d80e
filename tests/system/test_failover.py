"""Failover with no lost request, on the redundant topology (two disjoint paths, a cloud
server at the end of each), with faults injected by `make run`'s program mid-stream.

Every request must cross every node of its path (``--cloud-layers 1``: the cloud servers
compute the last layer, ``--max-layers-per-switch 1``: s1/s3 layer 1, s2/s4 layer 2), so
that a dead cloud server, switch or link on the preferred path costs every request in
flight there. Each case: zero lost requests, every answer equal to the integer reference,
the failover time (fault to the first answer on the backup path) measured and printed,
and after the node is back, answers from it again (a restarted switch computing its layer
again). Select them with ``pytest -m system``; they need root and Mininet.
"""

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

from controller.demo_model import load_demo  # noqa: E402
from dcia.targets import find_bmv2  # noqa: E402
from tests.system.testbed_cli import dcia_testbed_run  # noqa: E402

REQUESTS, RATE = 780, 60
"""13 s of requests: the fault at 4 s, the node back at 5 s, and time after a switch's
restart (a few seconds for the embedded switch to load the program) for answers from it."""
FIRST_WAIT = 0.05
"""The edge's detection interval: an attempt without an answer for this long is retried on
the other path."""
FAILOVER_BOUND = 0.5
"""Fault to the first answer on the backup path, at most (about FIRST_WAIT plus a round
trip when the machine is idle; its two cores are shared here)."""


def run_testbed(run_dir: Path, target: str, *args: str) -> tuple[int, str, dict]:
    """`dcia testbed run` on the redundant topology; its exit status, output and results."""
    return dcia_testbed_run(run_dir, "--topology", "topologies/redundant.toml", "--target", target,
                       "--cloud-layers", "1", "--max-layers-per-switch", "1", "--requests",
                       str(REQUESTS), "--rate", str(RATE), "--timeout", str(FIRST_WAIT), *args,
                       timeout=240)


@pytest.fixture(scope="module")
def reference():
    demo = load_demo()
    x = demo.split.x_test[np.arange(REQUESTS) % len(demo.split.x_test)]
    return demo.quantized.forward_int(demo.quantized.quantize_input(x)).tolist()


@pytest.mark.parametrize("fault, target", [
    ("h2@4s-5s", "embedded"),
    ("s1@4s-5s", "embedded"),
    ("link:s1-s2@4s-5s", "embedded"),
    ("s1@4s-5s", "bmv2"),
], ids=["cloud-server", "switch", "link", "switch-bmv2"])
def test_a_fault_on_the_preferred_path_loses_no_request(tmp_path, reference, fault, target):
    if target == "bmv2" and find_bmv2() is None:
        pytest.skip("BMv2 simple_switch_grpc is not installed here; the embedded switch runs it")
    code, output, saved = run_testbed(tmp_path, target, "--fail", fault)
    assert code == 0, output
    s = saved["summary"]
    assert s["lost"] == 0 and s["answered"] == s["requests"] == REQUESTS, output
    assert s["lost_nodes"] == {}, "a fault on purpose is not a lost node"
    assert [r["logits"] for r in sorted(saved["requests"], key=lambda r: r["index"])] == reference
    assert s["identical_to_reference"] == REQUESTS
    (report,) = s["faults"]
    print(f"\n{target} {fault}: failover {report['failover_s'] * 1e3:.1f} ms (first wait "
          f"{FIRST_WAIT * 1e3:.0f} ms), back {report['restore_took_s']:.2f} s after the "
          f"restore began, recovery {report['recovery_s'] * 1e3:.1f} ms; answers "
          f"{s['answers_by_cloud']}, retried {s['retried']}, redirected {s['redirected']}")
    assert report["in_use"] and report["cut_paths"] == ["primary"]
    assert report["failover_s"] < FAILOVER_BOUND
    assert s["retried"] > 0 and s["redirected"] > 0
    assert s["answers_by_cloud"]["h3"] == s["redirected"] > 0
    assert report["recovery_s"] is not None, "answers from the node again once it is back"
    back = saved["started_at"] + report["restored_at_s"]
    assert any(r["answered_by"] == "10.0.2.2" for r in saved["requests"] if r["ended_at"] > back)
    if fault.startswith("s1"):
        assert s["switches"]["s1"]["layers"].get("1", 0) > 0, "the restarted s1 has its layer back"
    if fault.startswith("h2"):
        assert s["clouds"]["h2"].get("restarted") and s["clouds"]["h2"]["requests"] > 0


def test_a_fault_on_the_backup_path_costs_nothing(tmp_path, reference):
    """s3 carries no traffic: nothing to fail over, nothing redirected, not a lost node."""
    code, output, saved = run_testbed(tmp_path, "embedded", "--fail", "s3@1s",
                                      "--requests", "200")
    assert code == 0, output
    s = saved["summary"]
    assert s["lost"] == 0 and s["redirected"] == 0 and s["lost_nodes"] == {}
    (report,) = s["faults"]
    assert not report["in_use"] and report["failover_s"] is None


@pytest.mark.parametrize("args, message", [
    (["--fail", "h9@1s"], "has no node h9"),
    (["--fail", "h2@30s"], "the run lasts about 13 s"),
    (["--fail", "link:s1-s3@1s"], "has no link s1-s3"),
    (["--fail", "h1@1s"], "h1 is the edge host"),
], ids=["unknown-node", "after-the-run", "unknown-link", "edge"])
def test_a_bad_fault_is_refused_before_the_network_starts(tmp_path, args, message):
    code, output, saved = run_testbed(tmp_path, "embedded", *args)
    assert code == 2 and message in output and "error:" in output, output
    assert saved == {} and not list(tmp_path.glob("*.log")), "nothing was started"
