"""parser.p4: stacks with .next/.last, lookahead, masked two-field select, verify, a
value set, advance, and each parser error reaching ingress in parser_error (a select
with no matching case and no default accepts without error, as BMv2 does)."""
import pytest

from tests.conformance.loader import eth, load

RES = 14  # res_t follows Ethernet: err, count, path, la, first, size


@pytest.fixture
def sw():
    return load("parser")


def run(sw, frame: bytes) -> tuple[bytes, bytes]:
    [(port, data)] = sw.process(0, frame)
    assert port == 1
    return data[RES:RES + 6], data[RES + 6:]


def tags(*pairs) -> bytes:
    return b"".join(bytes(p) for p in pairs)


def test_stack_loop_until_kind_zero(sw):
    res, rest = run(sw, eth(0x9000) + tags((1, 0), (2, 0), (0, 0)) + b"PAY")
    assert list(res) == [0, 3, 2, 1, 1, 3]
    assert rest == tags((1, 0), (2, 0), (0, 0)) + b"PAY"


def test_stack_overflow_is_stack_out_of_bounds(sw):
    res, rest = run(sw, eth(0x9000) + tags((1, 0), (2, 0), (3, 0), (4, 0)))
    assert list(res) == [3, 3, 2, 1, 1, 3]
    assert rest == tags((1, 0), (2, 0), (3, 0), (4, 0))


def test_truncated_stack_element_is_packet_too_short(sw):
    res, rest = run(sw, eth(0x9000) + tags((1, 0)) + b"\x05")
    assert list(res) == [1, 1, 2, 1, 1, 1]
    assert rest == tags((1, 0)) + b"\x05"


def test_lookahead_and_masked_select(sw):
    res, rest = run(sw, eth(0x9000) + b"\x80\x01")
    assert list(res) == [0, 0, 3, 0x80, 0xFF, 0]
    assert rest == b"\x80\x01"
    res, _ = run(sw, eth(0x91AB) + b"\x00")
    assert res[2] == 5


def test_verify_and_no_match(sw):
    assert list(run(sw, eth(0x9001) + tags((5, 1)))[0]) == [0, 0, 4, 0, 5, 1]
    assert run(sw, eth(0x9001) + tags((0xFF, 1)))[0][0] == 4       # BadKind
    assert run(sw, eth(0x9001) + tags((5, 3)))[0][0] == 0          # no case, no default: BMv2 accepts


def test_value_set_and_advance(sw):
    frame = eth(0x1234) + b"\xAA\xBB" + tags((9, 9))
    assert run(sw, frame)[0][2] == 1
    [name] = sw.program.value_sets
    sw.value_set_set(name, [0x1234])
    res, rest = run(sw, frame)
    assert (res[2], res[4], res[5]) == (6, 9, 1)
    assert rest == tags((9, 9))            # the advanced-over bytes are gone, as in BMv2


def test_frame_shorter_than_ethernet(sw):
    [(port, data)] = sw.process(0, b"\x01\x02\x03")
    assert data[0] == 1                      # PacketTooShort; Ethernet invalid, not emitted
    assert data[6:] == b"\x01\x02\x03"       # the unparsed bytes stay as payload
