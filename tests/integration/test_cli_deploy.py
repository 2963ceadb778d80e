"""`dcia deploy`, `dcia status`, `dcia undeploy` against running switches, as a user runs them."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from dcia.targets import SwitchConfig, SwitchProcess, find_bmv2, free_tcp_port

LINEAR = "topologies/linear.toml"


@pytest.fixture(params=["embedded", "bmv2"])
def topology(request, tmp_path):
    """topologies/linear.toml with its three switches running on free ports."""
    if request.param == "bmv2" and find_bmv2() is None:
        pytest.skip("BMv2 simple_switch_grpc is not installed here")
    text = open(LINEAR).read()
    procs = []
    try:
        for i in (1, 2, 3):
            addr = f"127.0.0.1:{free_tcp_port()}"
            text = text.replace(f'"127.0.0.1:5000{i}"', f'"{addr}"')
            procs.append(SwitchProcess(request.param, SwitchConfig(ports={}, grpc_addr=addr, device_id=i),
                                       stdout_path=tmp_path / f"s{i}.out").start())
        path = tmp_path / "linear.toml"
        path.write_text(text)
        yield path
    finally:
        for p in procs:
            p.stop()


def dcia(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "controller.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=300)


def test_deploy_status_undeploy_the_demo_model(topology):
    out = dcia("deploy", "--topology", topology, "--model", "models/digits.onnx",
               "--calibration", "digits")
    assert out.returncode == 0, out.stderr
    assert "Deployed" in out.stdout
    status = dcia("status", "--topology", topology)
    assert status.returncode == 0, status.stderr
    held = re.findall(r"1 v1: ([\d, ]+)", status.stdout)
    assert held, status.stdout                    # some switch holds layers of model 1 v1
    undeploy = dcia("undeploy", "--topology", topology, "--model-id", 1, "--version", 1)
    assert undeploy.returncode == 0, undeploy.stderr
    assert "1 v1" not in dcia("status", "--topology", topology).stdout


def test_a_float_model_without_calibration_is_refused_in_one_line(topology):
    out = dcia("deploy", "--topology", topology, "--model", "models/digits.onnx")
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "error: models/digits.onnx is a float model: give --calibration SAMPLES.npy (or "
        "'digits' for the demo model) to quantize it"]


def test_an_unreachable_switch_is_reported_in_one_line(tmp_path):
    text = open(LINEAR).read().replace('"127.0.0.1:50001"', f'"127.0.0.1:{free_tcp_port()}"')
    path = tmp_path / "dead.toml"
    path.write_text(text)
    out = dcia("deploy", "--topology", path, "--model", "models/digits.onnx", "--calibration", "digits")
    assert out.returncode == 2
    assert re.fullmatch(r"error: switch s1: no P4Runtime server at 127\.0\.0\.1:\d+ .*\n", out.stderr)
