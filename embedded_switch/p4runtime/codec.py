"""P4Runtime bytestrings and match fields <-> the executor's integers and match values.

The server speaks canonical bytestrings (the shortest big-endian string, at least one
byte) and accepts any longer string whose value fits the P4Info bitwidth, as the spec's
Bytestrings section asks. Values wider than the field are refused with INVALID_ARGUMENT,
the code BMv2's server uses.

    >>> encode_uint(0x0a000001)
    b'\\n\\x00\\x00\\x01'
    >>> decode_uint(b"\\x00\\x00\\x63", 12, "port")
    99
    >>> encode_uint(0)
    b'\\x00'
"""

from __future__ import annotations

from dataclasses import dataclass

from finsy.proto import p4r

from embedded_switch.match import Exact, Lpm, OptionalMatch, Range, Ternary
from embedded_switch.p4runtime.status import invalid, show_bytes

MatchValue = Exact | Lpm | Ternary | Range | OptionalMatch

#: Match kinds that need a priority (P4Runtime: TERNARY, RANGE, OPTIONAL).
PRIORITY_KINDS = frozenset({"ternary", "range", "optional"})


@dataclass(frozen=True)
class MatchField:
    """One match field of a table as the P4Info declares it.

    `executor_kind` is the field's kind in the BMv2 JSON when it differs: p4c writes
    `optional` fields as `ternary`, so their values travel as Ternary with a full mask
    (or a zero mask for the wildcard).
    """

    id: int
    name: str
    bitwidth: int
    kind: str  # exact | lpm | ternary | range | optional
    executor_kind: str = ""
    executor_bitwidth: int = 0  # the BMv2 JSON's width where it differs (keys on expressions, slices, errors)

    @property
    def optional_as_ternary(self) -> bool:
        return self.kind == "optional" and self.executor_kind == "ternary"


def decode_uint(data: bytes, bitwidth: int, what: str) -> int:
    """The unsigned value of a P4Runtime bytestring for a `bit<bitwidth>` field.

    Leading zero bytes are accepted (non-canonical but valid); an empty string or a
    value that needs more than `bitwidth` bits is refused, showing only the start of a
    long value (a request may carry megabytes where a field takes a few bits).

    >>> decode_uint(b"\\x01\\x63", 8, "f")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    embedded_switch...P4RuntimeError: INVALID_ARGUMENT: f: value 0x0163 does not fit in 8 bits
    """
    if not data:
        raise invalid(f"{what}: empty bytestring (send at least one byte)")
    significant = data.lstrip(b"\0")
    if len(significant) > (bitwidth + 7) // 8 or (
        significant and int.from_bytes(significant, "big").bit_length() > bitwidth
    ):
        raise invalid(f"{what}: value {show_bytes(significant)} does not fit in {bitwidth} bits")
    return int.from_bytes(significant, "big")


def encode_uint(value: int) -> bytes:
    """The canonical bytestring of a non-negative integer (shortest, at least 1 byte)."""
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


def dont_care(field: MatchField) -> MatchValue:
    """What an omitted match field means (`exact` has no don't-care)."""
    if field.optional_as_ternary:
        return Ternary(0, 0)
    match field.kind:
        case "lpm":
            return Lpm(0, 0)
        case "ternary":
            return Ternary(0, 0)
        case "range":
            return Range(0, (1 << field.bitwidth) - 1)
        case "optional":
            return OptionalMatch(None)
    raise invalid(f"match field '{field.name}' is {field.kind} and cannot be omitted")


