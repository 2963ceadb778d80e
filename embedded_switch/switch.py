"""The embedded switch: a loaded program, its run-time state and the v1model packet path.

`Switch` behaves like BMv2 simple_switch: parser, checksum verification, ingress, the
traffic manager (clone, resubmit, multicast, drop, unicast), egress, checksum update,
deparser, recirculation. Every method takes `lock`; every mutating method validates
everything before it changes anything.

As in simple_switch: instance types NORMAL 0, INGRESS_CLONE 1, EGRESS_CLONE 2, RECIRC 4,
REPLICATION 5, RESUBMIT 6; resubmitted, recirculated and cloned packets start with their
metadata reset (ingress_port 0) but for their field list; a select with no matching case
and no default accepts; add_header/remove_header keep packet_length current for egress;
const entries use BMv2's order (first listed wins) and report P4Runtime priorities.
Where it differs: a failed assert drops the packet (BMv2 stops the process), pop_front on
a header union stack invalidates the last union (the P4 spec; BMv2 leaves it valid).

>>> sw = Switch()
>>> sw.process(1, b"\\x00" * 20)   # no program loaded: dropped
[]
"""
from __future__ import annotations

import collections
import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, NamedTuple

from embedded_switch.compiler import CompiledProgram, compile_program
from embedded_switch.errors import (AlreadyExists, InvalidArgument, NotFound, PipelineError,
                                    ResourceExhausted, SwitchError)
from embedded_switch.match import check_width, normalize_key
from embedded_switch.packet import (INSTANCE_EGRESS_CLONE, INSTANCE_INGRESS_CLONE, INSTANCE_NORMAL, INSTANCE_RECIRC,
                                    INSTANCE_REPLICATION, INSTANCE_RESUBMIT, TRACE_LOG, Pkt)
from embedded_switch.program import Program
from embedded_switch.runtime import ActionProfile, ActionRt, Entry, GroupMember, Meter, Table

DROP_PORT = 511
PORT_LIMIT = 1 << 9          # v1model ports are bit<9>
MAX_CLONE_SESSION = (1 << 15) - 1
MAX_STEPS_PER_PACKET = 4096  # ingress/egress passes one input may cause (recirculation loops end here)


@dataclass(frozen=True)
class TableEntry:
    handle: int
    key: list
    priority: int
    action: str | None
    args: list[int]
    member: int | None
    group: int | None
    is_const: bool


class IngressWork(NamedTuple):
    """A packet to run through the parser and ingress (arrived, resubmitted or recirculated)."""
    port: int
    data: bytes
    preserved: list[tuple[int, int]] | None  # (slot, value) kept from the pass before
    instance_type: int


class EgressWork(NamedTuple):
    """A packet the traffic manager sends to egress port `port`, with its fields and context."""
    port: int
    F: list
    P: Pkt


