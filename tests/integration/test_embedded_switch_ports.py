"""The embedded switch on real interfaces: veth pairs whose host ends live in network
namespaces the test creates; frames built with scapy go in and come out for real."""
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from dcia.targets import free_tcp_port
from embedded_switch.match import Exact
from embedded_switch.ports import PortSet
from embedded_switch.switch import Switch
from tests.netlab import NetLab
from tests.unit.embedded_switch.jsonprog import ETHERTYPE, dumps, unit_program

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None,
                       reason="needs root and iproute2 to create namespaces and veth pairs"),
]

CPU_PORT = 64


def tensor_frame(out: int, payload: bytes = b"payload") -> bytes:
    """Ethernet / h_t of the unit program; h.out selects the t_fwd entry."""
    h = bytes([1, 0, 2, 3, 4, 5, out, 0, 0])
    return bytes(Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:01", type=ETHERTYPE) / Raw(h + payload))


@pytest.fixture
def lab():
    with NetLab("esp", ports=2) as net:
        yield net


@pytest.fixture
def switch_on(lab):
    sw = Switch(cpu_port=CPU_PORT)
    sw.load_pipeline(dumps(unit_program()))
    ports = PortSet(sw, {1: lab.switch_ifname(1), 2: lab.switch_ifname(2)})
    ports.start()
    try:
        yield sw, ports
    finally:
        ports.stop()


def test_frames_are_forwarded_between_namespaces(lab, switch_on):
    sw, _ = switch_on
    sw.table_add("ingress.t_fwd", [Exact(0x20)], "ingress.fwd", [2])
    h1, h2 = lab.host_socket(1), lab.host_socket(2)
    h1.drain(), h2.drain()
    h1.send(tensor_frame(0x20))
    [got] = h2.receive_count(1, timeout=3)
    assert got[:len(tensor_frame(0x20))] == tensor_frame(0x20)
    h2.send(tensor_frame(0x21))        # default action: fwd(1)
    [back] = h1.receive_count(1, timeout=3)
    assert back[20] == 0x21


def test_cpu_port_packet_in_and_packet_out(lab, switch_on):
    sw, ports = switch_on
    received = []
    ports.set_cpu_handler(received.append)
    sw.table_add("ingress.t_fwd", [Exact(0x30)], "ingress.fwd", [CPU_PORT])
    h1, h2 = lab.host_socket(1), lab.host_socket(2)
    h1.drain(), h2.drain()
    h2.send(tensor_frame(0x30))
    deadline = time.monotonic() + 3
    while not received and time.monotonic() < deadline:
        time.sleep(0.01)
    assert received and received[0][20] == 0x30
    ports.inject_from_cpu(tensor_frame(0x31))   # packet-out: default fwd(1)
    [out] = h1.receive_count(1, timeout=3)
    assert out[20] == 0x31


def test_frames_longer_than_a_ring_slot_pass_whole_and_in_order(lab, switch_on):
    """A port reads frames from its receive ring, whose slots hold 1,982 bytes; longer ones
    (jumbo frames here) come whole from the socket's queue, in their place in the stream."""
    sw, ports = switch_on
    sw.table_add("ingress.t_fwd", [Exact(0x20)], "ingress.fwd", [2])
    for port in (1, 2):
        subprocess.run(["ip", "link", "set", lab.switch_ifname(port), "mtu", "9000"], check=True)
        lab.run_in_host(port, "ip", "link", "set", lab.host_ifname(port), "mtu", "9000", check=True)
    h1, h2 = lab.host_socket(1), lab.host_socket(2)
    h1.drain(), h2.drain()
    sizes = [60, 1500, 1981, 1982, 1983, 2048, 4000, 9000, 100, 8999, 1982]
    frames = [tensor_frame(0x20, bytes([n % 251]) * (n - 23)) for n in sizes]
    for f in frames:
        h1.send(f)
    got = h2.receive_count(len(frames), timeout=3)
    assert [len(g) for g in got] == [len(f) for f in frames]
    assert got == frames
    assert ports.stats["rx_truncated"] == 0


def test_garbage_never_stops_the_switch(lab, switch_on):
    sw, ports = switch_on
    h1, h2 = lab.host_socket(1), lab.host_socket(2)
    h1.drain(), h2.drain()
    rng = random.Random(1)
    for n in (14, 15, 20, 23, 60, 200):
        h2.send(bytes(rng.randrange(256) for _ in range(n)))
    h2.send(tensor_frame(0x40)[:18])               # truncated h_t: parser error, still forwarded
    h2.send(tensor_frame(0x41))
    frames = h1.receive(timeout=1.0)
    assert any(len(f) >= 21 and f[20] == 0x41 for f in frames)
    assert ports.stats["process_error"] == 0


def test_cli_forwards_and_stops_cleanly(lab, tmp_path):
    program = tmp_path / "unit.json"
    program.write_bytes(dumps(unit_program()))
    cmd = [sys.executable, "-m", "embedded_switch.cli", str(program),
           "-i", f"1@{lab.switch_ifname(1)}", "-i", f"2@{lab.switch_ifname(2)}",
           "--log-console", "--log-level", "warn", "--thrift-port", "9090", "--device-id", "3",
           "--pcap", str(tmp_path / "pcaps"),
           "--", "--grpc-server-addr", f"127.0.0.1:{free_tcp_port()}", "--cpu-port", str(CPU_PORT)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "dcia-switch ready"
        h1, h2 = lab.host_socket(1), lab.host_socket(2)
        h1.drain()
        h2.send(tensor_frame(0x50))
        [got] = h1.receive_count(1, timeout=5)
        assert got[20] == 0x50
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        pcaps = sorted(p.name for p in (tmp_path / "pcaps").iterdir())
        assert pcaps == [f"{lab.switch_ifname(1)}_out.pcap", f"{lab.switch_ifname(2)}_in.pcap"]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
