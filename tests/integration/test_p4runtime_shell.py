"""``dcia shell``: p4runtime-shell, in its own environment, against real switch processes.

Each test starts the embedded switch or BMv2 on free ports, deploys a small model with
controller.session.apply (which pushes the DCIA pipeline), then drives p4runtime-shell
through ``dcia shell --command`` (its Python API, run in .venv-p4rt-shell) or through
``python -m p4runtime_sh`` reading stdin. The code given prints ``result: <json>`` lines;
the same requests must get the same answers from both targets.

The DCIA P4Info declares no controller packet metadata, so p4runtime-shell's
``packet_out`` refuses to build one; a PacketOut message without metadata, sent on the
shell's own stream, is what a packet-out can be here: the switch injects it at its CPU
port and the program computes or counts it like any packet.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

import finsy as fy
import pytest

from controller import session
from controller.deployment import Deployment, SwitchAssignment, SwitchEndpoint
from controller.entries import DROP_NAMES, STAT_NAMES
from controller.shell import STAMP, shell_venv
from dcia.arithmetic import Activation
from dcia.artifacts import Pipeline
from dcia.layers import DenseLayer
from dcia.targets import SwitchConfig, SwitchProcess, find_bmv2, free_tcp_port
from dcia.wire import DCIA, tensor_packet

REPO = Path(__file__).resolve().parents[2]
DCIA_CMD = str(REPO / ".venv" / "bin" / "dcia")
DEVICE_ID = 2
LAYER = DenseLayer(weights=[[1, 2, 3, 4], [-1, 0, 1, 0], [2, 2, 2, 2]], bias=[0, 10, -5],
                   mult=[1 << 15] * 3, shift=[15] * 3, act=Activation.RELU)
TIMEOUT = 180

# Code run in p4runtime-shell's namespace (table_entry, counter_entry, p4info, ...).
READ_LAYERS = """
import json
names = {a.preamble.id: a.preamble.name for a in p4info.actions}
rows = sorted([[int.from_bytes(f.exact.value, "big") for f in e.msg().match],
               names[e.msg().action.action.action_id],
               {p.param_id: int.from_bytes(p.value, "big") for p in e.msg().action.action.params}]
              for e in table_entry["DciaIngress.layers"].read())
print("result:", json.dumps(rows))
"""
INSERT_LAYER = """
te = table_entry["DciaIngress.layers"](action="DciaIngress.dense_layer")
te.match["model_id"] = "9"
te.match["model_version"] = "1"
te.match["layer"] = "0"
te.action["n_in"] = "4"
te.action["n_out"] = "3"
te.action["act"] = "1"
te.action["more"] = "0"
te.insert()
"""
DELETE_LAYER = INSERT_LAYER.replace("te.insert()", "te.delete()")
READ_COUNTERS = """
import json
def counts(name):
    return sorted([c.msg().index.index, c.msg().data.packet_count, c.msg().data.byte_count]
                  for c in counter_entry[name].read())
print("result:", json.dumps({"dcia_stats": counts("DciaIngress.dcia_stats"),
                             "ipv4_drops": counts("DciaIngress.ipv4_drops")}))
"""
PACKET_OUT = """
import json, time
from p4.v1 import p4runtime_pb2
from p4runtime_sh import shell
from p4runtime_sh.utils import UserError
try:
    packet_out(payload=b"")
    refused = None
except UserError as e:
    refused = str(e)
for frame in FRAMES:
    msg = p4runtime_pb2.StreamMessageRequest()
    msg.packet.payload = bytes.fromhex(frame)
    shell.client.stream_out_q.put(msg)
def stats():
    return {c.msg().index.index: c.msg().data.packet_count
            for c in counter_entry["DciaIngress.dcia_stats"].read()}
deadline = time.monotonic() + 30
while sum(stats().values()) < len(FRAMES) and time.monotonic() < deadline:
    time.sleep(0.2)
layer_0 = [c.msg().data.packet_count for c in counter_entry["DciaIngress.layer_stats"].read()
           if c.msg().index.index == 0]
errors = shell.client.stream_in_q["unknown"].qsize()
print("result:", json.dumps({"refused": refused, "dcia_stats": stats(), "layer_0": layer_0,
                             "stream_errors": errors}))
"""


@pytest.fixture(scope="module", autouse=True)
def installed_shell():
    if not (shell_venv() / STAMP).is_file():
        pytest.fail(f"p4runtime-shell is not installed in {shell_venv()}: run `make setup`")


@pytest.fixture(params=["embedded", "bmv2"])
def switch(request, tmp_path):
    """A running switch with the DCIA pipeline and model 1 v1 (layer 0); its endpoint."""
    if request.param == "bmv2" and find_bmv2() is None:
        pytest.skip("BMv2 simple_switch_grpc is not installed here")
    config = SwitchConfig(ports={}, grpc_addr=f"127.0.0.1:{free_tcp_port()}",
                          device_id=DEVICE_ID, log_file=tmp_path / "switch.log")
    with SwitchProcess(request.param, config, stdout_path=tmp_path / "switch.out"):
        endpoint = SwitchEndpoint("s2", config.grpc_addr, device_id=DEVICE_ID)
        asyncio.run(session.apply(Deployment(1, 1, (SwitchAssignment(endpoint, {0: LAYER}),))))
        yield endpoint


@pytest.fixture
def topology(tmp_path, switch) -> Path:
    """topologies/linear.toml with s2 at the test switch's address."""
    path = tmp_path / "linear.toml"
    path.write_text((REPO / "topologies" / "linear.toml").read_text().replace(
        '"127.0.0.1:50002"', f'"{switch.address}"'))
    return path


