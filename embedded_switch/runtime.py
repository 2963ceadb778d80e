"""Run-time state of a loaded program: tables, action profiles, counters, meters, registers.

The generated packet code holds references to these objects; the `Switch` API changes
them in place. Nothing here parses JSON or generates code.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from embedded_switch.errors import NotFound


@dataclass(eq=False)
class ActionRt:
    """One action object of the JSON, compiled: `fn(F, P, *args)`."""
    aid: int
    name: str
    fn: Callable
    widths: tuple[int, ...]


@dataclass(eq=False)
class Entry:
    """A table entry as the packet path sees it."""
    handle: int
    key: tuple  # match values as given (Exact, Lpm, ...)
    priority: int
    rank: tuple  # sort key among overlapping entries: smaller wins
    action: ActionRt | None = None
    args: tuple = ()
    member: int | None = None
    group: int | None = None
    is_const: bool = False
    match: tuple = ()  # normalized key used for matching
    ctr: list = field(default_factory=lambda: [0, 0])
    meter: "Meter | None" = None
    last_hit: float = field(default_factory=time.monotonic)  # kept only for tables with idle timeout


class Counter:
    """An indirect counter array: [packets, bytes] per index."""

    def __init__(self, name: str, size: int):
        self.name, self.size = name, size
        self.cells = [[0, 0] for _ in range(size)]

    def count(self, index: int, nbytes: int) -> None:
        if 0 <= index < self.size:
            cell = self.cells[index]
            cell[0] += 1
            cell[1] += nbytes


GREEN, YELLOW, RED = 0, 1, 2


class Meter:
    """A two-rate three-color meter (RFC 2698), rates in units per second."""

    __slots__ = ("rates", "tokens", "last")

    def __init__(self):
        self.rates: list[tuple[int, int]] | None = None
        self.tokens = [0.0, 0.0]
        self.last = 0.0

    def configure(self, rates: list[tuple[int, int]] | None) -> None:
        self.rates = [tuple(r) for r in rates] if rates else None
        self.tokens = [float(b) for _, b in self.rates] if self.rates else [0.0, 0.0]
        self.last = time.monotonic()

    def execute(self, amount: int) -> int:
        if not self.rates:
            return GREEN
        now = time.monotonic()
        elapsed, self.last = now - self.last, now
        (cir, cburst), (pir, pburst) = self.rates
        tc = min(float(cburst), self.tokens[0] + cir * elapsed)
        tp = min(float(pburst), self.tokens[1] + pir * elapsed)
        if tp < amount:
            color = RED
        elif tc < amount:
            tp -= amount
            color = YELLOW
        else:
            tc -= amount
            tp -= amount
            color = GREEN
        self.tokens = [tc, tp]
        return color


class MeterArray:
    def __init__(self, name: str, size: int, by_bytes: bool):
        self.name, self.size, self.by_bytes = name, size, by_bytes
        self.cells = [Meter() for _ in range(size)]

    def execute(self, index: int, nbytes: int) -> int | None:
        if 0 <= index < self.size:
            return self.cells[index].execute(nbytes if self.by_bytes else 1)
        return None


class Register:
    def __init__(self, name: str, size: int, width: int):
        self.name, self.size, self.width = name, size, width
        self.mask = (1 << width) - 1
        self.cells = [0] * size

    def read(self, index: int) -> int:
        return self.cells[index] if 0 <= index < self.size else 0

    def write(self, index: int, value: int) -> None:
        if 0 <= index < self.size:
            self.cells[index] = value & self.mask


class ActionProfile:
    """Members and groups of an action profile (with a selector: hash-based choice)."""

    def __init__(self, name: str, size: int, selector: Callable | None, actions: dict[int, ActionRt]):
        self.name, self.size, self.selector, self.actions = name, size, selector, actions
        self.members: dict[int, tuple[ActionRt, tuple]] = {}
        self.member_order: dict[int, int] = {}  # member id -> creation rank (BMv2 handle order)
        self.groups: dict[int, list[int]] = {}
        self.group_max: dict[int, int] = {}
        self._rank = 0

    def next_rank(self) -> int:
        self._rank += 1
        return self._rank

    def resolve(self, entry: Entry, F: list) -> tuple[ActionRt, tuple] | None:
        if entry.member is not None:
            return self.members.get(entry.member)
        members = self.groups.get(entry.group)
        if not members:
            return None
        choice = members[self.selector(F) % len(members)] if len(members) > 1 else members[0]
        return self.members.get(choice)


class Table:
    """Entries of one match-action table and the look-up the packet path calls."""

    def __init__(self, name: str, kinds: list[str], widths: list[int], size: int,
                 default: tuple[ActionRt, tuple] | None, profile: ActionProfile | None):
        self.name, self.kinds, self.widths, self.size = name, kinds, widths, size
        self.entries: dict[int, Entry] = {}
        self.exact: dict[tuple, Entry] = {}
        self.by_match: dict[tuple, Entry] = {}
        self.lpm_index = kinds.index("lpm") if kinds.count("lpm") == 1 and all(
            k in ("exact", "valid", "lpm") for k in kinds) else None
        self.is_exact = all(k in ("exact", "valid") for k in kinds)
        self.needs_priority = not self.is_exact and self.lpm_index is None
        self.lpm: dict[int, dict[tuple, Entry]] = {}
        self.lpm_lengths: list[int] = []
        self.ordered: list[Entry] = []
        self.initial_default = default
        self.default = default
        self.profile = profile
        self._next_handle = 0

    def new_handle(self) -> int:
        self._next_handle += 1
        return self._next_handle

    def get(self, handle: int) -> Entry:
        try:
            return self.entries[handle]
        except KeyError:
            raise NotFound(f"table '{self.name}' has no entry with handle {handle}") from None

    def insert(self, e: Entry) -> None:
        self.entries[e.handle] = e
        self.by_match[self.identity(e.match, e.priority)] = e
        self._index_add(e)

    def remove(self, e: Entry) -> None:
        del self.entries[e.handle]
        self.by_match.pop(self.identity(e.match, e.priority), None)
        if self.is_exact:
            self.exact.pop(e.match, None)
        elif self.lpm_index is not None:
            plen = e.match[self.lpm_index][1]
            bucket = self.lpm[plen]
            bucket.pop(self._lpm_key(e.match), None)
            if not bucket:
                del self.lpm[plen]
                self.lpm_lengths = sorted(self.lpm, reverse=True)
        else:
            self.ordered.remove(e)

    def identity(self, match: tuple, priority: int) -> tuple:
        """What makes two entries the same entry: the key, and the priority where it matters."""
        return (match, priority) if self.needs_priority else (match,)

    def clear(self, keep_const: bool = True) -> None:
        for e in list(self.entries.values()):
            if not (keep_const and e.is_const):
                self.remove(e)

    def _lpm_key(self, match: tuple) -> tuple:
        return tuple(m[0] if i == self.lpm_index else m for i, m in enumerate(match))

    def _index_add(self, e: Entry) -> None:
        if self.is_exact:
            self.exact[e.match] = e
        elif self.lpm_index is not None:
            plen = e.match[self.lpm_index][1]
            if plen not in self.lpm:
                self.lpm[plen] = {}
                self.lpm_lengths = sorted(self.lpm, reverse=True)
            self.lpm[plen][self._lpm_key(e.match)] = e
        else:
            self.ordered.append(e)
            self.ordered.sort(key=lambda x: x.rank)

    def lookup(self, key: tuple) -> Entry | None:
        if self.is_exact:
            return self.exact.get(key)
        if self.lpm_index is not None:
            li, width = self.lpm_index, self.widths[self.lpm_index]
            for plen in self.lpm_lengths:
                mask = ((1 << plen) - 1) << (width - plen)
                probe = tuple(k & mask if i == li else k for i, k in enumerate(key))
                e = self.lpm[plen].get(probe)
                if e is not None:
                    return e
            return None
        for e in self.ordered:
            for k, m, kind in zip(key, e.match, self.kinds):
                if kind in ("exact", "valid"):
                    if k != m:
                        break
                elif kind == "range":
                    if not (m[0] <= k <= m[1]):
                        break
                elif kind == "lpm":
                    if k & m[2] != m[0]:
                        break
                elif k & m[1] != m[0]:  # ternary and optional: (value, mask)
                    break
            else:
                return e
        return None
