"""The scapy layer: byte layout, round trips, and agreement with the compiled P4 header."""

import json

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from dcia.artifacts import Pipeline
from dcia.errors import WireFormatError
from dcia.wire import (
    DCIA,
    DCIA_UDP_PORT,
    HEADER_BYTES,
    HEADER_FIELDS,
    MAX_WIRE_ELEMS,
    Flag,
    malformation,
    tensor_packet,
)

ADDRS = dict(src_mac="08:00:00:00:01:11", dst_mac="08:00:00:00:02:22",
             src_ip="10.0.1.1", dst_ip="10.0.2.2")


def test_header_bytes_are_laid_out_as_documented():
    pkt = DCIA(flags=Flag.RESULT | Flag.NO_OFFLOAD, model_id=0x0102, model_version=0x0304,
               next_layer=5, net_layers=6, request_id=0x0708090A, status=2, elems=[-1, 0, 127])
    raw = bytes(pkt)
    assert len(raw) == HEADER_BYTES + 3
    assert raw.hex() == "01" "09" "0102" "0304" "05" "06" "0708090a" "0003" "02" "00" "ff007f"


def test_round_trip_through_udp_binding():
    frame = tensor_packet(**ADDRS, model_id=3, model_version=1, request_id=99,
                          elems=list(range(-8, 8)), next_layer=2)
    parsed = Ether(bytes(frame))
    assert parsed[UDP].dport == DCIA_UDP_PORT
    assert parsed[DCIA].elems == list(range(-8, 8))
    assert parsed[DCIA].n_elems == 16 and parsed[DCIA].next_layer == 2
    assert parsed[UDP].len == 8 + HEADER_BYTES + 16
    assert parsed[IP].len == 20 + 8 + HEADER_BYTES + 16


def test_builder_refuses_what_the_wire_cannot_carry():
    with pytest.raises(WireFormatError, match="int8"):
        tensor_packet(**ADDRS, model_id=1, model_version=1, request_id=1, elems=[128])
    with pytest.raises(WireFormatError, match=str(MAX_WIRE_ELEMS)):
        tensor_packet(**ADDRS, model_id=1, model_version=1, request_id=1,
                      elems=[0] * (MAX_WIRE_ELEMS + 1))


def test_malformation_rules():
    good = bytes(DCIA(model_id=1, elems=[1, 2, 3]))
    assert malformation(DCIA(good)) is None
    assert "truncated" in malformation(DCIA(good[:-1]))
    assert "after" in malformation(DCIA(good + b"\x00"))
    assert "version 2" in malformation(DCIA(b"\x02" + good[1:]))
    assert "more than the maximum" in malformation(DCIA(n_elems=MAX_WIRE_ELEMS + 1))


def test_scapy_layer_matches_the_compiled_p4_header():
    """Same field names, widths and order as header dcia_t in the committed BMv2 JSON."""
    program = json.loads(Pipeline.default().bmv2_json.read_text())
    (dcia_t,) = [h for h in program["header_types"] if h["name"] == "dcia_t"]
    p4_fields = [(name, width) for name, width, *_ in dcia_t["fields"]]
    assert p4_fields == HEADER_FIELDS
    assert sum(w for _, w in p4_fields) == 8 * HEADER_BYTES


def test_large_tensors_dissect():
    raw = bytes(DCIA(elems=[-1] * MAX_WIRE_ELEMS))
    assert DCIA(raw).elems == [-1] * MAX_WIRE_ELEMS
