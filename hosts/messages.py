"""DCIA messages as the end hosts see them: UDP payloads to and from the scapy layer.

The edge and the cloud exchange the DCIA header and tensor as a UDP payload (the kernel
adds Ethernet, IPv4 and UDP); this module is the one place where they turn into bytes
and back, through dcia.wire's scapy layer.

    >>> req = tensor_request(model_id=1, version=1, request_id=7, next_layer=1, elems=[1, -2])
    >>> ans = result_answer(parse(req), elems=[5, 9])
    >>> msg = parse(ans)
    >>> Flag(int(msg.flags)), msg.request_id, msg.elems
    (<Flag.RESULT: 1>, 7, [5, 9])
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from dcia.wire import DCIA, HEADER_BYTES, Flag, Status

def tensor_request(*, model_id: int, version: int, request_id: int, next_layer: int,
                   elems: Sequence[int], flags: int = 0) -> bytes:
    """The payload of a tensor on its way from the edge to the next stage."""
    return bytes(DCIA(flags=flags, model_id=model_id, model_version=version,
                      next_layer=next_layer, request_id=request_id, elems=[int(v) for v in elems]))


def parse(payload: bytes) -> DCIA:
    """The DCIA layer of a UDP payload (check it with ``dcia.wire.malformation``)."""
    return DCIA(payload)


def request_id_of(payload: bytes) -> int:
    """The request id of a payload, even a malformed one (0 if too short to hold one)."""
    return struct.unpack_from("!I", payload, 8)[0] if len(payload) >= 12 else 0


def result_answer(request: DCIA, *, elems: Sequence[int], next_layer: int | None = None) -> bytes:
    """The final answer to ``request``: ``RESULT`` with the model's output tensor."""
    return bytes(DCIA(
        flags=Flag.RESULT, model_id=request.model_id, model_version=request.model_version,
        next_layer=request.next_layer if next_layer is None else next_layer,
        net_layers=request.net_layers, request_id=request.request_id, status=Status.OK,
        elems=[int(v) for v in elems],
    ))


def error_answer(payload: bytes, status: int) -> bytes:
    """An ``ERROR`` answer with ``status`` to whatever ``payload`` was, as far as it reads."""
    head = payload[:HEADER_BYTES].ljust(HEADER_BYTES, b"\0")
    _, _, model_id, version, next_layer, net_layers = struct.unpack_from("!BBHHBB", head)
    return bytes(DCIA(flags=Flag.ERROR, model_id=model_id, model_version=version,
                      next_layer=next_layer, net_layers=net_layers,
                      request_id=request_id_of(payload), status=status, elems=[]))
