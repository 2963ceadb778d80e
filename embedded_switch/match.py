"""Match values of table keys, and the one check that turns them into match data.

Values are plain records, one per key field, integers only; `normalize_key` checks them
against a table's key fields:

>>> [Exact(0x0800), Lpm(0x0A000000, 8), Ternary(0x10, 0xF0)]
[Exact(value=2048), Lpm(value=167772160, prefix_len=8), Ternary(value=16, mask=240)]
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from embedded_switch.errors import InvalidArgument

if TYPE_CHECKING:
    from embedded_switch.runtime import Table


@dataclass(frozen=True)
class Exact:
    value: int


@dataclass(frozen=True)
class Lpm:
    value: int
    prefix_len: int


@dataclass(frozen=True)
class Ternary:
    value: int
    mask: int


@dataclass(frozen=True)
class Range:
    low: int
    high: int


@dataclass(frozen=True)
class OptionalMatch:
    value: int | None  # None: wildcard


@dataclass(frozen=True)
class Valid:
    valid: bool


MatchValue = Exact | Lpm | Ternary | Range | OptionalMatch | Valid


def check_width(what: str, value: int, width: int) -> None:
    """Refuse a value that is not an integer of at most `width` bits."""
    if not isinstance(value, int) or isinstance(value, bool) and width != 1:
        raise InvalidArgument(f"{what}: expected an integer, got {value!r}")
    if not 0 <= value < (1 << width):
        raise InvalidArgument(f"{what}: value {value} does not fit in {width} bits "
                              f"(valid range 0..{(1 << width) - 1})")


def _expect(m: MatchValue, cls: type, what: str) -> None:
    if not isinstance(m, cls):
        raise InvalidArgument(f"{what}: expected {cls.__name__}, got {m!r}")


def _exact(m: MatchValue, width: int, what: str):
    _expect(m, Exact, what)
    check_width(what, m.value, width)
    return m.value


def _valid(m: MatchValue, width: int, what: str):
    if isinstance(m, Valid):
        return int(bool(m.valid))
    if isinstance(m, Exact) and m.value in (0, 1):
        return m.value
    raise InvalidArgument(f"{what}: expected Valid, got {m!r}")


def _lpm(m: MatchValue, width: int, what: str):
    _expect(m, Lpm, what)
    check_width(what, m.value, width)
    if not 0 <= m.prefix_len <= width:
        raise InvalidArgument(f"{what}: prefix length {m.prefix_len} out of range 0..{width}")
    mask = ((1 << width) - 1) ^ ((1 << (width - m.prefix_len)) - 1)
    if m.value & ~mask:
        raise InvalidArgument(f"{what}: value {m.value:#x} has bits set outside the /{m.prefix_len} prefix")
    return m.value, m.prefix_len, mask


def _optional(m: MatchValue, width: int, what: str):
    _expect(m, OptionalMatch, what)
    if m.value is None:
        return 0, 0
    check_width(what, m.value, width)
    return m.value, (1 << width) - 1


def _ternary(m: MatchValue, width: int, what: str):
    if isinstance(m, OptionalMatch):  # p4c gives optional key fields match_type "ternary" in the BMv2 JSON
        return _optional(m, width, what)
    _expect(m, Ternary, what)
    check_width(what, m.value, width)
    check_width(what + " mask", m.mask, width)
    if m.value & ~m.mask:
        raise InvalidArgument(f"{what}: value {m.value:#x} has bits set outside mask {m.mask:#x}")
    return m.value, m.mask


def _range(m: MatchValue, width: int, what: str):
    _expect(m, Range, what)
    check_width(what + " low", m.low, width)
    check_width(what + " high", m.high, width)
    if m.low > m.high:
        raise InvalidArgument(f"{what}: low {m.low} is above high {m.high}")
    return m.low, m.high


_NORMALIZE: dict[str, Callable[[MatchValue, int, str], Any]] = {
    "exact": _exact, "valid": _valid, "lpm": _lpm, "ternary": _ternary, "range": _range, "optional": _optional}


def normalize_key(tbl: Table, key: list) -> tuple:
    """Check a key against the table's key fields and turn it into match data.

    Raises InvalidArgument on a wrong number of fields, a wrong match kind, a value wider
    than its field or a non-canonical value (bits outside an LPM prefix or ternary mask).
    """
    if not isinstance(key, (list, tuple)) or len(key) != len(tbl.kinds):
        n = len(key) if isinstance(key, (list, tuple)) else "no list"
        raise InvalidArgument(f"table '{tbl.name}' has {len(tbl.kinds)} key fields, got {n}")
    out = []
    for i, (m, kind, width) in enumerate(zip(key, tbl.kinds, tbl.widths)):
        what = f"table '{tbl.name}' key field {i} ({kind}, {width} bits)"
        normalize = _NORMALIZE.get(kind)
        if normalize is None:
            raise InvalidArgument(f"{what}: unsupported match kind")
        out.append(normalize(m, width, what))
    return tuple(out)
