"""The hosts' fast path (dcia.wire.pack, header, elements; hosts.messages): the same bytes
and the same fields as the scapy layer, which stays the one definition of the format."""

import numpy as np
import pytest

from dcia.errors import WireFormatError
from dcia.wire import (
    DCIA,
    HEADER_STRUCT,
    MAX_WIRE_ELEMS,
    Flag,
    Header,
    elements,
    header,
    is_answer,
    malformation,
    pack,
    peek,
)
from hosts import messages

FIELDS = [name for name in Header._fields if name not in ("ver", "n_elems")]


def random_fields(rng):
    return dict(flags=int(rng.integers(0, 128)), model_id=int(rng.integers(0, 1 << 16)),
                model_version=int(rng.integers(0, 1 << 16)), next_layer=int(rng.integers(0, 256)),
                net_layers=int(rng.integers(0, 256)), request_id=int(rng.integers(0, 1 << 32)),
                status=int(rng.integers(0, 256)), reserved=int(rng.integers(0, 256)))


def test_pack_is_the_scapy_layer_byte_for_byte():
    rng = np.random.default_rng(0)
    for n in [0, 1, 2, 16, 17, 255, 256, MAX_WIRE_ELEMS]:
        for _ in range(20):
            fields = random_fields(rng)
            elems = rng.integers(-128, 128, n).tolist()
            assert pack(elems=elems, **fields) == bytes(DCIA(elems=elems, **fields))


def test_extremes_pack_as_the_scapy_layer():
    fields = dict(flags=0xFF, model_id=0xFFFF, model_version=0xFFFF, next_layer=255,
                  net_layers=255, request_id=(1 << 32) - 1, status=255, reserved=255)
    elems = [-128, 127, 0, -1]
    assert pack(elems=elems, **fields) == bytes(DCIA(elems=elems, **fields))


def test_header_reads_what_peek_reads_of_any_payload():
    rng = np.random.default_rng(1)
    raw = bytes(DCIA(elems=[1, -2, 3], **random_fields(rng)))
    for payload in [raw, raw[:10], raw[:0], raw + b"\x07", bytes(rng.integers(0, 256, 40, dtype=np.uint8))]:
        scapy_head, fast = peek(payload), header(payload)
        assert fast == tuple(int(getattr(scapy_head, name)) for name in Header._fields)


def test_elements_and_the_format_are_those_of_the_layer():
    raw = bytes(DCIA(model_id=3, elems=[5, -128, 127, 0]))
    assert elements(raw) == DCIA(raw).elems == [5, -128, 127, 0]
    assert HEADER_STRUCT.size == 16 and HEADER_STRUCT.format == "!BBHHBBIHBB"


@pytest.mark.parametrize("elems,fields", [
    ([128], {}), ([-129], {}), ([0] * (MAX_WIRE_ELEMS + 1), {}), ([0], {"request_id": 1 << 32}),
    ([0], {"model_id": -1}),
])
def test_pack_refuses_what_does_not_fit(elems, fields):
    with pytest.raises(WireFormatError):
        pack(**{"model_id": 1, "model_version": 1, "request_id": 1, **fields}, elems=elems)


def test_the_hosts_messages_are_built_and_read_on_the_fast_path():
    req = messages.tensor_request(model_id=1, version=2, request_id=9, next_layer=1,
                                  elems=np.array([3, -4], dtype=np.int64).tolist(), flags=Flag.FUSE,
                                  reserved=0x12)
    assert req == bytes(DCIA(flags=Flag.FUSE, model_id=1, model_version=2, next_layer=1,
                             request_id=9, reserved=0x12, elems=[3, -4]))
    ans = messages.result_answer(messages.parse(req), elems=[7, 8])
    head, elems, problem = messages.answer(ans)
    assert (head.flags, head.request_id, elems, problem) == (Flag.RESULT, 9, [7, 8], None)
    assert is_answer(ans) and not is_answer(req)
    head, elems, problem = messages.answer(ans[:-1])
    assert elems == [] and problem == malformation(ans[:-1]) and problem.startswith("truncated")
