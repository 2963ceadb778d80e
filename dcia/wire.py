"""The DCIA wire format as a scapy layer: the Python twin of ``header dcia_t`` in p4src/dcia.p4.

A tensor packet is Ethernet / IPv4 / UDP (destination port ``DCIA_UDP_PORT``) / DCIA,
where the DCIA layer is the 16-byte header followed by ``n_elems`` int8 elements.
docs/wire-format.md describes every field and what a switch does with each packet.

    >>> pkt = DCIA(model_id=7, model_version=2, request_id=42, elems=[1, -2, 3])
    >>> pkt.n_elems is None, len(bytes(pkt))
    (True, 19)
    >>> DCIA(bytes(pkt)).elems
    [1, -2, 3]

Hosts that must survive any datagram read its header with ``peek`` (never fails) and parse
the whole packet with ``decode`` only once ``malformation`` has found nothing wrong:

    >>> raw = bytes(pkt)
    >>> peek(raw[:10]).request_id, peek(raw).model_id, malformation(raw[:-1])
    (0, 7, 'truncated: header says 3 elements, 2 present')
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Sequence
from enum import IntEnum, IntFlag
from typing import NamedTuple

from scapy.fields import (
    ByteEnumField,
    ByteField,
    FieldLenField,
    FieldListField,
    FlagsField,
    IntField,
    ShortField,
    SignedByteField,
)
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Packet, bind_layers

from dcia.errors import WireFormatError

DCIA_UDP_PORT = 0xDC1A
"""UDP destination port of every DCIA packet (tensors and answers): 56346."""
DCIA_VERSION = 1
HEADER_BYTES = 16
MAX_NET_ELEMS = 16
"""Elements a switch can compute on; larger tensors pass through the network as payload."""
MAX_WIRE_ELEMS = 1024
"""Elements a well-formed DCIA packet may carry at most."""
MAX_MODEL_ID = MAX_MODEL_VERSION = 0xFFFF
"""The header's ``model_id`` and ``model_version`` are 16-bit fields."""
MAX_PASSES = 8
"""Consecutive layers one switch computes on one packet."""


class Flag(IntFlag):
    """DCIA header flags. A packet with any of the first five set is never computed by a
    switch (``NO_COMPUTE``); ``FUSE`` and ``FUSED`` mark in-network fusion and leave the
    tensor computable."""

    RESULT = 0x01
    ERROR = 0x02
    MALFORMED = 0x04
    NO_OFFLOAD = 0x08
    ENCRYPTED = 0x10
    FUSE = 0x20
    """A member of a fusion group: ``request_id`` is the group id, ``reserved`` holds the
    member index and the group size (``fusion_field``)."""
    FUSED = 0x40
    """The output of a fusion layer: ``reserved`` is the bitmap of the members fused
    (fewer than the group's size: a partial group, released after its timeout)."""


NO_COMPUTE = Flag.RESULT | Flag.ERROR | Flag.MALFORMED | Flag.NO_OFFLOAD | Flag.ENCRYPTED
"""Flags that keep a switch from computing on a packet (``FLAGS_NO_COMPUTE`` in the P4)."""


class Status(IntEnum):
    """Codes in the ``status`` field of an answer with ``Flag.ERROR``."""

    OK = 0
    MALFORMED = 1
    UNKNOWN_MODEL = 2
    BAD_SHAPE = 3
    INTERNAL = 4
    UNAUTHORISED = 5
    """The model is restricted to other sources (the policy's tenants)."""
    BAD_SEAL = 6
    """A sealed tensor (``ENCRYPTED``) the receiver cannot open: no key for its sender, or
    its authentication tag does not verify (dcia.sealing); or a model that must be sealed
    arrived in the clear."""


