"""What the switch does with IPv4 headers a router would not forward as they are, on BMv2
and on the embedded switch (docs/wire-format.md, "Before anything else").

An expired TTL, a bad header checksum (or a bad UDP checksum on a tensor the switch could
compute on) and a header that cannot be right (version, ihl, total length) are dropped and
counted, never computed on; IP options are kept and covered
by the new checksum; a fragment is forwarded as plain IP, never computed; a tensor whose
IPv4 and UDP lengths disagree is malformed.
"""

from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, UDP, IPOption_NOP, IPOption_RR
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import checksum

from dcia.arithmetic import Activation
from dcia.layers import DenseLayer
from dcia.wire import DCIA, DCIA_UDP_PORT, Flag
from tests.dataplane.rig import assert_forwarded, frame
from tests.dataplane_model import (
    DROP_BAD_CHECKSUM,
    DROP_BAD_HEADER,
    DROP_TTL_EXPIRED,
    STAT_COMPUTED,
    STAT_MALFORMED,
    STAT_PASSTHROUGH,
    InstalledModel,
)

pytestmark = pytest.mark.netns

MODEL = InstalledModel(4, 1, {
    0: DenseLayer([[1, -2, 3, 0], [0, 1, 0, 0], [-1, -1, -1, -1], [2, 2, 2, 2]],
                  bias=[5, 0, -3, 100], mult=[1] * 4, shift=[0] * 4, act=Activation.RELU),
    1: DenseLayer([[1, 0, 0, 0], [0, -1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1]],
                  bias=[0, 0, 0, 0], mult=[1] * 4, shift=[0] * 4),
}, more={0: True})
X = [3, -7, 11, 2]
NOPS = [IPOption_NOP()] * 4                                   # ihl 6
RECORD_ROUTE = [IPOption_RR(routers=["0.0.0.0"] * 9)]         # ihl 15, the most there is


def tensor(*, elems=X, request_id=1, udp_len=None) -> DCIA:
    return (UDP(sport=DCIA_UDP_PORT, dport=DCIA_UDP_PORT, len=udp_len)
            / DCIA(model_id=MODEL.model_id, model_version=MODEL.version, request_id=request_id,
                   elems=elems))


def computed(x: list[int]) -> list[int]:
    return MODEL.layers[1].forward(MODEL.layers[0].forward(x))


def with_checksum(f: Ether, chksum: int) -> bytes:
    """``f`` with its IPv4 header checksum replaced."""
    raw = bytearray(bytes(f))
    raw[24:26] = chksum.to_bytes(2, "big")
    return bytes(raw)


def checksum_of(f: Ether) -> int:
    return Ether(bytes(f))[IP].chksum


def stats(rig) -> dict[int, int]:
    return rig.counters("dcia_stats")


def drops(rig) -> dict[int, int]:
    return rig.counters("ipv4_drops")


def test_expired_ttl_is_dropped_not_wrapped(rig):
    rig.install([MODEL])
    for f in (frame(ICMP(), ttl=0), frame(ICMP(), ttl=1), frame(UDP(sport=1, dport=2), ttl=1),
              frame(tensor(), ttl=1)):
        rig.h1.send(bytes(f))
    assert rig.h2.receive(0.5) == [] and rig.h1.receive(0.1) == []

    # TTL 2 leaves with 1, also when the packet recirculates to compute a second layer
    sent = [frame(ICMP(id=3), ttl=2), frame(tensor(), ttl=2)]
    for f in sent:
        rig.h1.send(bytes(f))
    got = [Ether(b) for b in rig.h2.receive_count(2, timeout=10)]
    assert len(got) == 2
    for s, g in zip(sent, got):
        assert_forwarded(s, g)
    assert got[1][DCIA].elems == computed(X) and got[1][DCIA].net_layers == 2
    assert drops(rig) == {DROP_TTL_EXPIRED: 4, DROP_BAD_CHECKSUM: 0, DROP_BAD_HEADER: 0}
    assert stats(rig).get(STAT_COMPUTED) == 2


