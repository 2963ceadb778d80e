"""Run-time state of a loaded program: tables, action profiles, counters, meters, registers.

The generated packet code holds references to these objects; the `Switch` API changes
them in place. Nothing here parses JSON or generates code.
"""
from __future__ import annotations

import heapq
import time
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

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


class GroupMember(NamedTuple):
    """A member of an action selector group: `weight` copies of it in the choice, all out
    of it while port `watch` is down (None: watches no port)."""
    member: int
    weight: int = 1
    watch: int | None = None


class Handles:
    """Member handles as BMv2 gives them: the lowest free one first.

    >>> h = Handles(); [h.take() for _ in range(3)]
    [0, 1, 2]
    >>> h.give(1); h.give(0); h.take(), h.take(), h.take()
    (0, 1, 3)
    """

    def __init__(self):
        self._next = 0
        self._free: list[int] = []

    def take(self) -> int:
        if self._free:
            return heapq.heappop(self._free)
        self._next += 1
        return self._next - 1

    def give(self, handle: int) -> None:
        heapq.heappush(self._free, handle)


class ActionProfile:
    """Members and groups of an action profile (with a selector: hash-based choice).

    A group is chosen from as BMv2 chooses with PI's weights: a member of weight w is w
    target members (its own handle and w - 1 copies, shared by every group that needs
    them, created and released as PI creates and releases them), and the selector's hash
    modulo the number of active copies picks one, in handle order. A copy is active while
    its member's watch port is up.
    """

    def __init__(self, name: str, size: int, selector: Callable | None, actions: dict[int, ActionRt]):
        self.name, self.size, self.selector, self.actions = name, size, selector, actions
        self.members: dict[int, tuple[ActionRt, tuple]] = {}
        self.handles: dict[int, list[int]] = {}  # member id -> its handles: own, then copies
        self.groups: dict[int, list[GroupMember]] = {}  # by member id, as PI keeps them
        self.group_max: dict[int, int] = {}
        self.choice: dict[int, list[int]] = {}  # group id -> member id of each active copy
        self._handles = Handles()

    def add_member(self, member_id: int, action: tuple[ActionRt, tuple]) -> None:
        self.members[member_id] = action
        self.handles[member_id] = [self._handles.take()]

    def remove_member(self, member_id: int) -> None:
        del self.members[member_id]
        for handle in self.handles.pop(member_id):
            self._handles.give(handle)

    def set_group(self, group_id: int, members: list[GroupMember] | None, down: set[int]) -> None:
        """Make group `group_id` hold `members` (None: remove it), creating the copies
        its weights need in member id order and releasing those no group needs any
        more, newest first (PI's group_update_members on BMv2)."""
        old = {m.member: m for m in self.groups.get(group_id, ())}
        new = {m.member: m for m in members or ()}
        touched = sorted(old.keys() | new.keys())
        for member_id in touched:
            handles = self.handles[member_id]
            while len(handles) < (new[member_id].weight if member_id in new else 0):
                handles.append(self._handles.take())
        if members is None:
            self.groups.pop(group_id, None)
            self.group_max.pop(group_id, None)
            self.choice.pop(group_id, None)
        else:
            self.groups[group_id] = sorted(new.values())
        for member_id in touched:
            needed = max((m.weight for g in self.groups.values() for m in g if m.member == member_id),
                         default=1)
            handles = self.handles[member_id]
            while len(handles) > needed:
                self._handles.give(handles.pop())
        if members is not None:
            self.refresh(group_id, down)

    def refresh(self, group_id: int, down: set[int]) -> None:
        """Recompute the copies group `group_id` chooses from, leaving out those whose
        watch port is in `down`."""
        self.choice[group_id] = [member for _, member in sorted(
            (handle, m.member) for m in self.groups[group_id] if m.watch not in down
            for handle in self.handles[m.member][:m.weight])]

    def watching(self, port: int) -> list[int]:
        """Ids of the groups with a member that watches `port`."""
        return [gid for gid, members in self.groups.items() if any(m.watch == port for m in members)]

    def resolve(self, entry: Entry, F: list) -> tuple[ActionRt, tuple] | None:
        if entry.member is not None:
            return self.members.get(entry.member)
        members = self.choice.get(entry.group)
        if not members:  # an empty group, or one whose every member's watch port is down
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
