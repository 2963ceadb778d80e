"""basic_fwd.p4: exact and LPM tables, TTL, checksum verification and update, drops."""
import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from embedded_switch.match import Exact, Lpm
from tests.conformance.loader import load

ROUTER_MAC = "08:00:00:00:01:00"


@pytest.fixture
def sw():
    s = load("basic_fwd")
    s.table_add("FwdIngress.ipv4_lpm", [Lpm(0x0A000200, 24)], "FwdIngress.route", [0x080000000222, 2])
    s.table_add("FwdIngress.dmac", [Exact(0x0A0A0A0A0A0A)], "FwdIngress.forward", [3])
    return s


def ipv4_frame(dst="10.0.2.2", ttl=64, chksum=None) -> bytes:
    ip = IP(src="10.0.1.1", dst=dst, ttl=ttl)
    if chksum is not None:
        ip.chksum = chksum
    return bytes(Ether(src="08:00:00:00:01:11", dst=ROUTER_MAC) / ip / UDP(sport=1, dport=2) / b"data")


def test_route_rewrites_macs_decrements_ttl_and_fixes_checksum(sw):
    [(port, data)] = sw.process(1, ipv4_frame())
    pkt = Ether(data)
    assert port == 2
    assert (pkt.src, pkt.dst) == (ROUTER_MAC, "08:00:00:00:02:22")
    assert pkt[IP].ttl == 63
    expected = IP(bytes(pkt[IP]))
    del expected.chksum
    assert pkt[IP].chksum == IP(bytes(expected)).chksum
    assert bytes(pkt[UDP].payload) == b"data"


def test_bad_checksum_is_dropped(sw):
    assert sw.process(1, ipv4_frame(chksum=0x1234)) == []


def test_unrouted_ipv4_and_non_ip_use_the_mac_table(sw):
    assert sw.process(1, ipv4_frame(dst="192.168.0.1")) == []          # dmac default: drop
    frame = bytes.fromhex("0a0a0a0a0a0a" "020000000001" "88b5") + b"hello"
    assert sw.process(1, frame) == [(3, frame)]


def test_short_frames_do_not_break_anything(sw):
    frame = ipv4_frame()
    for n in range(len(frame)):
        sw.process(1, frame[:n])
    assert sw.stats["dropped_error"] == 0