def test_bad_ipv4_checksum_is_dropped_not_recomputed(rig):
    rig.install([MODEL])
    icmp, t = frame(ICMP()), frame(tensor())
    # with options, a checksum over the first 20 bytes only is wrong
    options = frame(ICMP(), options=NOPS)
    ip = bytes(options[IP])
    first20 = checksum(ip[:10] + bytes(2) + ip[12:20])
    for raw in (with_checksum(icmp, checksum_of(icmp) ^ 0x0100),
                with_checksum(t, checksum_of(t) ^ 0x8000),
                with_checksum(options, first20)):
        rig.h1.send(raw)
    assert rig.h2.receive(0.5) == [] and rig.h1.receive(0.1) == []

    rig.h1.send(bytes(icmp))        # the same packet with its checksum intact goes through
    [got] = [Ether(b) for b in rig.h2.receive_count(1, timeout=10)]
    assert_forwarded(icmp, got)
    assert drops(rig) == {DROP_TTL_EXPIRED: 0, DROP_BAD_CHECKSUM: 3, DROP_BAD_HEADER: 0}
    assert stats(rig).get(STAT_COMPUTED, 0) == 0


def test_tensor_with_a_bad_udp_checksum_is_dropped_not_computed(rig):
    """Computing would set the UDP checksum to 0 and hide the corruption from the receiver."""
    rig.install([MODEL])
    good = bytes(Ether(bytes(frame(tensor(request_id=1)))))
    udp = 14 + 20
    flipped_elem = bytearray(good)
    flipped_elem[udp + 8 + 16 + 2] ^= 0x10       # an element changed on the way
    flipped_model = bytearray(good)
    flipped_model[udp + 8 + 3] ^= 0x01           # model_id low byte: another model
    for raw in (flipped_elem, flipped_model):
        rig.h1.send(bytes(raw))
    assert rig.h2.receive(0.5) == [] and rig.h1.receive(0.1) == []

    no_checksum = Ether(good)                    # 0: the sender gave no checksum
    no_checksum[UDP].chksum = 0
    for raw in (good, bytes(no_checksum)):
        rig.h1.send(raw)
    got = [Ether(b) for b in rig.h2.receive_count(2, timeout=10)]
    assert [g[DCIA].elems for g in got] == [computed(X)] * 2
    assert drops(rig) == {DROP_TTL_EXPIRED: 0, DROP_BAD_CHECKSUM: 2, DROP_BAD_HEADER: 0}
    assert stats(rig).get(STAT_COMPUTED) == 4


def test_ip_options_are_kept_and_covered_by_the_checksum(rig):
    rig.install([MODEL])
    sent = [frame(ICMP(id=1) / b"ping", options=NOPS),
            frame(UDP(sport=1, dport=2) / b"hello", options=RECORD_ROUTE),
            frame(tensor(request_id=7), options=NOPS),
            frame(tensor(request_id=8), options=RECORD_ROUTE)]
    for f in sent:
        rig.h1.send(bytes(f))
    got = [Ether(b) for b in rig.h2.receive_count(len(sent), timeout=10)]
    assert len(got) == len(sent)
    for s, g in zip(sent, got):
        assert_forwarded(s, g)
    assert bytes(got[0][IP].payload) == bytes(sent[0][IP].payload)
    assert bytes(got[1][IP].payload) == bytes(sent[1][IP].payload)
    for g in got[2:]:
        assert g[DCIA].elems == computed(X) and g[DCIA].next_layer == 2
        assert g[UDP].len == 8 + 16 + 4 and g[UDP].chksum == 0
    assert stats(rig).get(STAT_COMPUTED) == 4


