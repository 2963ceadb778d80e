"""Hash and checksum algorithms under the names BMv2 JSON uses (v1model `HashAlgorithm`).

Each takes the bytes of a field list (fields packed bit by bit, zero-padded to whole
bytes) and returns an unsigned integer:

>>> hex(ALGORITHMS["crc32"](b"123456789")), hex(ALGORITHMS["crc16"](b"123456789"))
('0xcbf43926', '0xbb3d')
>>> hex(ALGORITHMS["csum16"](bytes.fromhex("45000073000040004011c0a80001c0a800c7")))
'0xb861'
"""
from __future__ import annotations

import zlib
from typing import Callable


def _reflect(value: int, bits: int) -> int:
    out = 0
    for _ in range(bits):
        out = (out << 1) | (value & 1)
        value >>= 1
    return out


def _crc_table(poly: int, width: int) -> list[int]:
    top, mask = 1 << (width - 1), (1 << width) - 1
    table = []
    for dividend in range(256):
        rem = dividend << (width - 8)
        for _ in range(8):
            rem = ((rem << 1) ^ poly) if rem & top else (rem << 1)
        table.append(rem & mask)
    return table


def make_crc(width: int, poly: int, init: int, xor_out: int, reflect_in: bool,
             reflect_out: bool) -> Callable[[bytes], int]:
    """A table-driven CRC with the usual Rocksoft parameters."""
    table = _crc_table(poly, width)
    mask, shift = (1 << width) - 1, width - 8
    rin = [_reflect(b, 8) for b in range(256)] if reflect_in else list(range(256))

    def crc(data: bytes) -> int:
        rem = init
        for byte in data:
            rem = (table[(rin[byte] ^ (rem >> shift)) & 0xFF] ^ (rem << 8)) & mask
        return (_reflect(rem, width) if reflect_out else rem) ^ xor_out

    return crc


def csum16(data: bytes) -> int:
    """Internet checksum (RFC 1071): ones' complement of the ones' complement sum.

    The data as one big-endian number n (padded to whole 16-bit words) is the sum of its
    words times powers of 2**16, which is 1 modulo 0xFFFF; so folding the carries of the
    word sum gives n % 0xFFFF, except that a non-zero sum folds to 0xFFFF, never to 0.

    >>> hex(csum16(bytes.fromhex("4500003c1c4640004006" "0000" "ac100a63ac100a0c")))
    '0xb1e6'
    >>> csum16(bytes([255, 255])), csum16(b""), csum16(bytes([1]))
    (0, 65535, 65279)
    """
    n = int.from_bytes(data, "big") << (8 * (len(data) & 1))
    total = n % 0xFFFF
    if not total and n:
        total = 0xFFFF
    return ~total & 0xFFFF


def _xor(width: int) -> Callable[[bytes], int]:
    n = width // 8

    def xor(data: bytes) -> int:
        out = 0
        for i in range(0, len(data), n):
            chunk = data[i:i + n]
            out ^= int.from_bytes(chunk, "big") << (8 * (n - len(chunk)))
        return out

    return xor


def identity(data: bytes) -> int:
    """The first (up to) 8 bytes as a big-endian integer."""
    return int.from_bytes(data[:8], "big")


def _crc32(data: bytes) -> int:
    return zlib.crc32(data)


ALGORITHMS: dict[str, Callable[[bytes], int]] = {
    "crc32": _crc32,
    "crc32_custom": _crc32,
    "crc16": make_crc(16, 0x8005, 0, 0, True, True),
    "crc16_custom": make_crc(16, 0x8005, 0, 0, True, True),
    "crcCCITT": make_crc(16, 0x1021, 0xFFFF, 0, False, False),
    "crc8_custom": make_crc(8, 0x07, 0, 0, False, False),
    "csum16": csum16,
    "cksum16": csum16,
    "identity": identity,
    "xor16": _xor(16),
    "xor32": _xor(32),
}


def pack_bits(values: list[tuple[int, int]]) -> bytes:
    """Concatenate (value, width) pairs MSB first and zero-pad to whole bytes.

    >>> pack_bits([(0x4, 4), (0x5, 4), (0x1, 3)]).hex()
    '4520'
    """
    acc, nbits = 0, 0
    for value, width in values:
        acc = (acc << width) | (value & ((1 << width) - 1))
        nbits += width
    pad = -nbits % 8
    return (acc << pad).to_bytes((nbits + pad) // 8, "big")
