"""Per-packet state shared by the generated code and the switch.

The context object `Pkt`, the exceptions generated code raises, v1model's constants and
the packet trace log:

>>> p = Pkt(b"\\x00" * 14, 14)
>>> (p.off, p.plen, p.exit)
(0, 14, False)
"""
from __future__ import annotations

import logging

TRACE_LOG = logging.getLogger("embedded_switch.trace")  # per packet: parser states, tables, conditions

INSTANCE_NORMAL, INSTANCE_INGRESS_CLONE, INSTANCE_EGRESS_CLONE = 0, 1, 2
INSTANCE_RECIRC, INSTANCE_REPLICATION, INSTANCE_RESUBMIT = 4, 5, 6

CORE_ERRORS = ("NoError", "PacketTooShort", "NoMatch", "StackOutOfBounds", "HeaderTooShort", "ParserTimeout",
               "ParserInvalidArgument")


def error_codes(declared: dict[str, int]) -> dict[str, int]:
    """The `error` enum as BMv2 numbers it: the JSON's values, then each core error the
    JSON leaves out, numbered on from its largest value (BMv2's ErrorCodeMap::add_core).

    >>> error_codes({"NoError": 0, "BadKind": 1})["ParserInvalidArgument"]
    7
    """
    codes = dict(declared)
    nxt = max(codes.values(), default=-1) + 1
    for name in CORE_ERRORS:
        if name not in codes:
            codes[name], nxt = nxt, nxt + 1
    return codes

MAX_PARSER_STATES = 100_000  # a parser looping without consuming bytes ends with ParserTimeout

STANDARD_FIELDS = ("ingress_port", "egress_spec", "egress_port", "instance_type", "packet_length",
                   "mcast_grp", "egress_rid", "checksum_error", "parser_error",
                   "ingress_global_timestamp", "egress_global_timestamp", "priority",
                   "enq_timestamp", "enq_qdepth", "deq_timedelta", "deq_qdepth")
ALIAS_PREFIXES = ("intrinsic_metadata.", "queueing_metadata.", "standard_metadata.")


class ParserExit(Exception):
    """Raised by generated parser code: the parser stops with this error code."""

    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


class PacketAbort(Exception):
    """The packet cannot go on (failed assert, stack index out of range): it is dropped."""


class Pkt:
    """Per-packet context next to the field list: raw bytes, parse offset, pending operations."""

    __slots__ = ("data", "off", "exit", "clone", "resubmit", "recirc", "trunc", "digest", "ilen", "plen")

    def __init__(self, data: bytes, ilen: int):
        self.data, self.off, self.exit = data, 0, False
        self.clone = self.resubmit = self.recirc = self.trunc = self.digest = None
        self.ilen = self.plen = ilen
