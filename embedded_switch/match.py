"""Match values of table keys: one value per key field, integers only.

The switch checks widths against the key field, so these records stay plain data:

>>> [Exact(0x0800), Lpm(0x0A000000, 8), Ternary(0x10, 0xF0)]
[Exact(value=2048), Lpm(value=167772160, prefix_len=8), Ternary(value=16, mask=240)]
"""
from __future__ import annotations

from dataclasses import dataclass


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
