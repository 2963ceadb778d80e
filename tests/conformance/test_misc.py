"""misc.p4: stack push/pop, run-time stack index, setValid/setInvalid, header union,
header assignment, hash() with each algorithm, random, log_msg and assert."""
import zlib

import pytest

from embedded_switch.hashes import csum16
from tests.conformance.loader import eth, load


@pytest.fixture
def sw():
    return load("misc")


def crc16_arc(data: bytes) -> int:
    crc = 0
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def frame(op=0, idx=0, v=0, sel=0) -> bytes:
    union = b"\xA1\xA2" if sel == 0 else b"\xB1"
    return eth(0x1234) + bytes([op, idx, v, sel]) + b"\x11\x22" + union


def run(sw, **kw) -> tuple[bytes, dict]:
    [(port, data)] = sw.process(0, frame(**kw))
    assert port == 1
    body = data[18:]
    out = body[-15:]
    res = dict(crc16=int.from_bytes(out[0:2], "big"), crc32=int.from_bytes(out[2:6], "big"),
               csum16=int.from_bytes(out[6:8], "big"), identity=int.from_bytes(out[8:10], "big"),
               xor16=int.from_bytes(out[10:12], "big"), rnd=out[12], union_valid=out[13], copy_v=out[14])
    return body[:-15], res


def test_plain(sw):
    headers, r = run(sw, op=0, idx=1, v=2)
    assert headers == b"\x11\x22\xA1\xA2\x11"      # items, u.a, copy = items[0]
    assert r["union_valid"] == 2 and r["copy_v"] == 0x11 and r["rnd"] == 9


def test_push_and_pop(sw):
    headers, r = run(sw, op=1, v=0x33)
    assert headers == b"\x33\x11\x22\xA1\xA2\x33"
    headers, _ = run(sw, op=2)
    assert headers == b"\x22\xA1\xA2\x22"


def test_runtime_index_set_invalid_and_union(sw):
    headers, _ = run(sw, op=3, idx=1, v=0x99)
    assert headers == b"\x11\x99\xA1\xA2\x11"
    headers, _ = run(sw, op=5)
    assert headers == b"\x11\xA1\xA2\x11"
    headers, r = run(sw, op=4, v=0x77)
    assert headers == b"\x11\x22\x77\x11" and r["union_valid"] == 1


def test_hashes(sw):
    _, r = run(sw, op=1, idx=2, v=3, sel=1)
    data = bytes([1, 2, 3])
    assert r["crc16"] == crc16_arc(data)
    assert r["crc32"] == zlib.crc32(data)
    assert r["csum16"] == csum16(data)
    assert r["identity"] == 0x0203
    assert r["xor16"] == 0x0102 ^ 0x0301


def test_failed_assert_drops_the_packet(sw):
    assert sw.process(0, frame(v=0xEE)) == []
    assert sw.stats["dropped_error"] == 1