def test_fragments_are_forwarded_as_plain_ip_not_computed(rig):
    rig.install([MODEL])
    first = frame(tensor(request_id=1), flags="MF", id=77)
    # a later fragment whose bytes happen to look like a DCIA tensor
    later = frame(Raw(bytes(tensor(request_id=2))), frag=3, proto=17, id=77)
    last_with_mf = frame(Raw(bytes(tensor(request_id=3))), flags="MF", frag=1, proto=17, id=78)
    sent = [first, later, last_with_mf]
    for f in sent:
        rig.h1.send(bytes(f))
    got = [Ether(b) for b in rig.h2.receive_count(len(sent), timeout=10)]
    assert len(got) == len(sent)
    for s, g in zip(sent, got):
        assert_forwarded(s, g)
        s = Ether(bytes(s))
        assert (g[IP].flags, g[IP].frag) == (s[IP].flags, s[IP].frag)
        assert bytes(g[IP].payload) == bytes(s[IP].payload), "a fragment was changed"
    counts = stats(rig)
    assert counts.get(STAT_COMPUTED, 0) == 0 and counts.get(STAT_PASSTHROUGH, 0) == 0


def test_impossible_ipv4_headers_are_dropped(rig):
    rig.install([MODEL])
    total = Ether(bytes(frame(tensor())))[IP].len
    cases = [
        frame(ICMP(), version=6),                  # an IPv4 EtherType with another version
        frame(tensor(), version=0),
        frame(ICMP(), ihl=4),                      # shorter than the fixed header
        frame(tensor(), len=19),                   # total length shorter than the header
        frame(tensor(), len=total + 1),            # longer than what arrived: truncated
        frame(tensor(), options=NOPS, len=23),     # total length inside the options
    ]
    for f in cases:
        rig.h1.send(bytes(f))
    assert rig.h2.receive(0.5) == [] and rig.h1.receive(0.1) == []
    assert drops(rig) == {DROP_TTL_EXPIRED: 0, DROP_BAD_CHECKSUM: 0, DROP_BAD_HEADER: len(cases)}
    counts = stats(rig)
    assert counts.get(STAT_COMPUTED, 0) == 0 and counts.get(STAT_MALFORMED, 0) == 0


def test_tensor_whose_ipv4_and_udp_lengths_disagree_is_malformed(rig):
    rig.install([MODEL])
    # IPv4 covers two bytes after the tensor that UDP does not (no UDP checksum: scapy's
    # would cover them too, and the switch would drop the packet as corrupt)
    longer = frame(tensor(request_id=1, udp_len=8 + 16 + 4) / Raw(b"\xaa\xbb"))
    longer[UDP].chksum = 0
    longer = Ether(bytes(longer))
    # UDP and the tensor run past the end of the IPv4 datagram, into the Ethernet padding
    shorter = Ether(bytes(frame(tensor(request_id=2))))
    shorter[IP].len -= 2
    del shorter[IP].chksum
    sent = [longer, Ether(bytes(shorter))]
    for f in sent:
        rig.h1.send(bytes(f))
    got = {Ether(b)[DCIA].request_id: Ether(b) for b in rig.h2.receive_count(2, timeout=10)}
    assert len(got) == 2
    for s in sent:
        g = got[s[DCIA].request_id]
        assert g[IP].ttl == s[IP].ttl - 1 and g[IP].len == s[IP].len
        assert int(g[DCIA].flags) == Flag.MALFORMED
        assert bytes(g[DCIA])[2:] == bytes(s[DCIA])[2:], "a malformed tensor was changed"
        assert g[UDP].chksum == 0
    counts = stats(rig)
    assert counts.get(STAT_MALFORMED) == 2 and counts.get(STAT_COMPUTED, 0) == 0


def test_ethernet_padding_after_a_tensor_is_not_part_of_it(rig):
    rig.install([MODEL])
    sent = Ether(bytes(frame(tensor())))
    rig.h1.send(bytes(sent) + bytes(6))        # after the datagram: Ethernet padding
    [got] = [Ether(b) for b in rig.h2.receive_count(1, timeout=10)]
    assert got[DCIA].elems == computed(X) and int(got[DCIA].flags) == 0
    assert got[IP].len == sent[IP].len and got[UDP].len == sent[UDP].len
    assert stats(rig).get(STAT_COMPUTED) == 2
