"""Nothing is left behind, also when the testbed fails to start or `make run` is interrupted.

Select them with ``pytest -m system``; they need root and Mininet.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(os.geteuid() != 0, reason="the Mininet testbed needs root"),
]

pytest.importorskip("mininet.net", reason="Mininet is not importable (scripts/bootstrap.sh links it)")

from mininet_topos import testbed as tb  # noqa: E402
from mininet_topos.p4switch import P4Switch  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def test_a_failed_start_leaves_nothing_behind(monkeypatch, tmp_path, linear, free_ports):
    start = P4Switch.start

    def failing_start(self, controllers):
        if self.name == "s3":
            raise tb.TestbedError("s3 refuses to start (injected by the test)")
        start(self, controllers)

    monkeypatch.setattr(P4Switch, "start", failing_start)
    owned = []
    stop = tb.Testbed.stop

    def recording_stop(self):
        owned.extend(self.owned_processes())
        stop(self)

    monkeypatch.setattr(tb.Testbed, "stop", recording_stop)
    with pytest.raises(tb.TestbedError, match="injected"):
        tb.Testbed(linear, target="embedded", run_dir=tmp_path, grpc=free_ports()).start()
    assert len(owned) >= 6, "s1, s2 and the host and switch shells had started"
    assert tb.leftovers(linear, owned) == []


def start_make_run(run_dir: Path) -> tuple[subprocess.Popen, list[str]]:
    """``dcia testbed run`` in a subprocess, read until the model is deployed (at most 2 min)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "controller.cli", "testbed", "run", "--target", "embedded",
         "--free-ports", "--run-dir", str(run_dir)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = []
    deadline = time.monotonic() + 120
    for line in proc.stdout:
        output.append(line)
        if "model deployed" in line or time.monotonic() > deadline:
            break
    return proc, output


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)],
                         ids=["ctrl-c", "sigterm"])
def test_a_signal_during_make_run_stops_everything(tmp_path, linear, signum, code):
    proc, output = start_make_run(tmp_path)
    try:
        owned = tb.Testbed(linear).owned_processes()
        proc.send_signal(signum)  # while it starts the cloud and the edge
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    output.append(rest)
    text = "".join(output)
    assert "model deployed" in text, text
    assert "interrupted" in text and proc.returncode == code, text
    assert len(owned) >= 5
    assert tb.leftovers(linear, owned) == []


def _processes_with(fragment: str) -> list[int]:
    """Processes whose command line contains ``fragment``."""
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if fragment in cmdline:
            found.append(int(entry))
    return found


def test_a_sigkilled_make_run_leaves_nothing_behind(tmp_path, linear):
    """No finally runs in a SIGKILLed process: its children die with it (parent-death
    signal) and a watchdog removes the rest (interfaces, Mininet's shells, the state file)."""
    run_dir = tmp_path / "run"
    proc, output = start_make_run(run_dir)
    try:
        deadline = time.monotonic() + 30
        owned = []
        while time.monotonic() < deadline:
            # the testbed records a program just after starting it: wait for the record
            cloud = _processes_with("hosts.cloud_server")
            owned = tb.Testbed(linear).owned_processes()
            if cloud and set(cloud) <= {pid for pid, _ in owned}:
                break
            time.sleep(0.05)
        programs = {"switch": _processes_with(f"--log-file {run_dir}/"),
                    "cloud": _processes_with(f"--stats {run_dir}/")}
        proc.kill()
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "model deployed" in "".join(output), "".join(output)
    assert len(programs["switch"]) == 3 and len(programs["cloud"]) == 1, programs
    assert len(owned) >= 9, "host and switch shells, switch processes, the cloud server"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        left = tb.leftovers(linear, owned) + [
            f"process {pid}" for pid in _processes_with(f"{run_dir}/")]
        if not left and not tb.Testbed(linear).state_file.exists():
            break
        time.sleep(0.2)
    assert left == []
    assert not tb.Testbed(linear).state_file.exists()
