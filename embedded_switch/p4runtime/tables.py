"""Table entries and their direct counters and meters (TableEntry, DirectCounterEntry,
DirectMeterEntry), written and read through the executor.

Each write records its inverse in a Journal. Inverses find entries again by their key
and priority, never by handle, because undoing a DELETE re-inserts the entry under a
new handle.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from finsy.proto import p4r

from embedded_switch.p4runtime.actions import decode_action, encode_action
from embedded_switch.p4runtime.codec import (
    MeterRates,
    decode_match,
    decode_meter_config,
    encode_match,
    encode_meter_config,
)
from embedded_switch.p4runtime.handler import DELETE, INSERT, MODIFY, Handler, only_modify
from embedded_switch.p4runtime.journal import Journal
from embedded_switch.p4runtime.oneshot import OneShotGroups, OneShotItem, is_hidden
from embedded_switch.p4runtime.pipeline import EntryCookie, Pipeline
from embedded_switch.p4runtime.schema import TableSchema
from embedded_switch.p4runtime.selection import ONESHOT_SUM, WatchPort, check_weights
from embedded_switch.p4runtime.status import (
    Code,
    P4RuntimeError,
    invalid,
    not_found,
    permission_denied,
    unimplemented,
)


@dataclass
class Located:
    """A table entry named by a request: its table, key and priority."""

    table: TableSchema
    key: list
    priority: int

    @property
    def cookie_key(self) -> tuple[str, tuple, int]:
        return (self.table.name, tuple(self.key), self.priority)


class TableEntries(Handler):
    """TableEntry: insert, modify, delete, the default entry, and wildcard reads."""

    def __init__(self, switch, pipeline: Pipeline):
        super().__init__(switch, pipeline)
        self.oneshot = OneShotGroups(switch, pipeline)

    # -- naming entries ---------------------------------------------------------------

    def locate(self, msg: p4r.TableEntry) -> Located:
        """The table, key and priority a (non-default) TableEntry names."""
        table = self.schema.tables[msg.table_id]
        key = decode_match(table.fields, msg.match, table=table.name)
        if msg.priority < 0:
            raise invalid(f"table '{table.name}': priority {msg.priority} is negative")
        if table.needs_priority and msg.priority == 0:
            raise invalid(
                f"table '{table.name}' has ternary, range or optional fields:"
                " entries need a priority above 0"
            )
        if not table.needs_priority and msg.priority != 0:
            raise invalid(
                f"table '{table.name}' has only exact and lpm fields: priority must be 0"
            )
        return Located(table, key, msg.priority)

    def handle(self, where: Located) -> int:
        """The executor's handle of the entry at `where`, or NOT_FOUND."""
        handle = self.switch.table_find(where.table.name, where.key, where.priority)
        if handle is None:
            raise not_found(f"table '{where.table.name}' has no entry with this match key")
        return handle

    def find(self, where: Located):
        """The executor's entry at `where`, or NOT_FOUND."""
        return self._entry(where.table.name, self.handle(where))

    def _entry(self, table: str, handle: int):
        """An entry by handle."""
        return self.switch.table_entry(table, handle)

    def select(self, msg: p4r.TableEntry) -> Iterator[tuple[TableSchema, object]]:
        """(table, entry) pairs a read request selects (match given: at most one)."""
        for table in self.schema.tables.select(msg.table_id):
            if msg.match:
                where = self.locate(msg)
                handle = self.switch.table_find(table.name, where.key, where.priority)
                if handle is not None:
                    yield table, self._entry(table.name, handle)
                continue
            for entry in self.switch.table_entries(table.name):
                if msg.priority and entry.priority != msg.priority:
                    continue
                yield table, entry

    # -- writes -----------------------------------------------------------------------

    def write(self, kind: int, msg: p4r.TableEntry, journal: Journal) -> None:
        table = self.schema.tables[msg.table_id]
        if msg.HasField("time_since_last_hit"):
            raise invalid("time_since_last_hit must not be set in a write")
        if msg.idle_timeout_ns < 0 or (msg.idle_timeout_ns and not table.supports_idle_timeout):
            raise invalid(f"table '{table.name}' does not support idle timeouts")
        if msg.HasField("meter_counter_data"):
            raise unimplemented("per-color meter counters are not supported")
        if msg.is_default_action:
            self._write_default(kind, table, msg, journal)
        elif kind == INSERT:
            self._insert(self.locate(msg), msg, journal)
        elif kind == MODIFY:
            self._modify(self.locate(msg), msg, journal)
        elif kind == DELETE:
            self._delete(self.locate(msg), journal)
        else:
            raise invalid("update type is UNSPECIFIED")

    def _insert(self, where: Located, msg: p4r.TableEntry, journal: Journal) -> None:
        table = where.table
        if table.is_const:
            raise permission_denied(f"table '{table.name}' is const: entries cannot be inserted")
        if not msg.HasField("action"):
            raise invalid(f"INSERT into table '{table.name}' needs an action")
        self._check_direct_resources(table, msg)
        decoded = self._decode_table_action(table, msg.action)
        if self.switch.table_find(table.name, where.key, where.priority) is not None:
            raise P4RuntimeError(
                Code.ALREADY_EXISTS,
                f"table '{table.name}' already has an entry with this match key"
                " (use MODIFY to change its action)",
            )
        handle = self._add(where, **self._realize(table, decoded, journal))
        journal.record(lambda: self.switch.table_delete(table.name, self.handle(where)))
        self._write_direct_resources(where, handle, msg, journal, insert=True)
        journal.assign(self.pipeline.cookies, where.cookie_key, EntryCookie.of(msg))

    def _modify(self, where: Located, msg: p4r.TableEntry, journal: Journal) -> None:
        table = where.table
        self._check_direct_resources(table, msg)
        decoded = self._decode_table_action(table, msg.action) if msg.HasField("action") else None
        entry = self.find(where)
        if decoded is not None:
            if entry.is_const:
                raise permission_denied(
                    f"entry of table '{table.name}' is const: only its direct counter"
                    " and meter can be modified (leave the action unset)"
                )
            self._set_action(where, entry.handle, **self._realize(table, decoded, journal))
            old = _action_of(entry)
            journal.record(lambda: self._set_action(where, self.handle(where), **old))
            self._release(table, entry, journal)
        self._write_direct_resources(where, entry.handle, msg, journal, insert=False)
        journal.assign(self.pipeline.cookies, where.cookie_key, EntryCookie.of(msg))

    def _delete(self, where: Located, journal: Journal) -> None:
        table = where.table
        entry = self.find(where)
        if table.is_const or entry.is_const:
            raise permission_denied(f"entry of table '{table.name}' is const: it cannot be deleted")
        counter = (
            self.switch.direct_counter_read(table.name, entry.handle)
            if table.direct_counter_id
            else None
        )
        meter = None
        if table.direct_meter_id:
            meter = self.switch.direct_meter_get(table.name, entry.handle)
        self.switch.table_delete(table.name, entry.handle)

        def reinsert() -> None:
            handle = self._add(where, **_action_of(entry))
            if counter is not None:
                self.switch.direct_counter_write(table.name, handle, *counter)
            if meter is not None:
                self.switch.direct_meter_set(table.name, handle, meter)

        journal.record(reinsert)
        self._release(table, entry, journal)
        journal.discard(self.pipeline.cookies, where.cookie_key)

    def _write_default(
        self, kind: int, table: TableSchema, msg: p4r.TableEntry, journal: Journal
    ) -> None:
        if kind != MODIFY:
            raise invalid(
                f"the default entry of table '{table.name}' always exists: use MODIFY,"
                f" not {p4r.Update.Type.Name(kind)}"
            )
        if msg.match or msg.priority:
            raise invalid("a default entry has no match fields and priority 0")
        if table.profile_id:
            raise invalid(f"table '{table.name}' is indirect: its default action cannot change")
        if table.const_default_action_id:
            raise permission_denied(f"table '{table.name}' has a const default action")
        if msg.HasField("counter_data") or msg.HasField("meter_config"):
            raise unimplemented("direct resources of default entries are not supported")
        old_action, old_args = self.switch.table_get_default(table.name)
        if msg.HasField("action"):
            if msg.action.WhichOneof("type") != "action":
                raise invalid(f"the default entry of table '{table.name}' needs a direct action")
            name, args = decode_action(
                self.schema,
                table.action_scopes,
                msg.action.action,
                where=f"table '{table.name}'",
                default=True,
            )
            self.switch.table_set_default(table.name, name, args)
        else:
            self.switch.table_reset_default(table.name)
        journal.record(
            lambda: self.switch.table_set_default(table.name, old_action, old_args)
            if old_action
            else self.switch.table_reset_default(table.name)
        )

    # -- actions of entries -----------------------------------------------------------

    def _decode_table_action(self, table: TableSchema, msg: p4r.TableAction) -> dict:
        """The executor's form of a TableAction: action and args, or member, or group."""
        which = msg.WhichOneof("type")
        where = f"table '{table.name}'"
        if not table.profile_id:
            if which != "action":
                raise invalid(f"{where} is a direct table: give an action, not {which}")
            name, args = decode_action(self.schema, table.action_scopes, msg.action, where=where)
            return {"action": name, "args": args}
        profile = self.schema.profiles[table.profile_id]
        if which == "action_profile_member_id":
            if msg.action_profile_member_id not in self.switch.members(profile.name):
                raise not_found(
                    f"action profile '{profile.name}' has no member {msg.action_profile_member_id}"
                )
            return {"member": msg.action_profile_member_id}
        if which == "action_profile_group_id":
            if not profile.with_selector:
                raise invalid(f"action profile '{profile.name}' has no selector, hence no groups")
            if msg.action_profile_group_id not in self.switch.groups(profile.name):
                raise not_found(
                    f"action selector '{profile.name}' has no group {msg.action_profile_group_id}"
                )
            return {"group": msg.action_profile_group_id}
        if which == "action_profile_action_set":
            return {"oneshot": self._decode_action_set(table, msg.action_profile_action_set)}
        raise invalid(f"{where} is indirect: give an action profile member or group id")

    def _decode_action_set(
        self, table: TableSchema, msg: p4r.ActionProfileActionSet
    ) -> list[OneShotItem]:
        """The actions of a one-shot action set, checked in PI's order: the actions, the
        weights and their sum; then the watch ports (the executor checks the ports)."""
        profile = self.schema.profiles[table.profile_id]
        where = f"table '{table.name}'"
        if not profile.with_selector:
            raise invalid(f"{where}: one-shot action sets need an action selector")
        if not msg.action_profile_actions:
            raise invalid(f"{where}: the one-shot action set is empty")
        actions = [
            decode_action(self.schema, table.action_scopes, item.action, where=where)
            for item in msg.action_profile_actions
        ]
        check_weights(
            [item.weight for item in msg.action_profile_actions],
            profile.max_group_size,
            f"{where}: one-shot action set",
            ONESHOT_SUM,
        )
        return [
            OneShotItem(name, args, item.weight, WatchPort.of(item, f"{where}: action {i}"))
            for i, ((name, args), item) in enumerate(zip(actions, msg.action_profile_actions))
        ]

    def _realize(self, table: TableSchema, action: dict, journal: Journal) -> dict:
        """Create the hidden group of a one-shot action set; other actions pass through."""
        if "oneshot" not in action:
            return action
        profile = self.schema.profiles[table.profile_id].name
        return {"group": self.oneshot.create(profile, action["oneshot"], journal)}

    def _release(self, table: TableSchema, old_entry, journal: Journal) -> None:
        """Delete the hidden group an entry no longer points to."""
        if is_hidden(old_entry.group):
            profile = self.schema.profiles[table.profile_id].name
            self.oneshot.delete(profile, old_entry.group, journal)

    def _add(self, where: Located, *, action=None, args=(), member=None, group=None) -> int:
        table = where.table.name
        if member is None and group is None:
            return self.switch.table_add(table, where.key, action, list(args), where.priority)
        return self.switch.table_add_indirect(
            table, where.key, member=member, group=group, priority=where.priority
        )

    def _set_action(
        self, where: Located, handle: int, *, action=None, args=(), member=None, group=None
    ) -> None:
        table = where.table.name
        if member is None and group is None:
            self.switch.table_modify(table, handle, action, list(args))
        else:
            self.switch.table_modify_indirect(table, handle, member=member, group=group)

    # -- direct resources -------------------------------------------------------------

    @staticmethod
    def _check_direct_resources(table: TableSchema, msg: p4r.TableEntry) -> None:
        if msg.HasField("counter_data") and not table.direct_counter_id:
            raise invalid(f"table '{table.name}' has no direct counter")
        if msg.HasField("meter_config") and not table.direct_meter_id:
            raise invalid(f"table '{table.name}' has no direct meter")

    def _write_direct_resources(
        self, where: Located, handle: int, msg: p4r.TableEntry, journal: Journal, *, insert: bool
    ) -> None:
        """counter_data when set; meter_config when set, and reset when unset on MODIFY."""
        table = where.table
        if msg.HasField("counter_data"):
            data = msg.counter_data
            self.write_direct_counter(where, handle, data.packet_count, data.byte_count, journal)
        if table.direct_meter_id and (msg.HasField("meter_config") or not insert):
            rates = (
                decode_meter_config(msg.meter_config, f"direct meter of '{table.name}'")
                if msg.HasField("meter_config")
                else None
            )
            self.write_direct_meter(where, handle, rates, journal)

    def write_direct_counter(
        self, where: Located, handle: int, packets: int, bytes_: int, journal: Journal
    ) -> None:
        if packets < 0 or bytes_ < 0:
            raise invalid("counter values must not be negative")
        table = where.table.name
        old = self.switch.direct_counter_read(table, handle)
        self.switch.direct_counter_write(table, handle, packets, bytes_)
        journal.record(lambda: self.switch.direct_counter_write(table, self.handle(where), *old))

    def write_direct_meter(
        self, where: Located, handle: int, rates: MeterRates, journal: Journal
    ) -> None:
        table = where.table.name
        old = self.switch.direct_meter_get(table, handle)
        self.switch.direct_meter_set(table, handle, rates)
        journal.record(lambda: self.switch.direct_meter_set(table, self.handle(where), old))

    # -- reads ------------------------------------------------------------------------

    def read(self, msg: p4r.TableEntry) -> Iterator[p4r.Entity]:
        if msg.is_default_action:
            for table in self.schema.tables.select(msg.table_id):
                if not table.profile_id:
                    yield p4r.Entity(table_entry=self._encode_default(table))
            return
        action_id = msg.action.action.action_id if msg.action.HasField("action") else 0
        for table, entry in self.select(msg):
            encoded = self.encode(table, entry, msg)
            if action_id and encoded.action.action.action_id != action_id:
                continue
            if msg.controller_metadata and encoded.controller_metadata != msg.controller_metadata:
                continue
            if msg.metadata and encoded.metadata != msg.metadata:
                continue
            yield p4r.Entity(table_entry=encoded)

    def encode(self, table: TableSchema, entry, request: p4r.TableEntry) -> p4r.TableEntry:
        """A TableEntry as a Read returns it; direct resources as the request asks."""
        cookie = self.pipeline.cookies.get(
            (table.name, tuple(entry.key), entry.priority), EntryCookie()
        )
        msg = self.encode_key(table, entry)
        msg.controller_metadata = cookie.controller_metadata
        msg.metadata = cookie.metadata
        msg.idle_timeout_ns = cookie.idle_timeout_ns
        msg.is_const = bool(entry.is_const)
        if entry.member is not None:
            msg.action.action_profile_member_id = entry.member
        elif is_hidden(entry.group):
            profile = self.schema.profiles[table.profile_id].name
            msg.action.action_profile_action_set.action_profile_actions.extend(
                self.oneshot.encode(profile, entry.group)
            )
        elif entry.group is not None:
            msg.action.action_profile_group_id = entry.group
        else:
            msg.action.action.CopyFrom(encode_action(self.schema, entry.action, entry.args))
        if request.HasField("counter_data") and table.direct_counter_id:
            packets, bytes_ = self.switch.direct_counter_read(table.name, entry.handle)
            msg.counter_data.CopyFrom(p4r.CounterData(packet_count=packets, byte_count=bytes_))
        if request.HasField("meter_config") and table.direct_meter_id:
            config = encode_meter_config(self.switch.direct_meter_get(table.name, entry.handle))
            if config is not None:
                msg.meter_config.CopyFrom(config)
        if request.HasField("time_since_last_hit"):
            msg.time_since_last_hit.elapsed_ns = 0
        return msg

    @staticmethod
    def encode_key(table: TableSchema, entry) -> p4r.TableEntry:
        """The key part of a TableEntry: table id, match and priority."""
        return p4r.TableEntry(
            table_id=table.id,
            match=encode_match(table.fields, entry.key),
            priority=entry.priority if table.needs_priority else 0,
        )

    def _encode_default(self, table: TableSchema) -> p4r.TableEntry:
        msg = p4r.TableEntry(table_id=table.id, is_default_action=True)
        action, args = self.switch.table_get_default(table.name)
        if action:
            msg.action.action.CopyFrom(encode_action(self.schema, action, args))
        return msg


