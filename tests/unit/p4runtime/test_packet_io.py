"""Controller headers: packing PacketOut metadata and unpacking PacketIn metadata."""

import pytest
from finsy.proto import p4r

from embedded_switch.p4runtime.packet_io import build_packet_out, parse_packet_in
from embedded_switch.p4runtime.schema import ControllerHeader, Param
from embedded_switch.p4runtime.status import Code, P4RuntimeError

PORT_AND_PAD = (Param(1, "egress_port", 9), Param(2, "_pad", 7))
ODD = (Param(1, "a", 3), Param(2, "b", 12), Param(3, "c", 1))  # 16 bits, unaligned fields


def meta(**values):
    ids = {"egress_port": 1, "_pad": 2, "a": 1, "b": 2, "c": 3}
    return [p4r.PacketMetadata(metadata_id=ids[k], value=v) for k, v in values.items()]


def test_packet_out_header_packs_fields_msb_first_before_the_payload():
    header = ControllerHeader("packet_out", PORT_AND_PAD)
    out = p4r.PacketOut(payload=b"\xaa\xbb", metadata=meta(egress_port=b"\x01\x05"))
    assert build_packet_out(header, out) == bytes([0x82, 0x80, 0xAA, 0xBB])


def test_unaligned_fields_round_trip_through_packet_in():
    out = p4r.PacketOut(payload=b"x", metadata=meta(a=b"\x05", b=b"\x0a\xbc", c=b"\x01"))
    data = build_packet_out(ControllerHeader("packet_out", ODD), out)
    assert len(data) == 3
    packet_in = parse_packet_in(ControllerHeader("packet_in", ODD), data)
    assert packet_in.payload == b"x"
    assert [(m.metadata_id, m.value) for m in packet_in.metadata] == [
        (1, b"\x05"), (2, b"\x0a\xbc"), (3, b"\x01"),
    ]


def test_packet_in_values_are_canonical_bytestrings():
    packet_in = parse_packet_in(ControllerHeader("packet_in", PORT_AND_PAD), b"\x00\x80rest")
    assert [m.value for m in packet_in.metadata] == [b"\x01", b"\x00"]
    assert packet_in.payload == b"rest"


def test_a_header_that_does_not_fit_the_packet_gives_no_packet_in():
    assert parse_packet_in(ControllerHeader("packet_in", PORT_AND_PAD), b"\x00") is None


def test_without_controller_headers_payloads_pass_unchanged():
    assert build_packet_out(None, p4r.PacketOut(payload=b"abc")) == b"abc"
    assert parse_packet_in(None, b"abc").payload == b"abc"


@pytest.mark.parametrize(
    "metadata",
    [
        [p4r.PacketMetadata(metadata_id=9, value=b"\x01")],  # unknown id
        [p4r.PacketMetadata(metadata_id=1, value=b"\x02\x00")],  # 10 bits in 9
    ],
)
def test_bad_packet_out_metadata_is_invalid_argument(metadata):
    with pytest.raises(P4RuntimeError) as info:
        build_packet_out(ControllerHeader("packet_out", PORT_AND_PAD), p4r.PacketOut(metadata=metadata))
    assert info.value.code == Code.INVALID_ARGUMENT


def test_metadata_without_a_packet_out_header_is_invalid_argument():
    with pytest.raises(P4RuntimeError):
        build_packet_out(None, p4r.PacketOut(metadata=meta(egress_port=b"\x01")))
