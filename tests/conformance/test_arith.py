"""arith.p4: p4c's expression encoding executes with exact P4 bit-width semantics."""
import random

import pytest

from tests.conformance.loader import eth, load

OUT_FIELDS = [("add", 8, False), ("sub", 8, False), ("mul", 8, False), ("usadd", 8, False),
              ("ussub", 8, False), ("ssadd", 8, True), ("sssub", 8, True), ("shl", 8, False),
              ("shr", 8, False), ("sshr", 8, True), ("hi", 4, False), ("lo", 4, False), ("cat", 16, False),
              ("sext", 16, True), ("zext", 16, False), ("neg", 8, False), ("cmpl", 8, False),
              ("logic", 8, False), ("tern", 8, False), ("wide", 32, True), ("wslice", 8, False),
              ("requant", 8, False), ("sadd", 8, True), ("f_slt", 1, False), ("f_ult", 1, False),
              ("f_eq", 1, False), ("f_and", 1, False), ("f_or", 1, False), ("f_not", 1, False),
              ("f_sge", 1, False), ("f_bool", 1, False)]


def wrap_s(v: int, bits: int) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def clamp(v: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, v))


def expected(a, b, sa, sb, w, n) -> dict:
    q = wrap_s(sa * sb, 16)
    return dict(
        add=(a + b) & 255, sub=(a - b) & 255, mul=(a * b) & 255, usadd=min(a + b, 255), ussub=max(a - b, 0),
        ssadd=clamp(sa + sb, -128, 127), sssub=clamp(sa - sb, -128, 127), sadd=wrap_s(sa + sb, 8),
        shl=(a << n) & 255, shr=a >> n, sshr=sa >> n, hi=a >> 4, lo=b & 15, cat=(a << 8) | b, sext=sa,
        zext=a, neg=(-a) & 255, cmpl=~a & 255, logic=(a & b) | (a ^ 0x0F), tern=max(a, b),
        wide=wrap_s(sa * sb + w, 32), wslice=(w >> 4) & 255,
        requant=127 if q > 127 else (0x80 if q < -128 else q & 255),
        f_slt=int(sa < sb), f_ult=int(a < b), f_eq=int(a == b), f_and=int(a != 0 and b != 0),
        f_or=int(a == 0 or b == 0), f_not=int(not a > b), f_sge=int(sa >= sb), f_bool=int(w > 1000))


def decode(out: bytes) -> dict:
    v = int.from_bytes(out, "big")
    total = sum(w for _, w, _ in OUT_FIELDS)
    res = {}
    for name, width, signed in OUT_FIELDS:
        total -= width
        x = (v >> total) & ((1 << width) - 1)
        res[name] = wrap_s(x, width) if signed else x
    return res


@pytest.fixture(scope="module")
def sw():
    return load("arith")


CASES = [(0, 0, 0, 0, 0, 0), (255, 255, -128, -128, 65535, 15), (200, 100, 100, 100, 999, 1),
         (1, 2, -1, 1, 1001, 7), (0x80, 0x7F, 127, -128, 0x1234, 8), (17, 17, -3, -3, 4096, 3)]
rng = random.Random(11)
CASES += [(rng.randrange(256), rng.randrange(256), rng.randrange(-128, 128), rng.randrange(-128, 128),
           rng.randrange(65536), rng.randrange(16)) for _ in range(40)]


@pytest.mark.parametrize("a,b,sa,sb,w,n", CASES)
def test_every_operation(sw, a, b, sa, sb, w, n):
    operands = bytes([a, b, sa & 255, sb & 255]) + w.to_bytes(2, "big") + bytes([n << 4])
    frame = eth(0x1234) + operands
    [(port, data)] = sw.process(0, frame)
    assert port == 1
    assert data[:len(frame)] == frame
    assert decode(data[len(frame):len(frame) + 29]) == expected(a, b, sa, sb, w, n)
