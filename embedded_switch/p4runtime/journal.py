"""An undo log: how a Write batch is rolled back (ROLLBACK_ON_ERROR, DATAPLANE_ATOMIC).

Every change the server makes, to the executor or to its own bookkeeping, records a
closure that reverts it. Rolling back runs them newest first.

    >>> journal, table = Journal(), {"a": 1}
    >>> journal.assign(table, "a", 2); journal.assign(table, "b", 3)
    >>> journal.rollback(); table
    {'a': 1}
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping

_MISSING = object()


class Journal:
    """Undo closures, applied newest first by `rollback`."""

    def __init__(self) -> None:
        self._undo: list[Callable[[], None]] = []

    def record(self, undo: Callable[[], None]) -> None:
        self._undo.append(undo)

    def assign(self, mapping: MutableMapping, key, value) -> None:
        """`mapping[key] = value`, remembering what was there."""
        old = mapping.get(key, _MISSING)
        mapping[key] = value
        self.record(lambda: _restore(mapping, key, old))

    def discard(self, mapping: MutableMapping, key) -> None:
        """`mapping.pop(key, None)`, remembering what was there."""
        old = mapping.pop(key, _MISSING)
        if old is not _MISSING:
            self.record(lambda: _restore(mapping, key, old))

    def extend(self, other: Journal) -> None:
        """Take over `other`'s undo closures (they run before this journal's older ones)."""
        self._undo.extend(other._undo)
        other._undo = []

    def rollback(self) -> None:
        while self._undo:
            self._undo.pop()()


def _restore(mapping: MutableMapping, key, old) -> None:
    if old is _MISSING:
        mapping.pop(key, None)
    else:
        mapping[key] = old