class DCIA(Packet):
    """The DCIA header and its int8 tensor."""

    name = "DCIA"
    fields_desc = [
        ByteField("ver", DCIA_VERSION),
        FlagsField("flags", 0, 8, ["RESULT", "ERROR", "MALFORMED", "NO_OFFLOAD", "ENCRYPTED",
                                         "FUSE", "FUSED"]),
        ShortField("model_id", 0),
        ShortField("model_version", 0),
        ByteField("next_layer", 0),
        ByteField("net_layers", 0),
        IntField("request_id", 0),
        FieldLenField("n_elems", None, fmt="H", count_of="elems"),
        ByteEnumField("status", Status.OK, {s.value: s.name for s in Status}),
        ByteField("reserved", 0),
        FieldListField("elems", [], SignedByteField("elem", 0), count_from=lambda p: p.n_elems,
                       max_count=MAX_WIRE_ELEMS),
    ]

    def mysummary(self) -> str:
        return self.sprintf(
            "DCIA model %DCIA.model_id% v%DCIA.model_version% layer %DCIA.next_layer% "
            "req %DCIA.request_id% [%DCIA.flags%] n=%DCIA.n_elems%"
        )


class DCIAHeader(Packet):
    """The 16-byte DCIA header alone, its fields those of :class:`DCIA` (read by ``peek``)."""

    name = "DCIA header"
    fields_desc = [ShortField("n_elems", 0) if f.name == "n_elems" else f
                   for f in DCIA.fields_desc if f.name != "elems"]


bind_layers(UDP, DCIA, dport=DCIA_UDP_PORT)

HEADER_FIELDS: list[tuple[str, int]] = [
    (f.name, int(8 * f.sz)) for f in DCIA.fields_desc if f.name != "elems"
]
"""The header's (field name, bit width) pairs in wire order, for checks against the P4."""


def tensor_packet(
    *,
    src_mac: str,
    dst_mac: str,
    src_ip: str,
    dst_ip: str,
    model_id: int,
    model_version: int,
    request_id: int,
    elems: Sequence[int],
    next_layer: int = 0,
    flags: int = 0,
    sport: int = DCIA_UDP_PORT,
) -> Ether:
    """An Ethernet frame carrying a DCIA tensor, ready for ``sendp``."""
    if len(elems) > MAX_WIRE_ELEMS:
        raise WireFormatError(
            f"a DCIA packet carries at most {MAX_WIRE_ELEMS} elements, got {len(elems)}"
        )
    bad = [v for v in elems if not -128 <= v <= 127]
    if bad:
        raise WireFormatError(f"tensor elements must be int8, got {bad[:3]}")
    return (
        Ether(src=src_mac, dst=dst_mac)
        / IP(src=src_ip, dst=dst_ip)
        / UDP(sport=sport, dport=DCIA_UDP_PORT)
        / DCIA(
            flags=flags,
            model_id=model_id,
            model_version=model_version,
            next_layer=next_layer,
            request_id=request_id,
            elems=list(elems),
        )
    )


MAX_FUSION_MEMBERS = 8
"""Members a fusion group may have (2 .. 8): the output's ``reserved`` byte is their bitmap."""
FLUSH_MEMBER = 0xF
"""Member index of a flush packet: no tensor (``n_elems`` 0), it releases the timed-out
group of the slot its ``request_id`` selects (docs/wire-format.md, fusion)."""


def fusion_field(member: int, members: int) -> int:
    """The ``reserved`` byte of a fusion member: ``member`` in the high nibble, the group
    size in the low one.

    >>> hex(fusion_field(1, 3)), hex(fusion_field(FLUSH_MEMBER, 0))
    ('0x13', '0xf0')
    """
    member_ok = 2 <= members <= MAX_FUSION_MEMBERS and 0 <= member < members
    if not (member_ok or (member == FLUSH_MEMBER and 0 <= members <= 0xF)):
        raise WireFormatError(
            f"fusion member {member} of {members}: a group has 2..{MAX_FUSION_MEMBERS} members "
            f"numbered from 0 (or member {FLUSH_MEMBER}, a flush)")
    return (member << 4) | members


def fusion_member(reserved: int) -> tuple[int, int]:
    """(member index, group size) of a ``FUSE`` packet's ``reserved`` byte (unchecked).

    >>> fusion_member(0x13)
    (1, 3)
    """
    return reserved >> 4, reserved & 0xF


# --------------------------------------------------------------- the fast path --
# The end hosts build and read a packet per request; scapy's layer costs about 0.1 ms per
# build or parse at full speed, ten times that on an edge at a tenth of the machine
# (bench/edge_path_bench.py). The same header, packed with ``struct`` in a format derived
# from the layer's fields (one definition of the wire format; tests compare them byte for
# byte).

