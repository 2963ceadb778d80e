"""unions.p4: a stack of header unions parsed member by member, popped and pushed whole.
After pop_front the last union is invalid, as the P4 spec says (BMv2 leaves it valid)."""
import pytest

from tests.conformance.loader import eth, load

A1, B1, A2 = b"\x0a\x01", b"\x0b\x00\x02", b"\x0a\x03"


@pytest.fixture
def sw():
    return load("unions")


def run(sw, n: int, op: int, options: bytes) -> bytes:
    frame = eth(0x1234) + bytes([n, op]) + options + b"tail"
    [(port, data)] = sw.process(0, frame)
    assert port == 1
    return data[16:]


def test_members_are_parsed_in_order(sw):
    assert run(sw, 3, 0, A1 + B1 + A2) == A1 + B1 + A2 + b"tail"


def test_pop_and_push_move_whole_unions(sw):
    assert run(sw, 3, 1, A1 + B1 + A2) == B1 + A2 + b"tail"
    assert run(sw, 2, 2, B1 + A2) == b"\x0a\x77" + B1 + A2 + b"tail"


def test_a_fourth_option_overflows_the_stack(sw):
    assert run(sw, 4, 0, A1 + A1 + A1 + B1) == A1 + A1 + A1 + B1 + b"tail"

