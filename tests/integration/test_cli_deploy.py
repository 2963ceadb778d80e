"""`dcia deploy`, `dcia status`, `dcia undeploy` against running switches, as a user runs them."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
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
    """`dcia ARGS` with its output piped, as a script reads it (pytest sets COLUMNS=80)."""
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    return subprocess.run([sys.executable, "-m", "controller.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=300, env=env)


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


def test_undeploying_a_model_that_is_not_deployed_is_an_error(topology):
    deployed = dcia("deploy", "--topology", topology, "--model", "models/digits.onnx",
                    "--calibration", "digits")
    assert deployed.returncode == 0, deployed.stderr
    out = dcia("undeploy", "--topology", topology, "--model-id", 9, "--version", 3)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "error: model 9 v3 is not deployed on any switch of linear; nothing was removed "
        "(`dcia status` shows what is)"]
    assert re.search(r"1 v1: [\d, ]+", dcia("status", "--topology", topology).stdout)


def test_status_with_every_switch_dead_fails_in_one_line(tmp_path):
    text = open(LINEAR).read()
    for i in (1, 2, 3):
        text = text.replace(f'"127.0.0.1:5000{i}"', f'"127.0.0.1:{free_tcp_port()}"')
    path = tmp_path / "dead.toml"
    path.write_text(text)
    out = dcia("status", "--topology", path)
    assert out.returncode == 2
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("error: 3 of 3 switches could not be read: switch s1: no P4Runtime")
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("args", [("--model-id", "70000"), ("--model-id", "-1"),
                                  ("--version", "70000"), ("--version", "x")])
def test_ids_that_do_not_fit_the_header_are_refused_before_anything_is_read(args, tmp_path):
    """The header's model id and version are 16-bit: argparse refuses the rest (exit 2)."""
    out = dcia("deploy", "--topology", tmp_path / "never-read.toml", "--model", "none.onnx", *args)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert re.search(r"error: argument --(model-id|version): .*(out of range|not an integer)",
                     out.stderr)


def test_a_wrong_device_id_is_one_line_without_a_traceback(topology):
    """BMv2 takes the arbitration for any device id and refuses the pipeline push; the
    embedded switch refuses the arbitration. Both: one line naming device_id, nothing written."""
    path = topology.parent / "wrong-device.toml"
    path.write_text(topology.read_text().replace("device_id = 1", "device_id = 7", 1))
    out = dcia("deploy", "--topology", path, "--model", "models/digits.onnx",
               "--calibration", "digits")
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("error: switch s1: ") and "is device_id 7 in the topology this switch's?" in line
    untouched = dcia("status", "--topology", topology)
    assert untouched.stderr.count("has no P4 program") == 3, untouched.stderr


def test_routes_are_installed_on_every_switch(topology):
    out = dcia("routes", "--topology", topology)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == "IPv4 routes installed: s1: 2, s2: 2, s3: 2".split()
    again = dcia("routes", "--topology", topology)   # replaces what is there
    assert again.returncode == 0 and again.stdout == out.stdout