def _action_of(entry) -> dict:
    """An executor entry's action, as `_add` and `_set_action` take it."""
    if entry.member is not None:
        return {"member": entry.member}
    if entry.group is not None:
        return {"group": entry.group}
    return {"action": entry.action, "args": list(entry.args)}


class DirectCounters(Handler):
    """DirectCounterEntry: a table entry's counter, MODIFY and read (wildcards allowed)."""

    def __init__(self, switch, pipeline: Pipeline):
        super().__init__(switch, pipeline)
        self.tables = TableEntries(switch, pipeline)

    def write(self, kind: int, msg: p4r.DirectCounterEntry, journal: Journal) -> None:
        only_modify(kind, "DirectCounterEntry")
        where = _direct_target(self.tables, msg.table_entry, "direct_counter_id", "counter")
        handle = self.tables.handle(where)
        if msg.HasField("data"):
            self.tables.write_direct_counter(
                where, handle, msg.data.packet_count, msg.data.byte_count, journal
            )

    def read(self, msg: p4r.DirectCounterEntry) -> Iterator[p4r.Entity]:
        for table, entry in _direct_entries(self.tables, msg.table_entry, "direct_counter_id"):
            packets, bytes_ = self.switch.direct_counter_read(table.name, entry.handle)
            yield p4r.Entity(
                direct_counter_entry=p4r.DirectCounterEntry(
                    table_entry=TableEntries.encode_key(table, entry),
                    data=p4r.CounterData(packet_count=packets, byte_count=bytes_),
                )
            )


