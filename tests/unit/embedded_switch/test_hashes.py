"""Hash algorithms under their v1model names, checked against published check values."""
import pytest

from embedded_switch.hashes import ALGORITHMS, pack_bits

CHECK = b"123456789"


@pytest.mark.parametrize("algo,value", [
    ("crc32", 0xCBF43926), ("crc16", 0xBB3D), ("crcCCITT", 0x29B1), ("crc8_custom", 0xF4),
    ("identity", int.from_bytes(b"12345678", "big")), ("xor16", 0x3132 ^ 0x3334 ^ 0x3536 ^ 0x3738 ^ 0x3900),
])
def test_check_values(algo, value):
    assert ALGORITHMS[algo](CHECK) == value


def test_internet_checksum_of_an_ipv4_header():
    header = bytes.fromhex("450000730000400040110000c0a80001c0a800c7")
    assert ALGORITHMS["csum16"](header) == 0xB861
    assert ALGORITHMS["csum16"](b"\x01") == 0xFEFF   # odd length: padded with a zero byte


def test_fields_are_packed_bit_by_bit_then_padded():
    assert pack_bits([(4, 4), (5, 4), (0x1FFF, 13), (1, 3)]) == bytes([0x45, 0xFF, 0xF9])
    assert pack_bits([(0x1, 1)]) == b"\x80"