_STRUCT_CODES = {8: "B", 16: "H", 32: "I"}
HEADER_STRUCT = struct.Struct("!" + "".join(_STRUCT_CODES[bits] for _, bits in HEADER_FIELDS))
"""The 16-byte header as ``struct`` packs it: HEADER_FIELDS' widths, network byte order."""
assert HEADER_STRUCT.size == HEADER_BYTES


class Header(NamedTuple):
    """The header fields of a payload, read with ``struct`` (``header``): as ``peek`` gives
    them, as plain integers."""

    ver: int
    flags: int
    model_id: int
    model_version: int
    next_layer: int
    net_layers: int
    request_id: int
    n_elems: int
    status: int
    reserved: int


assert Header._fields == tuple(name for name, _ in HEADER_FIELDS)


def pack(*, model_id: int, model_version: int, request_id: int, elems: Sequence[int],
         next_layer: int = 0, net_layers: int = 0, flags: int = 0, status: int = 0,
         reserved: int = 0) -> bytes:
    """``bytes(DCIA(...))`` of these fields, without scapy: the header and the int8 tensor.

    >>> pack(model_id=7, model_version=2, request_id=42, elems=[1, -2, 3]) == bytes(
    ...     DCIA(model_id=7, model_version=2, request_id=42, elems=[1, -2, 3]))
    True
    """
    if len(elems) > MAX_WIRE_ELEMS:
        raise WireFormatError(
            f"a DCIA packet carries at most {MAX_WIRE_ELEMS} elements, got {len(elems)}")
    try:
        tensor = array("b", elems).tobytes()
        return HEADER_STRUCT.pack(DCIA_VERSION, int(flags), model_id, model_version, next_layer,
                                  net_layers, request_id, len(elems), int(status),
                                  reserved) + tensor
    except (OverflowError, struct.error) as exc:
        raise WireFormatError(f"a DCIA field or element out of range: {exc}") from None


def header(payload: bytes) -> Header:
    """``peek`` without scapy: the header fields of any payload (missing bytes read as 0)."""
    head = bytes(payload[:HEADER_BYTES])
    if len(head) < HEADER_BYTES:
        head = head.ljust(HEADER_BYTES, b"\0")
    return Header._make(HEADER_STRUCT.unpack(head))


def elements(payload: bytes) -> list[int]:
    """The int8 tensor of a well-formed payload (``malformation`` found nothing)."""
    return array("b", bytes(payload[HEADER_BYTES:])).tolist()


def peek(payload: bytes) -> DCIAHeader:
    """The header fields of any UDP payload, however short or malformed (missing bytes read as 0)."""
    return DCIAHeader(bytes(payload[:HEADER_BYTES]).ljust(HEADER_BYTES, b"\0"))


def is_answer(payload: bytes) -> bool:
    """Whether a payload is an answer (``RESULT`` or ``ERROR``) rather than a tensor on its way."""
    return bool(header(payload).flags & (Flag.RESULT | Flag.ERROR))


def malformation(data: bytes | DCIA) -> str | None:
    """Why a switch would call this DCIA payload malformed, or None if it is well formed.

    The rules of p4src/dcia.p4: a header cut short, unknown version, more than
    MAX_WIRE_ELEMS elements, a tensor shorter than n_elems (truncated) or bytes after it.
    """
    raw = bytes(data)
    if len(raw) < HEADER_BYTES:
        return f"{len(raw)} bytes, shorter than the {HEADER_BYTES}-byte header"
    head = header(raw)
    if head.ver != DCIA_VERSION:
        return f"DCIA version {head.ver}, expected {DCIA_VERSION}"
    if head.n_elems > MAX_WIRE_ELEMS:
        return f"{head.n_elems} elements, more than the maximum {MAX_WIRE_ELEMS}"
    present = len(raw) - HEADER_BYTES
    if present < head.n_elems:
        return f"truncated: header says {head.n_elems} elements, {present} present"
    if present > head.n_elems:
        return f"{present - head.n_elems} bytes after the {head.n_elems}-element tensor"
    return None


def decode(payload: bytes) -> DCIA:
    """The DCIA packet of a well-formed payload; WireFormatError naming what is wrong otherwise."""
    problem = malformation(payload)
    if problem:
        raise WireFormatError(f"malformed DCIA payload: {problem}")
    return DCIA(payload)
