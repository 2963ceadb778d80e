"""DCIA messages as the end hosts see them: UDP payloads to and from the scapy layer.

The edge and the cloud exchange the DCIA header and tensor as a UDP payload (the kernel
adds Ethernet, IPv4 and UDP); this module is the one place where they turn into bytes
and back: built with dcia.wire's ``pack`` (``struct``, byte for byte the scapy layer's
bytes, a tenth of its cost), answers read on the edge's fast path with ``answer``, anything
else parsed through the scapy layer.

    >>> req = tensor_request(model_id=1, version=1, request_id=7, next_layer=1, elems=[1, -2])
    >>> ans = result_answer(parse(req), elems=[5, 9])
    >>> msg = parse(ans)
    >>> Flag(int(msg.flags)), msg.request_id, msg.elems
    (<Flag.RESULT: 1>, 7, [5, 9])
"""

from __future__ import annotations

from collections.abc import Sequence

from dcia.wire import DCIA, Flag, Header, Status, elements, header, malformation, pack, peek


def tensor_request(*, model_id: int, version: int, request_id: int, next_layer: int,
                   elems: Sequence[int], flags: int = 0, reserved: int = 0) -> bytes:
    """The payload of a tensor on its way from the edge to the next stage (``reserved``:
    a fusion member's index and group size, hosts.fusion)."""
    return pack(flags=flags, model_id=model_id, model_version=version, next_layer=next_layer,
                request_id=request_id, reserved=reserved, elems=elems)


def parse(payload: bytes) -> DCIA:
    """The DCIA layer of a UDP payload (check it with ``dcia.wire.malformation``)."""
    return DCIA(payload)


def answer(payload: bytes) -> tuple[Header, list[int], str | None]:
    """An answer as the edge reads it, without scapy: its header, its tensor, and why it is
    malformed (None: well formed; the tensor is then complete, else empty).

    >>> head, elems, problem = answer(tensor_request(model_id=1, version=1, request_id=7,
    ...                                              next_layer=1, elems=[5, -9]))
    >>> head.request_id, elems, problem
    (7, [5, -9], None)
    """
    problem = malformation(payload)
    return header(payload), [] if problem else elements(payload), problem


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
    head = peek(payload)
    return bytes(DCIA(flags=Flag.ERROR, model_id=head.model_id, model_version=head.model_version,
                      next_layer=head.next_layer, net_layers=head.net_layers,
                      request_id=head.request_id, status=status, elems=[]))
