"""Weights and watch ports of action selector members, as P4Runtime writes them.

Both ways of programming a selector carry them: the members of an `ActionProfileGroup`
and the actions of a one-shot `ActionProfileActionSet`. They are checked as PI checks
them (`action_prof_mgr.cpp`): every weight positive (INVALID_ARGUMENT), their sum within
the group's `max_size` or the P4Info's `max_group_size` (RESOURCE_EXHAUSTED). A watch
port is the deprecated `watch` (int32; 0 watches nothing) or `watch_port` (bytes, the
port number; empty watches nothing); it is read back in the form it was written.

    >>> msg = p4r.ActionProfileGroup.Member(member_id=1, weight=2, watch_port=b"\\x03")
    >>> WatchPort.of(msg, "group 1").port
    3
    >>> check_weights([3, 1], 4, "group 1", GROUP_SUM)
    >>> check_weights([3, 2], 4, "group 1", GROUP_SUM)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    embedded_switch...P4RuntimeError: RESOURCE_EXHAUSTED: group 1: Sum of member weights exceeds maximum group size (5 > 4)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from finsy.proto import p4r

from embedded_switch.p4runtime.codec import decode_uint
from embedded_switch.p4runtime.status import Code, P4RuntimeError, invalid

#: PI's messages when the weights add up to more than a group may hold.
GROUP_SUM = "Sum of member weights exceeds maximum group size"
ONESHOT_SUM = "Sum of weights exceeds static max_group_size (from P4Info)"


@dataclass(frozen=True)
class WatchPort:
    """A member's watch port as written: `kind` is "watch", "watch_port" or None."""

    kind: str | None = None
    value: int | bytes = 0
    port: int | None = None  # the data-plane port it watches, None for none

    @classmethod
    def of(cls, msg: p4r.ActionProfileGroup.Member | p4r.ActionProfileAction, where: str) -> WatchPort:
        kind = msg.WhichOneof("watch_kind")
        if kind == "watch":
            if msg.watch < 0:
                raise invalid(f"{where}: watch {msg.watch} is not a port number")
            return cls(kind, msg.watch, msg.watch or None)
        if kind == "watch_port":
            port = decode_uint(msg.watch_port, 32, f"{where}: watch_port") if msg.watch_port else None
            return cls(kind, msg.watch_port, port)
        return cls()

    def write_to(self, msg: p4r.ActionProfileGroup.Member | p4r.ActionProfileAction) -> None:
        """Set the watch port of `msg` as it was written."""
        if self.kind is not None:
            setattr(msg, self.kind, self.value)


def check_weights(weights: Sequence[int], limit: int, where: str, exceeded: str) -> None:
    """Every weight positive, and their sum within `limit` (0: no limit)."""
    for weight in weights:
        if weight <= 0:
            raise invalid(f"{where}: Member weight must be a positive integer value (got {weight})")
    total = sum(weights)
    if limit and total > limit:
        raise P4RuntimeError(Code.RESOURCE_EXHAUSTED, f"{where}: {exceeded} ({total} > {limit})")
