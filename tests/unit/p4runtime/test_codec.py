"""Bytestrings and match fields: the spec's valid and invalid encodings, and round trips."""

import pytest
from finsy.proto import p4r

from embedded_switch.match import Exact, Lpm, OptionalMatch, Range, Ternary
from embedded_switch.p4runtime.codec import (
    MatchField,
    decode_match,
    decode_meter_config,
    decode_uint,
    dont_care,
    encode_match,
    encode_meter_config,
    encode_uint,
)
from embedded_switch.p4runtime.status import Code, P4RuntimeError

DST = MatchField(1, "hdr.ipv4.dst_addr", 32, "lpm")
MAC = MatchField(2, "hdr.ethernet.dst_addr", 48, "ternary")
TTL = MatchField(3, "hdr.ipv4.ttl", 8, "range")
PROTO = MatchField(4, "hdr.ipv4.protocol", 8, "optional")
PORT = MatchField(5, "std.ingress_port", 9, "exact")
FIELDS = (DST, MAC, TTL, PROTO, PORT)


def rejects(code=Code.INVALID_ARGUMENT):
    """Context manager: the call raises P4RuntimeError with `code`."""

    class _Rejects:
        def __enter__(self):
            return self

        def __exit__(self, kind, exc, tb):
            assert kind is P4RuntimeError, f"expected {Code.Name(code)}, got {kind}"
            assert exc.code == code, exc
            return True

    return _Rejects()


# The spec's table of valid encodings (unsigned rows): all decode to the value.
@pytest.mark.parametrize(
    ("width", "data", "value"),
    [
        (8, b"\x63", 99),
        (16, b"\x00\x63", 99),
        (16, b"\x63", 99),
        (16, b"\x30\x64", 12388),
        (16, b"\x00\x30\x64", 12388),
        (12, b"\x00\x63", 99),
        (12, b"\x63", 99),
        (12, b"\x00\x00\x63", 99),
        (1, b"\x00\x00", 0),
    ],
)
def test_valid_bytestrings_decode_including_leading_zeros(width, data, value):
    assert decode_uint(data, width, "f") == value


# The spec's table of invalid encodings (unsigned rows).
@pytest.mark.parametrize(
    ("width", "data"),
    [(8, b"\x01\x63"), (8, b""), (16, b"\x01\x00\x63"), (12, b"\x10\x63"),
     (12, b"\x01\x00\x63"), (12, b"\x00\x40\x63")],
)
def test_too_wide_or_empty_bytestrings_are_invalid_argument(width, data):
    with rejects():
        decode_uint(data, width, "f")


