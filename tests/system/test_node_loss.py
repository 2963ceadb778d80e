"""A node lost during a run: the run reports what it has, marks the node lost and fails.

There is no failover yet: the requests on a dead switch's path are lost. They must end in
a bounded time and be counted (``timeout``, or ``abandoned`` once the edge has given up on
the path), the answers already received must be kept, and ``make run`` must print its
summary, write results.json with the node marked lost and exit with status 1.

Select them with ``pytest -m system``; they need root and Mininet.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

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

REPO = Path(__file__).resolve().parents[2]
TEST_IMAGES = 360
"""The digits split's held-out images: what `make run` sends without --requests."""


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.02)
    raise AssertionError(f"no {what} within {timeout} s")


def pids_of(fragment: str) -> list[int]:
    """Processes whose command line contains ``fragment``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if fragment in cmdline:
                found.append(int(entry))
    return found


def switch_pid(name: str, run_dir: Path) -> int:
    """The process of switch ``name`` of the run that logs to ``run_dir``."""
    pids = pids_of(f"--log-file {run_dir / name}.log")
    assert len(pids) == 1, pids
    return pids[0]


# --------------------------------------------------------------- `make run` --

def make_run(run_dir: Path, kill: str, when: str, *extra: str) -> tuple[int, str, float]:
    """Run `make run`'s program, SIGKILL switch ``kill`` once ``when`` is seen (``deployed``:
    the model is deployed; ``edge``: the edge agent runs); returns the exit status, the
    output and the seconds from the kill to the exit."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "controller.cli", "testbed", "run", "--target", "embedded", "--free-ports",
         "--run-dir", str(run_dir), "--timeout", "0.2", *extra],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output = []
        deadline = time.monotonic() + 180
        for line in proc.stdout:
            output.append(line)
            if "model deployed" in line or time.monotonic() > deadline:
                break
        assert "model deployed" in "".join(output), "".join(output)
        if when == "edge":
            wait_for(lambda: pids_of(f"--inputs {run_dir / 'inputs.npy'}"), 60, "edge agent")
        os.kill(switch_pid(kill, run_dir), signal.SIGKILL)
        killed = time.monotonic()
        rest, _ = proc.communicate(timeout=120)
        return proc.returncode, "".join(output) + rest, time.monotonic() - killed
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_make_run_keeps_its_answers_and_fails_when_a_switch_on_the_path_dies(tmp_path):
    """s1 computes layers 1..3 and answers: after it dies no request gets through."""
    code, output, seconds = make_run(tmp_path, "s1", "edge")
    assert code == 1, output
    assert "s1" in output and "LOST" in output, output
    assert "results saved" in output, output
    saved = json.loads((tmp_path / "results.json").read_text())
    s = saved["summary"]
    assert s["switches"]["s1"]["lost"] is True and s["switches"]["s1"]["error"]
    assert s["lost_nodes"] == {"s1": s["switches"]["s1"]["error"]}
    assert "stats" in s["switches"]["s2"] and not s["switches"]["s2"].get("lost")
    assert s["requests"] == TEST_IMAGES == len(saved["requests"])
    assert sorted(r["index"] for r in saved["requests"]) == list(range(TEST_IMAGES))
    statuses = [r["status"] for r in saved["requests"]]
    assert set(statuses) <= {"ok", "timeout", "abandoned"}
    assert s["answered"] == statuses.count("ok") < TEST_IMAGES
    assert s["unanswered"] == {k: statuses.count(k) for k in ("timeout", "abandoned") if k in statuses}
    # a request waits 0.2 + 0.4 + 0.8 + 1.6 + 3.2 s at most, the edge gives up after a
    # window of silent requests; the rest is stopping the network
    assert seconds < 60, seconds


def test_make_run_finishes_and_fails_when_a_switch_it_does_not_use_dies(tmp_path):
    """s3 is on the path but s1 answers every request: all are answered, s3 is still lost."""
    code, output, _ = make_run(tmp_path, "s3", "deployed", "--requests", "100")
    assert code == 1, output
    s = json.loads((tmp_path / "results.json").read_text())["summary"]
    assert s["answered"] == s["requests"] == 100
    assert s["unanswered"] == {}
    assert set(s["lost_nodes"]) == {"s3"}
    assert s["switches"]["s3"]["lost"] is True
    assert s["switches"]["s1"]["layers"] == {"1": 100, "2": 100, "3": 100}


# ---------------------------------------------------------------- Testbed --

@pytest.fixture(params=["embedded", "bmv2"])
def bed(request, tmp_path, linear, free_ports):
    if request.param == "bmv2" and find_bmv2() is None:
        pytest.skip("BMv2 simple_switch_grpc is not installed here")
    with tb.Testbed(linear, target=request.param, run_dir=tmp_path, grpc=free_ports()) as testbed:
        yield testbed


def test_the_edge_counts_every_request_after_a_switch_dies_mid_run(bed, linear, tmp_path):
    demo = load_demo()
    model, split = demo.quantized, demo.split
    spread = plan(model.layers, linear.route(), Constraints(max_layers_per_switch=1))
    bed.deploy(model, spread)
    model_file = model.save(tmp_path / "model.json")
    np.save(tmp_path / "inputs.npy", split.x_test[:200])
    cloud = bed.start_cloud(model_file)
    s2 = bed.host("s2")
    received = []

    def kill_s2_after_20(result):
        received.append(result)
        if len(received) == 20:
            os.kill(s2.process.proc.pid, signal.SIGKILL)

    started = time.monotonic()
    results = bed.run_edge(model_file, tmp_path / "inputs.npy", edge_layers=1, window=4,
                           timeout=0.2, attempts=3, on_result=kill_s2_after_20)
    assert time.monotonic() - started < 30
    assert [r.index for r in results] == list(range(200))
    assert all(r.ok for r in received[:20]), "answers before the loss are kept"
    statuses = [r.status for r in results]
    assert set(statuses[20:]) <= {"ok", "timeout", "abandoned"}  # a few were on their way back
    assert 20 <= statuses.count("ok") < 200
    # the requests in flight when the edge has seen a window of them go unanswered
    assert 4 <= statuses.count("timeout") <= 8, "then the edge gives up on the path"
    assert statuses.count("abandoned") > 0
    lost = bed.lost_nodes()
    assert list(lost) == ["s2"] and "exited" in lost["s2"]
    counters = bed.counters()
    assert counters["s2"].lost and not counters["s1"].lost and not counters["s3"].lost
    assert cloud.stop()["requests"] == 0