class Switch:
    """A BMv2-like v1model switch running one BMv2 JSON program in Python."""

    def __init__(self, *, device_id: int = 0, cpu_port: int | None = None,
                 log: logging.Logger | None = None):
        self.device_id, self.cpu_port = device_id, cpu_port
        self.log = log or logging.getLogger(__name__)
        self.lock = threading.RLock()
        self.program: Program | None = None
        self.cp: CompiledProgram | None = None
        self._mc: dict[int, list[tuple[int, int]]] = {}
        self._clone: dict[int, dict] = {}
        self._start = time.monotonic()
        self._digest_handler: Callable[[str, list[int]], None] | None = None
        self._digests: list[tuple[str, list[int]]] = []
        self._trace = False
        self._ports: set[int] = set()
        self._down: set[int] = set()
        self.stats = collections.Counter()

    # ------------------------------------------------------------------ program --
    def load_pipeline(self, json_bytes: bytes | str) -> None:
        """Load a BMv2 JSON; atomic: on PipelineError the old program and state stay."""
        try:
            j = json.loads(json_bytes)
        except (ValueError, UnicodeDecodeError) as exc:
            raise PipelineError(f"not valid JSON: {exc}") from None
        cp = compile_program(j)
        with self.lock:
            self.cp, self.program = cp, cp.info
            self._mc, self._clone = {}, {}
            self.log.info("loaded program: %d tables, %d actions", len(cp.tables), len(cp.actions))

    def _prog(self) -> CompiledProgram:
        if self.cp is None:
            raise NotFound("no P4 program is loaded")
        return self.cp

    def _table(self, name: str) -> Table:
        cp = self._prog()
        tbl = cp.tables.get(name)
        if tbl is None:
            raise NotFound(f"no table '{name}' (tables: {', '.join(sorted(cp.tables)) or 'none'})")
        return tbl

    def _table_action(self, table: str, action: str, args: list[int]) -> tuple[ActionRt, tuple]:
        acts = self._prog().table_actions[table]
        act = acts.get(action)
        if act is None:
            raise InvalidArgument(f"action '{action}' is not an action of table '{table}' "
                                  f"(its actions: {', '.join(acts)})")
        return act, self._args(act, args)

    @staticmethod
    def _args(act: ActionRt, args: list[int]) -> tuple:
        if len(args) != len(act.widths):
            raise InvalidArgument(f"action '{act.name}' takes {len(act.widths)} arguments, got {len(args)}")
        for i, (a, w) in enumerate(zip(args, act.widths)):
            check_width(f"action '{act.name}' argument {i}", a, w)
        return tuple(args)

    def _priority(self, tbl: Table, priority: int) -> int:
        if not isinstance(priority, int):
            raise InvalidArgument(f"priority must be an integer, got {priority!r}")
        if tbl.needs_priority:
            if not 0 < priority < (1 << 31):
                raise InvalidArgument(f"table '{tbl.name}' needs a priority in 1..{(1 << 31) - 1}, got {priority}")
        elif priority != 0:
            raise InvalidArgument(f"table '{tbl.name}' has no ternary, range or optional field: priority must be 0")
        return priority

    def _new_entry(self, tbl: Table, key: list, priority: int) -> Entry:
        if not tbl.kinds:
            raise InvalidArgument(f"table '{tbl.name}' has no key: only its default action can be set")
        if any(e.is_const for e in tbl.entries.values()):
            raise InvalidArgument(f"table '{tbl.name}' has const entries: it cannot be changed")
        match = normalize_key(tbl, key)
        priority = self._priority(tbl, priority)
        if tbl.identity(match, priority) in tbl.by_match:
            raise AlreadyExists(f"table '{tbl.name}' already has an entry with this key"
                                + (f" and priority {priority}" if tbl.needs_priority else ""))
        if tbl.size and len(tbl.entries) >= tbl.size:
            raise ResourceExhausted(f"table '{tbl.name}' is full ({tbl.size} entries)")
        handle = tbl.new_handle()
        e = Entry(handle=handle, key=tuple(key), priority=priority, rank=(-priority, handle), match=match)
        if self._prog().info.tables[tbl.name].direct_meter:
            e.meter = Meter()
        return e

    # ------------------------------------------------------------------- tables --
    def table_add(self, table: str, key: list, action: str, args: list[int], priority: int = 0) -> int:
        with self.lock:
            tbl = self._table(table)
            if tbl.profile is not None:
                raise InvalidArgument(f"table '{table}' is indirect: use table_add_indirect")
            act, a = self._table_action(table, action, args)
            e = self._new_entry(tbl, key, priority)
            e.action, e.args = act, a
            tbl.insert(e)
            return e.handle

    def _member_or_group(self, tbl: Table, member: int | None, group: int | None) -> None:
        prof = tbl.profile
        if prof is None:
            raise InvalidArgument(f"table '{tbl.name}' is not indirect: use table_add")
        if (member is None) == (group is None):
            raise InvalidArgument("give exactly one of member and group")
        if member is not None and member not in prof.members:
            raise NotFound(f"action profile '{prof.name}' has no member {member}")
        if group is not None:
            if prof.selector is None:
                raise InvalidArgument(f"action profile '{prof.name}' has no selector: no groups")
            if group not in prof.groups:
                raise NotFound(f"action profile '{prof.name}' has no group {group}")

    def table_add_indirect(self, table: str, key: list, *, member: int | None = None,
                           group: int | None = None, priority: int = 0) -> int:
        with self.lock:
            tbl = self._table(table)
            self._member_or_group(tbl, member, group)
            e = self._new_entry(tbl, key, priority)
            e.member, e.group = member, group
            tbl.insert(e)
            return e.handle

    def table_find(self, table: str, key: list, priority: int = 0) -> int | None:
        with self.lock:
            tbl = self._table(table)
            e = tbl.by_match.get(tbl.identity(normalize_key(tbl, key), priority if tbl.needs_priority else 0))
            return e.handle if e is not None else None

    def _mutable_entry(self, tbl: Table, handle: int) -> Entry:
        e = tbl.get(handle)
        if e.is_const:
            raise InvalidArgument(f"entry {handle} of table '{tbl.name}' is const")
        return e

    def table_modify(self, table: str, handle: int, action: str, args: list[int]) -> None:
        with self.lock:
            tbl = self._table(table)
            if tbl.profile is not None:
                raise InvalidArgument(f"table '{table}' is indirect: use table_modify_indirect")
            e = self._mutable_entry(tbl, handle)
            act, a = self._table_action(table, action, args)
            e.action, e.args = act, a

    def table_modify_indirect(self, table: str, handle: int, *, member: int | None = None,
                              group: int | None = None) -> None:
        with self.lock:
            tbl = self._table(table)
            self._member_or_group(tbl, member, group)
            e = self._mutable_entry(tbl, handle)
            e.member, e.group = member, group

    def table_delete(self, table: str, handle: int) -> None:
        with self.lock:
            tbl = self._table(table)
            tbl.remove(self._mutable_entry(tbl, handle))

    def table_entries(self, table: str) -> list[TableEntry]:
        with self.lock:
            tbl = self._table(table)
            return [_table_entry(e) for e in sorted(tbl.entries.values(), key=lambda x: x.handle)]

    def table_entry(self, table: str, handle: int) -> TableEntry:
        """One entry by handle (NotFound if there is none)."""
        with self.lock:
            return _table_entry(self._table(table).get(handle))

    def table_entry_idle_time(self, table: str, handle: int) -> float:
        """Seconds since entry `handle` last matched (or was added).

        Only for tables that support idle timeout (TableInfo.support_timeout).
        """
        with self.lock:
            tbl = self._table(table)
            if not self._prog().info.tables[table].support_timeout:
                raise InvalidArgument(f"table '{table}' does not support idle timeout")
            return time.monotonic() - tbl.get(handle).last_hit

    def table_set_default(self, table: str, action: str, args: list[int]) -> None:
        with self.lock:
            tbl = self._table(table)
            if self._prog().info.tables[table].const_default:
                raise InvalidArgument(f"the default action of table '{table}' is const")
            tbl.default = self._table_action(table, action, args)

    def table_reset_default(self, table: str) -> None:
        with self.lock:
            tbl = self._table(table)
            tbl.default = tbl.initial_default

    def table_get_default(self, table: str) -> tuple[str, list[int]]:
        with self.lock:
            tbl = self._table(table)
            if tbl.default is None:
                return "", []
            return tbl.default[0].name, list(tbl.default[1])

    def table_clear(self, table: str) -> None:
        with self.lock:
            self._table(table).clear(keep_const=True)

    # --------------------------------------------------------- action profiles --
    def _profile(self, name: str) -> ActionProfile:
        cp = self._prog()
        prof = cp.profiles.get(name)
        if prof is None:
            raise NotFound(f"no action profile '{name}' (profiles: {', '.join(sorted(cp.profiles)) or 'none'})")
        return prof

    def _profile_action(self, prof: ActionProfile, action: str, args: list[int]) -> tuple[ActionRt, tuple]:
        act = next((a for a in prof.actions.values() if a.name == action), None)
        if act is None:
            names = sorted({a.name for a in prof.actions.values()})
            raise InvalidArgument(f"action '{action}' cannot be used in action profile '{prof.name}' "
                                  f"(its actions: {', '.join(names)})")
        return act, self._args(act, args)

    def _profile_tables(self, prof: ActionProfile) -> list[Table]:
        return [t for t in self._prog().tables.values() if t.profile is prof]

    def member_add(self, profile: str, member_id: int, action: str, args: list[int]) -> None:
        with self.lock:
            prof = self._profile(profile)
            if member_id in prof.members:
                raise AlreadyExists(f"action profile '{profile}' already has member {member_id}")
            act = self._profile_action(prof, action, args)
            if prof.size and len(prof.members) >= prof.size:
                raise ResourceExhausted(f"action profile '{profile}' is full ({prof.size} members)")
            prof.add_member(member_id, act)

    def member_modify(self, profile: str, member_id: int, action: str, args: list[int]) -> None:
        with self.lock:
            prof = self._profile(profile)
            if member_id not in prof.members:
                raise NotFound(f"action profile '{profile}' has no member {member_id}")
            prof.members[member_id] = self._profile_action(prof, action, args)

    def member_delete(self, profile: str, member_id: int) -> None:
        with self.lock:
            prof = self._profile(profile)
            if member_id not in prof.members:
                raise NotFound(f"action profile '{profile}' has no member {member_id}")
            for gid, mem in prof.groups.items():
                if any(m.member == member_id for m in mem):
                    raise InvalidArgument(f"member {member_id} is still in group {gid} of '{profile}'")
            for t in self._profile_tables(prof):
                for e in t.entries.values():
                    if e.member == member_id:
                        raise InvalidArgument(f"member {member_id} is still used by entry {e.handle} of '{t.name}'")
            prof.remove_member(member_id)

    def members(self, profile: str) -> dict[int, tuple[str, list[int]]]:
        with self.lock:
            prof = self._profile(profile)
            return {mid: (a.name, list(args)) for mid, (a, args) in prof.members.items()}

    def group_set(self, profile: str, group_id: int, members: list[GroupMember | int], *, create: bool,
                  max_size: int = 0) -> None:
        """Give group `group_id` of selector `profile` these members (member ids, or
        `GroupMember`s with a weight and a watch port); `max_size` (at creation) bounds
        the sum of their weights."""
        with self.lock:
            prof = self._profile(profile)
            if prof.selector is None:
                raise InvalidArgument(f"action profile '{profile}' has no selector: no groups")
            if create and group_id in prof.groups:
                raise AlreadyExists(f"action profile '{profile}' already has group {group_id}")
            if not create and group_id not in prof.groups:
                raise NotFound(f"action profile '{profile}' has no group {group_id}")
            members = [m if isinstance(m, GroupMember) else GroupMember(m) for m in members]
            if len({m.member for m in members}) != len(members):
                raise InvalidArgument(f"group {group_id}: a member is listed twice (give it a weight)")
            for m in members:
                if m.member not in prof.members:
                    raise NotFound(f"action profile '{profile}' has no member {m.member}")
                if not isinstance(m.weight, int) or m.weight < 1:
                    raise InvalidArgument(f"group {group_id}: member {m.member} has weight {m.weight!r};"
                                          " a weight is a positive integer")
                if m.watch is not None and m.watch not in self._ports:
                    raise InvalidArgument(f"group {group_id}: member {m.member} watches port {m.watch}, which "
                                          f"this switch does not have (its ports: {self._port_list()})")
            limit = max_size if max_size else prof.group_max.get(group_id, 0)
            total = sum(m.weight for m in members)
            if limit and total > limit:
                raise ResourceExhausted(f"group {group_id} holds at most {limit} (sum of weights), "
                                        f"got {total}")
            prof.set_group(group_id, members, self._down)
            if max_size:
                prof.group_max[group_id] = max_size

    def group_delete(self, profile: str, group_id: int) -> None:
        with self.lock:
            prof = self._profile(profile)
            if group_id not in prof.groups:
                raise NotFound(f"action profile '{profile}' has no group {group_id}")
            for t in self._profile_tables(prof):
                for e in t.entries.values():
                    if e.group == group_id:
                        raise InvalidArgument(f"group {group_id} is still used by entry {e.handle} of '{t.name}'")
            prof.set_group(group_id, None, self._down)

    def groups(self, profile: str) -> dict[int, list[GroupMember]]:
        """Each group's members, by member id."""
        with self.lock:
            return {g: list(m) for g, m in self._profile(profile).groups.items()}

    def group_choice(self, profile: str, group_id: int) -> list[int]:
        """The member ids a packet's hash chooses from (modulo their number): one per
        active copy, in BMv2's handle order; empty when every watch port is down."""
        with self.lock:
            prof = self._profile(profile)
            if group_id not in prof.groups:
                raise NotFound(f"action profile '{profile}' has no group {group_id}")
            return list(prof.choice[group_id])

    # -------------------------------------------------------------------- ports --
    def set_port_status(self, port: int, up: bool) -> None:
        """Port `port` exists and is up (or down). Members watching a port that goes down
        leave their groups' choice at once, and return when it comes up."""
        with self.lock:
            if not isinstance(port, int) or not 0 <= port < PORT_LIMIT:
                raise InvalidArgument(f"port {port!r} out of range 0..{PORT_LIMIT - 1}")
            was_down = port in self._down
            self._ports.add(port)
            if up:
                self._down.discard(port)
            else:
                self._down.add(port)
            if was_down == (not up):
                return
            self.log.info("port %d is %s", port, "up" if up else "down")
            for prof in (self.cp.profiles.values() if self.cp else ()):
                for gid in prof.watching(port):
                    prof.refresh(gid, self._down)

    def port_status(self) -> dict[int, bool]:
        """Every port the switch has, and whether it is up."""
        with self.lock:
            return {p: p not in self._down for p in sorted(self._ports)}

    def _port_list(self) -> str:
        return ", ".join(map(str, sorted(self._ports))) or "none"

    # ------------------------------------------------ counters, meters, registers --
    @staticmethod
    def _index(kind: str, name: str, index: int, size: int) -> None:
        if not isinstance(index, int) or not 0 <= index < size:
            raise InvalidArgument(f"{kind} '{name}': index {index!r} out of range 0..{size - 1}")

    @staticmethod
    def _indexed(kind: str, name: str, indexed: dict, direct: dict, instead: str):
        """The indexed counter or meter ``name``; a direct one is refused, naming ``instead``."""
        if name in direct:
            raise InvalidArgument(f"{kind} '{name}' is direct (table '{direct[name]}'): use {instead}")
        found = indexed.get(name)
        if found is None:
            raise NotFound(f"no {kind} '{name}'")
        return found

    def _counter(self, name: str):
        cp = self._prog()
        return self._indexed("counter", name, cp.counters, cp.direct_counters,
                             "direct_counter_read/write")

    def counter_read(self, name: str, index: int) -> tuple[int, int]:
        with self.lock:
            c = self._counter(name)
            self._index("counter", name, index, c.size)
            return tuple(c.cells[index])

    def counter_write(self, name: str, index: int, packets: int, bytes_: int) -> None:
        with self.lock:
            c = self._counter(name)
            self._index("counter", name, index, c.size)
            for v in (packets, bytes_):
                check_width(f"counter '{name}'", v, 64)
            c.cells[index] = [packets, bytes_]

    def _direct_entry(self, table: str, handle: int, what: str) -> Entry:
        tbl = self._table(table)
        info = self._prog().info.tables[table]
        if (what == "counter" and not info.direct_counter) or (what == "meter" and not info.direct_meter):
            raise InvalidArgument(f"table '{table}' has no direct {what}")
        return tbl.get(handle)

    def direct_counter_read(self, table: str, handle: int) -> tuple[int, int]:
        with self.lock:
            return tuple(self._direct_entry(table, handle, "counter").ctr)

    def direct_counter_write(self, table: str, handle: int, packets: int, bytes_: int) -> None:
        with self.lock:
            e = self._direct_entry(table, handle, "counter")
            for v in (packets, bytes_):
                check_width(f"direct counter of '{table}'", v, 64)
            e.ctr[0], e.ctr[1] = packets, bytes_

    @staticmethod
    def _rates(rates) -> list[tuple[int, int]] | None:
        if rates is None:
            return None
        try:
            rs = [(int(r), int(b)) for r, b in rates]
        except (TypeError, ValueError):
            raise InvalidArgument(f"meter rates must be [(cir, cburst), (pir, pburst)], got {rates!r}") from None
        if len(rs) != 2 or any(v < 0 for pair in rs for v in pair):
            raise InvalidArgument(f"meter rates must be two non-negative (rate, burst) pairs, got {rates!r}")
        if rs[0][0] > rs[1][0]:
            raise InvalidArgument(f"committed rate {rs[0][0]} is above peak rate {rs[1][0]}")
        return rs

    def _meter(self, name: str):
        cp = self._prog()
        return self._indexed("meter", name, cp.meters, cp.direct_meters, "direct_meter_set/get")

    def meter_set(self, name: str, index: int, rates: list[tuple[int, int]] | None) -> None:
        with self.lock:
            m = self._meter(name)
            self._index("meter", name, index, m.size)
            m.cells[index].configure(self._rates(rates))

    def meter_get(self, name: str, index: int) -> list[tuple[int, int]] | None:
        with self.lock:
            m = self._meter(name)
            self._index("meter", name, index, m.size)
            r = m.cells[index].rates
            return [tuple(x) for x in r] if r else None

    def direct_meter_set(self, table: str, handle: int, rates) -> None:
        with self.lock:
            e = self._direct_entry(table, handle, "meter")
            e.meter.configure(self._rates(rates))

    def direct_meter_get(self, table: str, handle: int):
        with self.lock:
            r = self._direct_entry(table, handle, "meter").meter.rates
            return [tuple(x) for x in r] if r else None

    def _register(self, name: str):
        r = self._prog().registers.get(name)
        if r is None:
            raise NotFound(f"no register '{name}'")
        return r

    def register_read(self, name: str, index: int) -> int:
        with self.lock:
            r = self._register(name)
            self._index("register", name, index, r.size)
            return r.cells[index]

    def register_write(self, name: str, index: int, value: int) -> None:
        with self.lock:
            r = self._register(name)
            self._index("register", name, index, r.size)
            check_width(f"register '{name}'", value, r.width)
            r.cells[index] = value

    def value_set_set(self, name: str, values: list[int]) -> None:
        """Replace the members of parser value set `name` (values as the parser key sees them)."""
        with self.lock:
            vs = self._prog().value_sets.get(name)
            if vs is None:
                raise NotFound(f"no parser value set '{name}'")
            if not all(isinstance(v, int) and v >= 0 for v in values):
                raise InvalidArgument(f"value set '{name}': values must be non-negative integers")
            vs.clear()
            vs.update(values)

    # ------------------------------------------------ replication and clone sessions --
    @staticmethod
    def _replicas(replicas: list[tuple[int, int]], what: str) -> list[tuple[int, int]]:
        out = []
        for r in replicas:
            try:
                port, rid = (int(x) for x in r)
            except (TypeError, ValueError):
                raise InvalidArgument(f"{what}: replicas are (egress_port, instance) pairs, got {r!r}") from None
            if not 0 <= port < PORT_LIMIT:
                raise InvalidArgument(f"{what}: egress port {port} out of range 0..{PORT_LIMIT - 1}")
            if not 0 <= rid < (1 << 16):
                raise InvalidArgument(f"{what}: instance {rid} out of range 0..65535")
            out.append((port, rid))
        if len(set(out)) != len(out):
            raise InvalidArgument(f"{what}: a replica is listed twice")
        return out

    def mc_group_set(self, group_id: int, replicas: list[tuple[int, int]]) -> None:
        with self.lock:
            if not isinstance(group_id, int) or not 1 <= group_id < (1 << 16):
                raise InvalidArgument(f"multicast group id {group_id!r} out of range 1..65535")
            self._mc[group_id] = self._replicas(replicas, f"multicast group {group_id}")

    def mc_group_delete(self, group_id: int) -> None:
        with self.lock:
            if group_id not in self._mc:
                raise NotFound(f"no multicast group {group_id}")
            del self._mc[group_id]

    def mc_groups(self) -> dict[int, list[tuple[int, int]]]:
        with self.lock:
            return {g: list(r) for g, r in self._mc.items()}

    def clone_session_set(self, session_id: int, replicas: list[tuple[int, int]], *, class_of_service: int = 0,
                          packet_length_bytes: int = 0) -> None:
        with self.lock:
            if not isinstance(session_id, int) or not 0 < session_id <= MAX_CLONE_SESSION:
                raise InvalidArgument(f"clone session id {session_id!r} out of range 1..{MAX_CLONE_SESSION}")
            if not isinstance(packet_length_bytes, int) or packet_length_bytes < 0:
                raise InvalidArgument(f"packet_length_bytes must be >= 0, got {packet_length_bytes!r}")
            self._clone[session_id] = {
                "replicas": self._replicas(replicas, f"clone session {session_id}"),
                "class_of_service": class_of_service, "packet_length_bytes": packet_length_bytes}

    def clone_session_delete(self, session_id: int) -> None:
        with self.lock:
            if session_id not in self._clone:
                raise NotFound(f"no clone session {session_id}")
            del self._clone[session_id]

    def clone_sessions(self) -> dict:
        with self.lock:
            return {s: dict(c, replicas=list(c["replicas"])) for s, c in self._clone.items()}

    def set_digest_handler(self, fn: Callable[[str, list[int]], None] | None) -> None:
        """Install the digest callback `fn(digest name, field values)`.

        It is called after `process` gives up the lock, once per digest a packet generated
        (P4 `digest<T>`).
        """
        with self.lock:
            self._digest_handler = fn

    # ------------------------------------------------------------------ packets --
    def process(self, ingress_port: int, data: bytes) -> list[tuple[int, bytes]]:
        """Run one packet and everything it causes; returns (egress_port, bytes) in order."""
        with self.lock:
            cp = self.cp
            self.stats["rx"] += 1
            if cp is None:
                self.stats["dropped_no_program"] += 1
                return []
            outputs: list[tuple[int, bytes]] = []
            self._trace = TRACE_LOG.isEnabledFor(logging.DEBUG)
            work: collections.deque[IngressWork | EgressWork] = collections.deque(
                [IngressWork(ingress_port, bytes(data), None, INSTANCE_NORMAL)])
            steps = 0
            while work:
                steps += 1
                if steps > MAX_STEPS_PER_PACKET:
                    self.stats["dropped_step_limit"] += 1
                    self.log.warning("packet from port %d caused more than %d passes; rest dropped",
                                     ingress_port, MAX_STEPS_PER_PACKET)
                    break
                item = work.popleft()
                try:
                    if isinstance(item, IngressWork):
                        self._ingress(cp, item, work)
                    else:
                        self._egress(cp, item, work, outputs)
                except Exception as exc:  # noqa: BLE001 - a packet never takes the switch down
                    self.stats["dropped_error"] += 1
                    self.log.warning("packet from port %d dropped: %s: %s", ingress_port,
                                     type(exc).__name__, exc)
            self.stats["tx"] += len(outputs)
            if self.log.isEnabledFor(logging.DEBUG):
                self.log.debug("packet of %d bytes from port %d: %s", len(data), ingress_port,
                               ", ".join(f"{len(d)} bytes to port {p}" for p, d in outputs) or "dropped")
            digests, self._digests = self._digests, []
            handler = self._digest_handler
        for name, values in digests:
            if handler is None:
                self.stats["digest_no_handler"] += 1
                continue
            try:
                handler(name, values)
            except Exception as exc:  # noqa: BLE001 - a control-plane hook never stops the data plane
                self.stats["digest_handler_error"] += 1
                self.log.warning("digest handler failed: %s", exc)
        return outputs

    def _now_us(self) -> int:
        return int((time.monotonic() - self._start) * 1e6)

    @staticmethod
    def _set(F: list, idx: int | None, value: int, cp: CompiledProgram) -> None:
        if idx is not None:
            F[idx] = value & cp.layout.masks[idx]

    def _fresh(self, cp: CompiledProgram, port: int, data: bytes, itype: int, preserved) -> tuple[list, Pkt]:
        F = cp.layout.template[:]
        P = Pkt(data, len(data))
        cp.arrive(F, port, len(data), itype, self._now_us())
        if preserved:
            for idx, val in preserved:
                F[idx] = val
        return F, P

    @staticmethod
    def _copy(P: Pkt) -> Pkt:
        Q = Pkt(P.data, P.ilen)
        Q.off, Q.plen, Q.trunc = P.off, P.plen, P.trunc
        return Q

    def _reset_metadata(self, cp: CompiledProgram, F: list) -> list:
        G = F[:]
        for i in cp.layout.meta_slots:
            G[i] = 0
        return G

    def _clone_targets(self, session: int):
        cfg = self._clone.get(session & MAX_CLONE_SESSION)
        if cfg is None:
            self.stats["clone_no_session"] += 1
        return cfg

    def _ingress(self, cp: CompiledProgram, item: IngressWork, work) -> None:
        port, data, preserved, itype = item
        sm = cp.sm
        F, P = self._fresh(cp, port if itype == INSTANCE_NORMAL else 0, data, itype, preserved)
        if self._trace:
            TRACE_LOG.debug("ingress: %d bytes on port %d, instance type %d", len(data), port, itype)
            err = cp.parse_trace(F, P)
        else:
            err = cp.parse(F, P)
        if sm["parser_error"] is not None:
            F[sm["parser_error"]] = err
        cp.verify(F, P)
        (cp.ingress_trace if self._trace else cp.ingress)(F, P)
        P.exit = False
        if P.clone is not None:
            session, fl = P.clone
            cfg = self._clone_targets(session)
            if cfg is not None:
                G, Q = self._fresh(cp, port if itype == INSTANCE_NORMAL else 0, data, INSTANCE_INGRESS_CLONE, None)
                cp.parse(G, Q)
                cp.verify(G, Q)
                G = self._reset_metadata(cp, G)
                for idx in cp.field_lists.get(fl, ()):
                    G[idx] = F[idx]
                self._set(G, sm["instance_type"], INSTANCE_INGRESS_CLONE, cp)
                self._replicate(cp, G, Q, cfg["replicas"], work, cfg["packet_length_bytes"])
        if P.digest is not None:
            learn = cp.learn_lists.get(P.digest)
            if learn is not None:
                self._digests.append((learn.name, [F[i] for i in learn.slots]))
        if P.resubmit is not None:
            kept = [(i, F[i]) for i in cp.field_lists.get(P.resubmit, ())]
            work.append(IngressWork(port, data, kept, INSTANCE_RESUBMIT))
            return
        mgid = F[sm["mcast_grp"]] if sm["mcast_grp"] is not None else 0
        if mgid:
            self._set(F, sm["instance_type"], INSTANCE_REPLICATION, cp)
            replicas = self._mc.get(mgid)
            if replicas is None:
                self.stats["mc_no_group"] += 1
                return
            self._replicate(cp, F, P, replicas, work, 0)
            return
        spec = F[sm["egress_spec"]] if sm["egress_spec"] is not None else 0
        if spec == cp.drop_port:
            self.stats["dropped"] += 1
            return
        self._set(F, sm["instance_type"], INSTANCE_NORMAL, cp)
        work.append(EgressWork(spec, F, P))

    def _replicate(self, cp, F, P, replicas, work, trunc) -> None:
        rid = cp.sm["egress_rid"]
        for eport, inst in replicas:
            G = F[:]
            if rid is not None:
                G[rid] = inst
            Q = self._copy(P)
            if trunc:
                Q.trunc = trunc
            work.append(EgressWork(eport, G, Q))

    def _egress(self, cp: CompiledProgram, item: EgressWork, work, outputs) -> None:
        port, F, P = item
        sm = cp.sm
        cp.depart(F, port, cp.drop_port + 1, P.plen, self._now_us())
        P.clone = P.recirc = None
        if self._trace:
            TRACE_LOG.debug("egress: port %d", port)
            cp.egress_trace(F, P)
        else:
            cp.egress(F, P)
        P.exit = False
        if P.clone is not None:
            session, fl = P.clone
            cfg = self._clone_targets(session)
            if cfg is not None:
                G = self._reset_metadata(cp, F)
                for idx in cp.field_lists.get(fl, ()):
                    G[idx] = F[idx]
                self._set(G, sm["instance_type"], INSTANCE_EGRESS_CLONE, cp)
                self._replicate(cp, G, P, cfg["replicas"], work, cfg["packet_length_bytes"])
        if sm["egress_spec"] is not None and F[sm["egress_spec"]] == cp.drop_port:
            self.stats["dropped"] += 1
            return
        cp.update(F, P)
        out = cp.deparse(F, P)
        if P.recirc is not None:
            kept = [(i, F[i]) for i in cp.field_lists.get(P.recirc, ())]
            work.append(IngressWork(0, out, kept, INSTANCE_RECIRC))
            return
        if P.trunc:
            out = out[:P.trunc]
        outputs.append((port, out))


__all__ = ["Switch", "TableEntry", "normalize_key", "SwitchError"]


def _table_entry(e) -> TableEntry:
    """The control-plane view of one runtime entry."""
    return TableEntry(e.handle, list(e.key), e.priority, e.action.name if e.action else None,
                      list(e.args), e.member, e.group, e.is_const)
