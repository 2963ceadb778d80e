"""checksum.p4: IPv4 checksum verification (checksum_error) and update, and a UDP
checksum over pseudo-header, header and payload (update_checksum_with_payload)."""
import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from tests.conformance.loader import load


@pytest.fixture
def sw():
    return load("checksum")


def udp_frame(payload: bytes = b"some payload", ip_chksum=None) -> bytes:
    ip = IP(src="10.0.1.1", dst="10.0.2.2")
    if ip_chksum is not None:
        ip.chksum = ip_chksum
    return bytes(Ether() / ip / UDP(sport=1000, dport=2000) / payload)


def recomputed(pkt: Ether) -> tuple[int, int]:
    fresh = Ether(bytes(pkt))
    del fresh[IP].chksum, fresh[UDP].chksum
    fresh = Ether(bytes(fresh))
    return fresh[IP].chksum, fresh[UDP].chksum


@pytest.mark.parametrize("payload", [b"", b"x", b"some payload", bytes(range(255))])
def test_udp_checksum_covers_pseudo_header_and_payload(sw, payload):
    [(_, data)] = sw.process(0, udp_frame(payload))
    pkt = Ether(data)
    assert pkt[UDP].dport == 2001 and pkt[IP].tos == 0
    assert (pkt[IP].chksum, pkt[UDP].chksum) == recomputed(pkt)
    assert bytes(pkt[UDP].payload) == payload


def test_bad_ipv4_checksum_sets_checksum_error(sw):
    [(_, data)] = sw.process(0, udp_frame(ip_chksum=0xBEEF))
    pkt = Ether(data)
    assert pkt[IP].tos == 0xEE
    assert pkt[IP].chksum == recomputed(pkt)[0]