def decode_field_match(field: MatchField, msg: p4r.FieldMatch) -> MatchValue:
    """A FieldMatch message as the executor's match value, checked as the spec asks."""
    kind = msg.WhichOneof("field_match_type")
    if kind != field.kind:
        raise invalid(
            f"match field '{field.name}' is {field.kind} but the request gives {kind}"
        )
    width, name = field.bitwidth, f"match field '{field.name}'"
    if field.executor_bitwidth and (field.executor_bitwidth + 7) // 8 != (width + 7) // 8:
        # BMv2 takes the value in the P4Info's bytes and refuses it unless they are the JSON's
        raise invalid(f"{name} is {width} bits in the P4Info but {field.executor_bitwidth} in the BMv2 JSON:"
                      " no entry can match on it")
    match kind:
        case "exact":
            return Exact(decode_uint(msg.exact.value, width, name))
        case "lpm":
            value = decode_uint(msg.lpm.value, width, name)
            prefix_len = msg.lpm.prefix_len
            if not 0 < prefix_len <= width:
                raise invalid(
                    f"{name}: prefix length {prefix_len} is not in 1..{width}"
                    " (omit the field for a don't-care match)"
                )
            if value & ((1 << (width - prefix_len)) - 1):
                raise invalid(
                    f"{name}: value {value:#x} has bits set beyond the /{prefix_len} prefix"
                )
            return Lpm(value, prefix_len)
        case "ternary":
            value = decode_uint(msg.ternary.value, width, name)
            mask = decode_uint(msg.ternary.mask, width, f"{name} mask")
            if mask == 0:
                raise invalid(f"{name}: mask is 0 (omit the field for a don't-care match)")
            if value & ~mask:
                raise invalid(f"{name}: value {value:#x} has bits outside mask {mask:#x}")
            return Ternary(value, mask)
        case "range":
            low = decode_uint(msg.range.low, width, f"{name} low")
            high = decode_uint(msg.range.high, width, f"{name} high")
            if low > high:
                raise invalid(f"{name}: low {low:#x} is above high {high:#x}")
            if low == 0 and high == (1 << width) - 1:
                raise invalid(f"{name}: full range (omit the field for a don't-care match)")
            return Range(low, high)
        case "optional":
            value = decode_uint(msg.optional.value, width, name)
            if field.optional_as_ternary:
                return Ternary(value, (1 << width) - 1)
            return OptionalMatch(value)
    raise invalid(f"{name}: unsupported match kind {kind}")


def encode_field_match(field: MatchField, value: MatchValue) -> p4r.FieldMatch | None:
    """The FieldMatch for a match value, or None for a don't-care (which is omitted)."""
    msg = p4r.FieldMatch(field_id=field.id)
    if field.optional_as_ternary and isinstance(value, Ternary):
        value = OptionalMatch(value.value if value.mask else None)
    match value:
        case Exact(v):
            msg.exact.value = encode_uint(v)
        case Lpm(v, prefix_len):
            if prefix_len == 0:
                return None
            msg.lpm.value = encode_uint(v)
            msg.lpm.prefix_len = prefix_len
        case Ternary(v, mask):
            if mask == 0:
                return None
            msg.ternary.value = encode_uint(v)
            msg.ternary.mask = encode_uint(mask)
        case Range(low, high):
            if low == 0 and high == (1 << field.bitwidth) - 1:
                return None
            msg.range.low = encode_uint(low)
            msg.range.high = encode_uint(high)
        case OptionalMatch(v):
            if v is None:
                return None
            msg.optional.value = encode_uint(v)
        case _:
            raise TypeError(f"cannot encode match value {value!r} for '{field.name}'")
    return msg


def decode_match(
    fields: tuple[MatchField, ...], msgs, *, table: str
) -> list[MatchValue]:
    """A TableEntry's `match` as the executor's key: one value per field, in order."""
    by_id = {field.id: field for field in fields}
    given: dict[int, p4r.FieldMatch] = {}
    for msg in msgs:
        if msg.field_id not in by_id:
            raise invalid(f"table '{table}' has no match field with id {msg.field_id}")
        if msg.field_id in given:
            raise invalid(
                f"match field '{by_id[msg.field_id].name}' appears twice in the request"
            )
        given[msg.field_id] = msg
    return [
        decode_field_match(field, given[field.id]) if field.id in given else dont_care(field)
        for field in fields
    ]


def encode_match(fields: tuple[MatchField, ...], key) -> list[p4r.FieldMatch]:
    """The executor's key as a TableEntry `match`, don't-care fields omitted."""
    encoded = (encode_field_match(field, value) for field, value in zip(fields, key))
    return [msg for msg in encoded if msg is not None]


#: The executor's meter rates: [(cir, cburst), (pir, pburst)], or None for "always GREEN".
MeterRates = list[tuple[int, int]] | None


def decode_meter_config(msg: p4r.MeterConfig, what: str) -> MeterRates:
    """A MeterConfig as executor rates (units per second and burst sizes, as P4Runtime)."""
    values = {"cir": msg.cir, "cburst": msg.cburst, "pir": msg.pir, "pburst": msg.pburst}
    negative = [name for name, v in values.items() if v < 0]
    if negative:
        raise invalid(f"{what}: {', '.join(negative)} must not be negative")
    if msg.eburst:
        raise invalid(f"{what}: eburst is for srTCM meters; the switch meters are trTCM")
    return [(msg.cir, msg.cburst), (msg.pir, msg.pburst)]


def encode_meter_config(rates: MeterRates) -> p4r.MeterConfig | None:
    """The MeterConfig for executor rates; None for the default (unconfigured) meter."""
    if not rates:
        return None
    (cir, cburst), (pir, pburst) = rates
    return p4r.MeterConfig(cir=cir, cburst=cburst, pir=pir, pburst=pburst)
