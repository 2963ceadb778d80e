"""The committed forwarding pipeline and what the server remembers beside the executor.

The executor keeps the data-plane state (entries, members, groups, counters...). The
P4Runtime server additionally remembers what only the controller cares about and must
read back unchanged: entry cookies (`controller_metadata`, `metadata`), idle timeouts,
group `max_size`, the form in which each member's watch port was written, the weights of
one-shot action sets, multicast group metadata, and whether a replica's port was sent as
`port` bytes or as the deprecated `egress_port` number.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from finsy.proto import p4r

from embedded_switch.p4runtime.schema import Schema
from embedded_switch.p4runtime.selection import WatchPort

#: Identity of a table entry that survives delete and re-insert: (table, key, priority).
EntryKey = tuple[str, tuple, int]

#: First member / group id the server allocates for one-shot action sets.
ONESHOT_BASE = 1 << 32


@dataclass(frozen=True)
class EntryCookie:
    """Fields of a TableEntry that the data plane ignores but a Read returns."""

    controller_metadata: int = 0
    metadata: bytes = b""
    idle_timeout_ns: int = 0

    @classmethod
    def of(cls, msg: p4r.TableEntry) -> EntryCookie:
        return cls(msg.controller_metadata, msg.metadata, msg.idle_timeout_ns)


@dataclass(frozen=True)
class OneShotAction:
    """One action of a one-shot action set: the hidden members that stand for its weight
    (one each, created in a row, as PI creates them), and its watch port as written."""

    members: tuple[int, ...]
    watch: WatchPort

    @property
    def weight(self) -> int:
        return len(self.members)


@dataclass
class Pipeline:
    """A committed ForwardingPipelineConfig, its schema and the server-side records."""

    config: p4r.ForwardingPipelineConfig
    schema: Schema
    cookies: dict[EntryKey, EntryCookie] = field(default_factory=dict)
    group_max_size: dict[tuple[str, int], int] = field(default_factory=dict)
    #: Watch ports of a group's members as written: (profile, group id) -> member id -> port.
    watch_ports: dict[tuple[str, int], dict[int, WatchPort]] = field(default_factory=dict)
    #: One-shot action sets as written: (profile, hidden group id) -> their actions.
    oneshot_sets: dict[tuple[str, int], tuple[OneShotAction, ...]] = field(default_factory=dict)
    multicast_metadata: dict[int, bytes] = field(default_factory=dict)
    #: Replica lists written with the deprecated `egress_port`: ("multicast"|"clone", id).
    legacy_ports: dict[tuple[str, int], bool] = field(default_factory=dict)
    #: Member and group ids of one-shot action sets, outside the uint32 space of
    #: controller ids, so the two never collide (reads hide them).
    oneshot_ids: itertools.count = field(default_factory=lambda: itertools.count(ONESHOT_BASE))
