"""Packet-out and packet-in: the controller header between the switch and its CPU port.

The P4 program declares a `@controller_header("packet_out")` header that the CPU
prepends to packets it injects, and a `@controller_header("packet_in")` header the
program prepends to packets it sends to the CPU. Their fields are the P4Info
ControllerPacketMetadata, packed most significant bit first in P4Info order and padded
to whole bytes, exactly as BMv2's P4Runtime server does.

    >>> from embedded_switch.p4runtime.schema import ControllerHeader, Param
    >>> header = ControllerHeader("packet_out", (Param(1, "egress_port", 9), Param(2, "_pad", 7)))
    >>> port = p4r.PacketMetadata(metadata_id=1, value=b"\\x01\\x02")
    >>> build_packet_out(header, p4r.PacketOut(payload=b"hi", metadata=[port]))
    b'\\x81\\x00hi'
    >>> packet_in = parse_packet_in(ControllerHeader("packet_in", header.fields), b"\\x81\\x00hi")
    >>> packet_in.metadata[0].value
    b'\\x01\\x02'
"""

from __future__ import annotations

from finsy.proto import p4r

from embedded_switch.p4runtime.codec import decode_uint, encode_uint
from embedded_switch.p4runtime.schema import ControllerHeader
from embedded_switch.p4runtime.status import invalid


def _header_bytes(header: ControllerHeader) -> int:
    return (sum(f.bitwidth for f in header.fields) + 7) // 8


def build_packet_out(header: ControllerHeader | None, packet: p4r.PacketOut) -> bytes:
    """The bytes to inject from the CPU port: controller header, then the payload.

    Metadata fields the PacketOut omits are 0; unknown ids or values wider than
    their field are INVALID_ARGUMENT.
    """
    if header is None:
        if packet.metadata:
            raise invalid("PacketOut metadata given, but the P4Info has no packet_out header")
        return packet.payload
    by_id = {f.id: f for f in header.fields}
    values: dict[int, int] = {}
    for meta in packet.metadata:
        if meta.metadata_id not in by_id:
            raise invalid(f"packet_out has no metadata field with id {meta.metadata_id}")
        spec = by_id[meta.metadata_id]
        values[spec.id] = decode_uint(meta.value, spec.bitwidth, f"packet_out '{spec.name}'")
    bits = 0
    total = 0
    for spec in header.fields:
        bits = (bits << spec.bitwidth) | values.get(spec.id, 0)
        total += spec.bitwidth
    nbytes = _header_bytes(header)
    bits <<= nbytes * 8 - total
    return bits.to_bytes(nbytes, "big") + packet.payload


def parse_packet_in(header: ControllerHeader | None, data: bytes) -> p4r.PacketIn | None:
    """The PacketIn for a packet the switch sent to the CPU port (None if too short)."""
    if header is None:
        return p4r.PacketIn(payload=data)
    nbytes = _header_bytes(header)
    if len(data) < nbytes:
        return None
    total = sum(f.bitwidth for f in header.fields)
    bits = int.from_bytes(data[:nbytes], "big") >> (nbytes * 8 - total)
    metadata = []
    shift = total
    for spec in header.fields:
        shift -= spec.bitwidth
        value = (bits >> shift) & ((1 << spec.bitwidth) - 1)
        metadata.append(p4r.PacketMetadata(metadata_id=spec.id, value=encode_uint(value)))
    return p4r.PacketIn(payload=data[nbytes:], metadata=metadata)
