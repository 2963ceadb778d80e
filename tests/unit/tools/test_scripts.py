"""tools/dcia_send.py and tools/dcia_sniff.py, run as a person runs them."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from dcia.model import FloatDense, FloatModel, QuantizedModel
from dcia.layers import DenseLayer
from dcia.wire import DCIA, Flag, tensor_packet
from hosts.cloud_server import CloudServer, serve

TOOLS = Path(__file__).resolve().parents[3] / "tools"


def tool(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOLS / name), *args], capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize("name", ["dcia_send.py", "dcia_sniff.py"])
def test_each_tool_explains_itself(name):
    result = tool(name, "--help")
    assert result.returncode == 0 and "usage:" in result.stdout


def test_the_sniffer_decodes_a_capture_and_flags_malformed_packets(tmp_path):
    frame = dict(src_mac="08:00:00:00:01:11", dst_mac="08:00:00:00:01:00", src_ip="10.0.1.1",
                 dst_ip="10.0.2.2", model_id=1, model_version=1)
    carrier = Ether() / IP(src="10.0.1.1", dst="10.0.2.2") / UDP(sport=56346, dport=56346)
    wrpcap(str(tmp_path / "c.pcap"), [
        tensor_packet(**frame, request_id=5, elems=list(range(16)), next_layer=1),
        carrier / DCIA(ver=2, elems=[1, 2]),
        carrier / DCIA(n_elems=5, elems=[1, 2]),
        carrier / DCIA(flags=Flag.MALFORMED, elems=[1]),
        Ether() / IP() / UDP(dport=53),
    ])
    result = tool("dcia_sniff.py", "-r", str(tmp_path / "c.pcap"), "--json")
    seen = [json.loads(line) for line in result.stdout.splitlines()]
    assert [s["request_id"] for s in seen] == [5, 0, 0, 0]
    assert seen[0]["malformed"] is None and seen[0]["elems"] == list(range(16))
    assert "version 2" in seen[1]["malformed"] and "truncated" in seen[2]["malformed"]
    assert "flagged" in seen[3]["malformed"]
    assert "4 DCIA packet(s), 3 malformed" in result.stderr


@pytest.fixture
def model():
    """Two dense layers 3 -> 2 -> 2; inputs are their own int8 values (scale 1)."""
    layers = [DenseLayer([[1, 2, 3], [-1, 0, 1]], [0, 5], [1, 1], [0, 0]),
              DenseLayer([[1, -1], [2, 1]], [0, 0], [1, 1], [0, 0])]
    floats = FloatModel("tiny", [FloatDense(np.zeros((2, 3)), np.zeros(2)),
                                 FloatDense(np.zeros((2, 2)), np.zeros(2))])
    return QuantizedModel("tiny", 1, 1, layers, [1.0, 1.0, 1.0], floats)


@pytest.fixture
def cloud(model):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    stop = [False]
    thread = threading.Thread(target=serve, args=(CloudServer([model]), sock, stop))
    thread.start()
    yield sock.getsockname()[1]
    stop[0] = True
    thread.join()
    sock.close()


def test_send_computes_the_edge_layers_and_prints_the_answer(cloud, model, tmp_path):
    model_file = model.save(tmp_path / "model.json")
    np.save(tmp_path / "inputs.npy", np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]]))
    result = tool("dcia_send.py", "--dst", "127.0.0.1", "--port", str(cloud), "--sport", "0",
                  "--model", str(model_file), "--inputs", str(tmp_path / "inputs.npy"),
                  "--index", "1", "--edge-layers", "1")
    # layer 0: [1+4+9, -1+3+5] = [14, 7]; layer 1: [14-7, 28+7] = [7, 35]
    assert result.returncode == 0, result.stderr
    assert "elems     = [14, 7]" in result.stdout and "elems     = [7, 35]" in result.stdout
    assert "class 1" in result.stdout and "flags     = RESULT" in result.stdout


def test_send_shows_the_error_answer_to_a_malformed_packet(cloud):
    result = tool("dcia_send.py", "--dst", "127.0.0.1", "--port", str(cloud), "--sport", "0",
                  "--ver", "2", "--elems", "1,2")
    assert result.returncode == 2
    assert "flags     = ERROR" in result.stdout and "status    = MALFORMED" in result.stdout