class DirectMeters(Handler):
    """DirectMeterEntry: a table entry's meter config, MODIFY and read."""

    def __init__(self, switch, pipeline: Pipeline):
        super().__init__(switch, pipeline)
        self.tables = TableEntries(switch, pipeline)

    def write(self, kind: int, msg: p4r.DirectMeterEntry, journal: Journal) -> None:
        only_modify(kind, "DirectMeterEntry")
        if msg.HasField("counter_data"):
            raise unimplemented("per-color meter counters are not supported")
        where = _direct_target(self.tables, msg.table_entry, "direct_meter_id", "meter")
        handle = self.tables.handle(where)
        rates = (
            decode_meter_config(msg.config, f"direct meter of '{where.table.name}'")
            if msg.HasField("config")
            else None
        )
        self.tables.write_direct_meter(where, handle, rates, journal)

    def read(self, msg: p4r.DirectMeterEntry) -> Iterator[p4r.Entity]:
        if msg.HasField("counter_data"):
            raise unimplemented("per-color meter counters are not supported")
        for table, entry in _direct_entries(self.tables, msg.table_entry, "direct_meter_id"):
            out = p4r.DirectMeterEntry(table_entry=TableEntries.encode_key(table, entry))
            config = encode_meter_config(self.switch.direct_meter_get(table.name, entry.handle))
            if config is not None:
                out.config.CopyFrom(config)
            yield p4r.Entity(direct_meter_entry=out)


def _direct_target(tables: TableEntries, msg: p4r.TableEntry, attr: str, what: str) -> Located:
    table = tables.schema.tables[msg.table_id]
    if not getattr(table, attr):
        raise invalid(f"table '{table.name}' has no direct {what}")
    if msg.is_default_action:
        raise unimplemented(f"the direct {what} of a default entry is not supported")
    return tables.locate(msg)


def _direct_entries(tables: TableEntries, msg: p4r.TableEntry, attr: str):
    """Entries whose direct resource a read selects; a named missing entry is NOT_FOUND."""
    if msg.table_id and not getattr(tables.schema.tables[msg.table_id], attr):
        table = tables.schema.tables[msg.table_id].name
        raise invalid(f"table '{table}' has no such direct resource")
    if msg.match:
        tables.handle(tables.locate(msg))
    for table, entry in tables.select(msg):
        if getattr(table, attr):
            yield table, entry