@pytest.mark.parametrize("value", [0, 1, 0x63, 0xFF, 0x100, 0x0A000001, 2**48 - 1])
def test_encoding_is_the_shortest_string_and_round_trips(value):
    data = encode_uint(value)
    assert len(data) == max(1, (value.bit_length() + 7) // 8)
    assert decode_uint(data, 48, "f") == value


def fm(field, **kind):
    return p4r.FieldMatch(field_id=field.id, **kind)


def test_a_full_key_decodes_in_field_order_and_encodes_back():
    msgs = [
        fm(PORT, exact=p4r.FieldMatch.Exact(value=b"\x01\x02")),
        fm(DST, lpm=p4r.FieldMatch.LPM(value=b"\x0a\x00\x00\x00", prefix_len=8)),
        fm(MAC, ternary=p4r.FieldMatch.Ternary(value=b"\x01", mask=b"\xff")),
        fm(TTL, range=p4r.FieldMatch.Range(low=b"\x05", high=b"\x10")),
        fm(PROTO, optional=p4r.FieldMatch.Optional(value=b"\x06")),
    ]
    key = decode_match(FIELDS, msgs, table="t")
    assert key == [Lpm(0x0A000000, 8), Ternary(1, 0xFF), Range(5, 16), OptionalMatch(6), Exact(0x102)]
    assert sorted(m.field_id for m in encode_match(FIELDS, key)) == [1, 2, 3, 4, 5]
    assert encode_match(FIELDS, key)[0].lpm.value == b"\x0a\x00\x00\x00"


def test_omitted_fields_are_dont_care_and_stay_omitted_on_read():
    key = decode_match(FIELDS, [fm(PORT, exact=p4r.FieldMatch.Exact(value=b"\x01"))], table="t")
    assert key == [Lpm(0, 0), Ternary(0, 0), Range(0, 255), OptionalMatch(None), Exact(1)]
    assert [m.field_id for m in encode_match(FIELDS, key)] == [PORT.id]


def test_exact_fields_cannot_be_omitted():
    with rejects():
        decode_match(FIELDS, [], table="t")
    with rejects():
        dont_care(PORT)


def test_non_canonical_values_are_accepted_and_read_back_canonical():
    key = decode_match(
        (PORT,), [fm(PORT, exact=p4r.FieldMatch.Exact(value=b"\x00\x00\x01"))], table="t"
    )
    assert key == [Exact(1)]
    assert encode_match((PORT,), key)[0].exact.value == b"\x01"


@pytest.mark.parametrize(
    "msg",
    [
        fm(PORT, exact=p4r.FieldMatch.Exact(value=b"\x02\x00")),  # 10 bits in a 9-bit field
        fm(PORT, lpm=p4r.FieldMatch.LPM(value=b"\x01", prefix_len=9)),  # wrong kind
        fm(DST, lpm=p4r.FieldMatch.LPM(value=b"\x0a\x00\x00\x01", prefix_len=8)),  # host bits
        fm(DST, lpm=p4r.FieldMatch.LPM(value=b"\x00", prefix_len=0)),  # don't care not omitted
        fm(DST, lpm=p4r.FieldMatch.LPM(value=b"\x00", prefix_len=33)),
        fm(MAC, ternary=p4r.FieldMatch.Ternary(value=b"\x03", mask=b"\x01")),  # value & ~mask
        fm(MAC, ternary=p4r.FieldMatch.Ternary(value=b"\x00", mask=b"\x00")),
        fm(TTL, range=p4r.FieldMatch.Range(low=b"\x10", high=b"\x05")),
        fm(TTL, range=p4r.FieldMatch.Range(low=b"\x00", high=b"\xff")),  # full range
        fm(PROTO, optional=p4r.FieldMatch.Optional(value=b"\x01\x00")),
        p4r.FieldMatch(field_id=99, exact=p4r.FieldMatch.Exact(value=b"\x01")),
    ],
)
def test_malformed_field_matches_are_invalid_argument(msg):
    others = [fm(PORT, exact=p4r.FieldMatch.Exact(value=b"\x01"))] if msg.field_id != PORT.id else []
    with rejects():
        decode_match(FIELDS, [msg, *others], table="t")


def test_a_field_given_twice_is_invalid():
    exact = fm(PORT, exact=p4r.FieldMatch.Exact(value=b"\x01"))
    with rejects():
        decode_match((PORT,), [exact, exact], table="t")


def test_meter_configs_round_trip_and_default_is_none():
    config = p4r.MeterConfig(cir=100, cburst=10, pir=200, pburst=20)
    rates = decode_meter_config(config, "m")
    assert rates == [(100, 10), (200, 20)]
    assert encode_meter_config(rates) == config
    assert encode_meter_config(None) is None
    with rejects():
        decode_meter_config(p4r.MeterConfig(cir=-1), "m")


def test_optional_fields_that_bmv2_stores_as_ternary_travel_as_full_masks():
    proto = MatchField(4, "hdr.ipv4.protocol", 8, "optional", executor_kind="ternary")
    key = decode_match((proto,), [fm(proto, optional=p4r.FieldMatch.Optional(value=b"\x06"))], table="t")
    assert key == [Ternary(6, 0xFF)]
    assert encode_match((proto,), key)[0].optional.value == b"\x06"
    assert decode_match((proto,), [], table="t") == [Ternary(0, 0)]
    assert encode_match((proto,), [Ternary(0, 0)]) == []


def test_a_huge_value_is_refused_without_echoing_it():
    huge = b"\x00\x00" + b"\x7f" * 5_000_000
    with pytest.raises(P4RuntimeError) as error:
        decode_uint(huge, 9, "parameter 'port'")
    message = error.value.message
    assert error.value.code == Code.INVALID_ARGUMENT
    assert "0x7f7f7f7f7f7f7f7f... (5000000 bytes)" in message and "9 bits" in message
    assert len(message) < 100


def test_leading_zeros_do_not_count_against_the_width():
    assert decode_uint(b"\x00" * 1000 + b"\x01\xff", 9, "port") == 0x1FF
    with rejects():
        decode_uint(b"\x00" * 1000 + b"\x02\x00", 9, "port")
