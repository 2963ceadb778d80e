"""What a port hands the pipeline: the frame as it was on the wire, and only frames of
its own interface, as BMv2 (through libpcap) does.

Linux strips a frame's outer VLAN tag before a raw socket sees it and reports it beside
the frame (PACKET_AUXDATA); a port puts it back, so an 802.1Q or 802.1ad (QinQ) frame
enters the pipeline tagged. The DCIA program parses no VLAN tag, so BMv2 drops tagged
frames, and so must the embedded switch. Each with the receiving veths' VLAN offload
on and off.

A port's socket receives nothing until it is bound to its interface: frames that other
interfaces of the machine carry while the switch starts never enter the pipeline.

All over veth pairs whose far ends are in network namespaces the test creates.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import Dot1AD, Dot1Q, Ether
from scapy.utils import RawPcapReader

from dcia.arithmetic import Activation
from dcia.layers import DenseLayer
from dcia.targets import SwitchConfig, SwitchProcess, find_bmv2, free_tcp_port
from dcia.wire import DCIA, DCIA_UDP_PORT
from embedded_switch.match import Exact
from embedded_switch.ports import PortSet
from embedded_switch.switch import Switch
from tests.dataplane.rig import HOST1, HOST2, SWITCH_MAC, Rig
from tests.dataplane_model import STAT_COMPUTED, InstalledModel
from tests.netlab import NetLab
from tests.unit.embedded_switch.jsonprog import dumps, unit_program

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None,
                       reason="needs root and iproute2 to create namespaces and veth pairs"),
]

CPU_PORT = 64
MODEL = InstalledModel(9, 1, {0: DenseLayer([[1, 0], [0, -1]], bias=[0, 0], mult=[1, 1],
                                            shift=[0, 0], act=Activation.IDENTITY)})
# the frames a raw socket on Linux receives without their outer tag
TAGS = {
    "802.1Q": lambda: Dot1Q(prio=5, vlan=42),
    "802.1Q priority tag (TCI 0)": lambda: Dot1Q(prio=0, vlan=0),
    "802.1Q with DEI": lambda: Dot1Q(prio=7, dei=1, vlan=4095),
    "802.1ad QinQ": lambda: Dot1AD(prio=1, vlan=100) / Dot1Q(prio=2, vlan=42),
}


@pytest.fixture(params=["on", "off"], ids=lambda v: f"vlan offload {v}")
def lab(request):
    """Two switch ports; their root-namespace ends with VLAN receive offload (802.1Q
    rxvlan and 802.1ad rx-vlan-stag-hw-parse) on or off."""
    if shutil.which("ethtool") is None:
        pytest.skip("ethtool is needed to switch the veths' VLAN offload on and off")
    with NetLab("pio", ports=2) as net:
        for port in (1, 2):
            result = subprocess.run(["ethtool", "-K", net.switch_ifname(port), "rxvlan", request.param,
                                     "rx-vlan-stag-hw-parse", request.param],
                                    capture_output=True, text=True)
            if result.returncode != 0:
                pytest.skip(f"this kernel's veth cannot turn VLAN offload {request.param}: "
                            f"{result.stderr.strip()}")
        yield net


def udp_frame(*tags) -> bytes:
    eth = Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:01")
    for tag in tags:
        eth = eth / tag
    return bytes(eth / IP(src="10.0.1.1", dst="10.0.2.2") / UDP(sport=7, dport=9) / b"on the wire")


@pytest.mark.parametrize("tag", list(TAGS))
def test_a_tagged_frame_enters_the_pipeline_as_it_was_on_the_wire(lab, tag):
    """The unit program parses Ethernet only and sends the frame to the CPU port
    unchanged: what the packet-in handler receives is what the pipeline saw."""
    sw = Switch(cpu_port=CPU_PORT)
    sw.load_pipeline(dumps(unit_program()))
    sw.table_add("ingress.t_fwd", [Exact(0)], "ingress.fwd", [CPU_PORT])
    seen: list[bytes] = []
    with PortSet(sw, {1: lab.switch_ifname(1), 2: lab.switch_ifname(2)}) as ports:
        ports.set_cpu_handler(seen.append)
        host = lab.host_socket(1)
        sent = [udp_frame(TAGS[tag]()), udp_frame()]
        for frame in sent:
            host.send(frame)
        deadline = time.monotonic() + 10
        while len(seen) < len(sent) and time.monotonic() < deadline:
            time.sleep(0.02)
    assert seen == sent


# ------------------------------------------------------- the DCIA program, and BMv2 --


@pytest.fixture(params=["embedded", "bmv2"])
def rig(request, lab, tmp_path):
    if request.param == "bmv2" and find_bmv2() is None:
        pytest.skip("parity with BMv2 needs simple_switch_grpc (PATH, $SIMPLE_SWITCH_GRPC or "
                    "/opt/p4/bin); it is not installed here")
    (tmp_path / "pcap").mkdir()
    config = SwitchConfig(ports={1: lab.switch_ifname(1), 2: lab.switch_ifname(2)},
                          grpc_addr=f"127.0.0.1:{free_tcp_port()}", log_file=tmp_path / "switch.log",
                          pcap_dir=tmp_path / "pcap")
    with SwitchProcess(request.param, config, stdout_path=tmp_path / "switch.out") as proc:
        rig = Rig(lab, proc)
        rig.install_routes()
        rig.install([MODEL])
        yield rig


def dcia_frame(*tags, payload) -> bytes:
    eth = Ether(src=HOST1["mac"], dst=SWITCH_MAC)
    for tag in tags:
        eth = eth / tag
    return bytes(eth / IP(src=HOST1["ip"], dst=HOST2["ip"]) / payload)


def tensor(request_id: int):
    return (UDP(sport=DCIA_UDP_PORT, dport=DCIA_UDP_PORT)
            / DCIA(model_id=MODEL.model_id, model_version=MODEL.version, request_id=request_id,
                   elems=[3, 4]))


def test_tagged_ipv4_and_tensor_frames_are_dropped_as_bmv2_drops_them(rig):
    """Untagged, the same frames are routed and computed; tagged, the program's parser
    finds no IPv4 header and drops them, without counting. The switch's capture of what
    entered port 1 (--pcap) holds every frame as it was sent, tags and all."""
    sent = []
    for n, make_tag in enumerate(TAGS.values(), start=1):
        sent += [dcia_frame(make_tag(), payload=ICMP(id=n) / b"ping"),
                 dcia_frame(make_tag(), payload=tensor(request_id=n))]
    sent.append(dcia_frame(payload=tensor(request_id=99)))
    for frame in sent:
        rig.h1.send(frame)
    got = [Ether(f) for f in rig.h2.receive(timeout=1.5)]
    assert [(g[DCIA].request_id, g[DCIA].elems) for g in got if DCIA in g] == [(99, [3, -4])]
    assert len(got) == 1, [g.summary() for g in got]
    stats = {k: v for k, v in rig.counters("dcia_stats").items() if v}
    assert stats == {STAT_COMPUTED: 1}
    assert not any(rig.counters("ipv4_drops").values())
    rig.proc.stop()   # so that the capture is complete on disk
    captured = rig.proc.config.pcap_dir / f"{rig.lab.switch_ifname(1)}_in.pcap"
    assert [data for data, _ in RawPcapReader(str(captured))] == sent


# ---------------------------------------------------------------- opening the ports --

FOREIGN = bytes(Ether(dst="02:00:00:00:0f:0f", src="02:00:00:00:0f:01", type=0x88B5)) + b"FOREIGN FRAME"
# A process of its own, so that it sends while the switch's thread holds the GIL.
BLASTER = """
import signal, socket, sys, time
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
ifname, frame, seconds = sys.argv[1], bytes.fromhex(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
s.bind((ifname, 0))
sent, deadline = 0, time.monotonic() + seconds
print("sending", flush=True)
try:
    while time.monotonic() < deadline:
        s.send(frame)
        sent += 1
finally:
    print(sent, flush=True)
"""


def test_frames_of_other_interfaces_never_enter_while_the_ports_open():
    """A sender blasts frames on an unrelated veth pair of the machine while the switch's
    ports open, again and again; none may reach the pipeline, be counted or leave a port."""
    sw = Switch(cpu_port=CPU_PORT)
    sw.load_pipeline(dumps(unit_program()))   # t_fwd's default: everything out of port 1
    entered: list[tuple[int, bytes]] = []
    process = sw.process

    def recording_process(port: int, data: bytes):
        entered.append((port, data))
        return process(port, data)

    sw.process = recording_process
    with NetLab("pst", ports=2) as lab, NetLab("pfo", ports=1) as other:
        h1, h2 = lab.host_socket(1), lab.host_socket(2)
        blaster = subprocess.Popen(["ip", "netns", "exec", other.ns(1), sys.executable, "-c", BLASTER,
                                    other.host_ifname(1), FOREIGN.hex(), "120"],
                                   stdout=subprocess.PIPE, text=True)
        try:
            assert blaster.stdout.readline().strip() == "sending"
            starts, deadline = 0, time.monotonic() + 60
            while starts < 30 and time.monotonic() < deadline:
                with PortSet(sw, {1: lab.switch_ifname(1), 2: lab.switch_ifname(2)}) as ports:
                    time.sleep(0.1)
                    rx = ports.stats["rx"]
                starts += 1
                assert not entered, f"start {starts}: {len(entered)} foreign frames entered, " \
                                    f"the first as from port {entered[0][0]}"
                assert rx == 0, f"start {starts}: {rx} frames counted as received"
        finally:
            blaster.terminate()
            sent = int(blaster.communicate(timeout=10)[0] or 0)
        out = h1.receive(0.3) + h2.receive(0.1)
    assert starts >= 10 and sent > 1000, f"only {starts} starts and {sent} frames sent"
    assert not any(FOREIGN in frame for frame in out)