def dcia_shell(*args: str, code: str | None = None, stdin: str = "",
               env: dict | None = None) -> subprocess.CompletedProcess:
    argv = [DCIA_CMD, "shell", *args] + (["--command", code] if code is not None else [])
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, cwd=REPO,
                          timeout=TIMEOUT, env=env)


def results(proc: subprocess.CompletedProcess) -> list:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [json.loads(line.removeprefix("result: "))
            for line in proc.stdout.splitlines() if line.startswith("result: ")]


def table_entries(endpoint: SwitchEndpoint) -> set[str]:
    async def work():
        async with session.connect(endpoint, Pipeline.default()) as sw:
            return {f"{e.table_id} {sorted(e.match.items())}" async for e in sw.read(fy.P4TableEntry())}
    return asyncio.run(work())


LAYER_ROW = [[1, 1, 0], "DciaIngress.dense_layer", {"1": 4, "2": 3, "3": 1, "4": 0}]


def test_reads_the_layer_tables_of_the_deployment_and_pushes_nothing(switch, topology):
    before = table_entries(switch)
    assert results(dcia_shell("s2", "--topology", str(topology), code=READ_LAYERS)) == [[LAYER_ROW]]
    assert table_entries(switch) == before


def test_grpc_and_device_id_override_the_topology(switch):
    proc = dcia_shell("s1", "--grpc", switch.address, "--device-id", str(DEVICE_ID),
                      code=READ_LAYERS)
    assert results(proc) == [[LAYER_ROW]]


def test_inserts_and_deletes_an_entry(switch, topology):
    before = table_entries(switch)
    results(dcia_shell("s2", "--topology", str(topology), code=INSERT_LAYER))
    added = table_entries(switch) - before
    assert added == {"layers [('layer', 0), ('model_id', 9), ('model_version', 1)]"}
    results(dcia_shell("s2", "--topology", str(topology), code=DELETE_LAYER))
    assert table_entries(switch) == before


def test_reads_the_counters(switch, topology):
    [counts] = results(dcia_shell("s2", "--topology", str(topology), code=READ_COUNTERS))
    assert counts == {"dcia_stats": [[i, 0, 0] for i in range(len(STAT_NAMES))],
                      "ipv4_drops": [[i, 0, 0] for i in range(len(DROP_NAMES))]}


def test_a_packet_out_is_computed_and_counted(switch, topology):
    frames = [tensor_packet(src_mac="08:00:00:00:01:11", dst_mac="08:00:00:00:01:00",
                            src_ip="10.0.1.1", dst_ip="10.0.2.2", model_id=1, model_version=1,
                            request_id=1, elems=[1, -2, 3, 100]),
              tensor_packet(src_mac="08:00:00:00:01:11", dst_mac="08:00:00:00:01:00",
                            src_ip="10.0.1.1", dst_ip="10.0.2.2", model_id=1, model_version=1,
                            request_id=2, elems=[1, 2])]
    frames[1][DCIA].ver = 2   # malformed: the switch counts it and does not compute
    code = f"FRAMES = {[bytes(f).hex() for f in frames]!r}\n{PACKET_OUT}"
    [out] = results(dcia_shell("s2", "--topology", str(topology), code=code))
    assert out == {"refused": "controller packet metadata 'packet_out' does not exist",
                   "dcia_stats": {str(i): int(name in ("computed", "malformed"))
                                  for i, name in enumerate(STAT_NAMES)}, "layer_0": [1],
                   "stream_errors": 0}


def test_runs_a_script_from_stdin_and_fails_when_it_raises(switch, topology):
    assert results(dcia_shell("s2", "--topology", str(topology), stdin=READ_LAYERS)) == [[LAYER_ROW]]
    proc = dcia_shell("s2", "--topology", str(topology), stdin="1 / 0\n")
    assert proc.returncode == 1 and "ZeroDivisionError" in proc.stdout


def test_the_module_itself_reads_from_stdin(switch):
    """``python -m p4runtime_sh`` as installed: IPython reading its prompt from a pipe."""
    python = shell_venv() / "bin" / "python"
    proc = subprocess.run(
        [str(python), "-m", "p4runtime_sh", "--grpc-addr", switch.address, "--device-id",
         str(DEVICE_ID), "--election-id", "0,10"],
        input="for e in table_entry['DciaIngress.layers'].read(): print('entry', e.msg().match[2].exact.value)\n\n",
        capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    assert "entry b'\\x00'" in proc.stdout


def test_config_pushes_the_pipeline_only_when_asked(switch, topology):
    results(dcia_shell("s2", "--topology", str(topology), "--config", code="pass"))
    assert table_entries(switch) == set()   # VERIFY_AND_COMMIT: a new pipeline, empty tables
    assert results(dcia_shell("s2", "--topology", str(topology), code=READ_LAYERS)) == [[]]


def test_errors_are_one_line():
    dead = f"127.0.0.1:{free_tcp_port()}"
    proc = dcia_shell("s1", "--grpc", dead, code="pass")
    assert (proc.returncode, proc.stderr) == (
        2, f"error: switch s1: no P4Runtime server at {dead} (Connection refused); "
           "is the switch running?\n")
    proc = dcia_shell("s9", code="pass")
    assert (proc.returncode, proc.stderr) == (
        2, "error: topology linear has no switch s9 (it has s1, s2, s3)\n")
    proc = dcia_shell("s1", code="pass", env={**os.environ, "P4RT_SHELL_VENV": "/nonexistent"})
    assert (proc.returncode, proc.stderr) == (
        2, "error: p4runtime-shell is not installed in /nonexistent: run `make setup`\n")
