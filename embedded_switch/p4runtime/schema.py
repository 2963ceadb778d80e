"""The P4Info the controller sent, bound to the BMv2 JSON program the executor loaded.

A `Schema` is built once per pipeline. It maps P4Info ids to the executor's names,
orders match fields and action parameters as the executor expects them, and checks
that the P4Info and the JSON describe the same program: every P4Info table, action,
counter, meter, register, action profile and digest the JSON has must have there the same
key fields, parameters and widths. A mismatch is an INVALID_ARGUMENT naming what differs.

p4c leaves some objects out of the JSON that it puts in the P4Info (an unused action
profile or digest, a table it folded away) or names them otherwise there. BMv2 loads
such a pair and refuses only what uses the missing object; so does the schema: it warns
at load, keeps the object's id as absent, refuses (NOT_FOUND) every write and read
naming it, and leaves it out of wildcard reads.

    schema = Schema.bind(p4info, switch.program)
    table = schema.tables.by_id[table_id]      # TableSchema
    table.fields                                # match fields in executor key order
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from finsy.proto import p4i, p4t

from embedded_switch.p4runtime.codec import PRIORITY_KINDS, MatchField
from embedded_switch.p4runtime.status import invalid, not_found

log = logging.getLogger(__name__)

T = TypeVar("T")

_MATCH_KINDS = {
    p4i.MatchField.EXACT: "exact",
    p4i.MatchField.LPM: "lpm",
    p4i.MatchField.TERNARY: "ternary",
    p4i.MatchField.RANGE: "range",
    p4i.MatchField.OPTIONAL: "optional",
}


@dataclass(frozen=True)
class Param:
    id: int
    name: str
    bitwidth: int


@dataclass(frozen=True)
class ActionSchema:
    """An action; `params` are in the order of the executor's argument list."""

    id: int
    name: str
    params: tuple[Param, ...]
    in_json: bool = True  # False: only the P4Info has it (BMv2 loads such a pair; no entry may use it)


@dataclass(frozen=True)
class TableSchema:
    """A table; `fields` are in the order of the executor's key."""

    id: int
    name: str
    fields: tuple[MatchField, ...]
    action_scopes: dict[int, int]  # action id -> p4i.ActionRef.Scope
    const_default_action_id: int
    profile_id: int  # 0 for a direct table
    direct_counter_id: int
    direct_meter_id: int
    size: int
    is_const: bool
    supports_idle_timeout: bool

    @property
    def needs_priority(self) -> bool:
        return any(f.kind in PRIORITY_KINDS for f in self.fields)


@dataclass(frozen=True)
class ArraySchema:
    """An indexed extern: counter, meter or register (`bitwidth` for registers)."""

    id: int
    name: str
    size: int
    bitwidth: int = 0


@dataclass(frozen=True)
class DirectSchema:
    """A direct counter or meter, attached to one table."""

    id: int
    name: str
    table_id: int


@dataclass(frozen=True)
class ProfileSchema:
    """An action profile (`with_selector`: an action selector)."""

    id: int
    name: str
    table_ids: tuple[int, ...]
    with_selector: bool
    size: int
    max_group_size: int


@dataclass(frozen=True)
class ControllerHeader:
    """The `packet_in` or `packet_out` header: metadata fields, outermost first."""

    name: str
    fields: tuple[Param, ...]


@dataclass(frozen=True)
class DigestSchema:
    """A P4 `digest<T>`: how its data travels (`struct`, `tuple` or a lone `bitstring`)
    and the widths of the values the data plane reports, in order."""

    id: int
    name: str
    kind: str
    widths: tuple[int, ...]


@dataclass
class Catalog(Generic[T]):
    """P4 objects of one kind, by P4Info id; `absent` names those only the P4Info has."""

    kind: str
    by_id: dict[int, T] = field(default_factory=dict)
    absent: dict[int, str] = field(default_factory=dict)

    def add(self, id_: int, obj: T) -> None:
        self.by_id[id_] = obj

    def __getitem__(self, id_: int) -> T:
        try:
            return self.by_id[id_]
        except KeyError:
            pass
        if id_ in self.absent:
            raise not_found(
                f"P4Info {self.kind} '{self.absent[id_]}' is not in the BMv2 JSON (p4c left"
                " it out or named it otherwise): nothing can be written to it or read from it"
            )
        raise invalid(f"the P4Info has no {self.kind} with id {id_}")

    def __iter__(self):
        return iter(self.by_id.values())

    def __len__(self) -> int:
        return len(self.by_id)

    def select(self, id_: int) -> list[T]:
        """All objects for id 0 (a wildcard read, which passes over absent ones),
        else the one with that id."""
        return list(self) if id_ == 0 else [self[id_]]


@dataclass
class Schema:
    """Everything the server needs to know about the pipeline, by P4Info id."""

    tables: Catalog[TableSchema]
    actions: Catalog[ActionSchema]
    counters: Catalog[ArraySchema]
    direct_counters: Catalog[DirectSchema]
    meters: Catalog[ArraySchema]
    direct_meters: Catalog[DirectSchema]
    registers: Catalog[ArraySchema]
    profiles: Catalog[ProfileSchema]
    digests: Catalog[DigestSchema]
    packet_in: ControllerHeader | None
    packet_out: ControllerHeader | None
    action_ids: dict[str, int]  # executor action name -> P4Info id

    @classmethod
    def bind(cls, p4info: p4i.P4Info, program) -> Schema:
        """Check `p4info` against the executor's `program` and build the schema."""
        return _Binder(p4info, program).schema()


class _Absent(Exception):
    """A P4Info object the BMv2 JSON does not have."""


class _Binder:
    """Builds a Schema, refusing any P4Info object the JSON program contradicts."""

    def __init__(self, p4info: p4i.P4Info, program):
        self.p4info = p4info
        self.program = program

    def schema(self) -> Schema:
        p = self.p4info
        actions = self._catalog("action", p.actions, self._action)
        direct_counters = self._catalog(
            "direct counter", p.direct_counters, lambda c: self._direct(c, "counter")
        )
        direct_meters = self._catalog(
            "direct meter", p.direct_meters, lambda m: self._direct(m, "meter")
        )
        schema = Schema(
            tables=self._catalog(
                "table",
                p.tables,
                lambda t: self._table(t, actions, direct_counters, direct_meters),
            ),
            actions=actions,
            counters=self._catalog("counter", p.counters, self._counter),
            direct_counters=direct_counters,
            meters=self._catalog("meter", p.meters, self._meter),
            direct_meters=direct_meters,
            registers=self._catalog("register", p.registers, self._register),
            profiles=self._catalog("action profile", p.action_profiles, self._profile),
            digests=self._catalog("digest", p.digests, self._digest),
            packet_in=self._controller_header("packet_in"),
            packet_out=self._controller_header("packet_out"),
            action_ids={a.name: a.id for a in actions},
        )
        for direct in (*schema.direct_counters, *schema.direct_meters):
            schema.tables[direct.table_id]  # a dangling table id is an error
        return schema

    @staticmethod
    def _catalog(kind: str, msgs: Iterable, build: Callable) -> Catalog:
        catalog: Catalog = Catalog(kind)
        for msg in msgs:
            id_, name = msg.preamble.id, msg.preamble.name
            if id_ in catalog.by_id or id_ in catalog.absent:
                raise invalid(f"P4Info {kind} id {id_:#x} is used twice")
            try:
                catalog.add(id_, build(msg))
            except _Absent:
                # p4c leaves unused profiles and digests and folded tables out of the
                # JSON (and names some tuple digests otherwise); BMv2 loads the pair
                # and refuses only what names such an object
                log.warning("P4Info %s '%s' is not in the BMv2 JSON (p4c left it out or named"
                            " it otherwise): nothing can be written to it or read from it", kind, name)
                catalog.absent[id_] = name
        return catalog

    @staticmethod
    def _lookup(collection: dict, name: str):
        """The JSON's object `name`; _Absent if the JSON has none."""
        try:
            return collection[name]
        except KeyError:
            raise _Absent from None

    def _action(self, msg: p4i.Action) -> ActionSchema:
        name = msg.preamble.name
        if name not in self.program.actions:
            # p4c names NoAction in the P4Info of some programs (nested switch statements)
            # whose JSON has none; BMv2 loads them and refuses only entries that use it
            log.warning("P4Info action '%s' does not exist in the BMv2 JSON: no entry can use it", name)
            params = tuple(Param(p.id, p.name, p.bitwidth) for p in msg.params)
            return ActionSchema(msg.preamble.id, name, params, in_json=False)
        info = self.program.actions[name]
        json_params = {p.name: (i, p.bitwidth) for i, p in enumerate(info.params)}
        if len(msg.params) != len(json_params):
            raise invalid(
                f"P4Info action '{name}' has {len(msg.params)} parameters"
                f" but the BMv2 JSON has {len(json_params)}"
            )
        params: list[tuple[int, Param]] = []
        for p in msg.params:
            where = f"parameter '{p.name}' of P4Info action '{name}'"
            if p.name not in json_params:
                raise invalid(f"{where} does not exist in the BMv2 JSON")
            index, width = json_params[p.name]
            if width != p.bitwidth:
                raise invalid(f"{where} is {p.bitwidth} bits but {width} in the BMv2 JSON")
            params.append((index, Param(p.id, p.name, p.bitwidth)))
        return ActionSchema(msg.preamble.id, name, tuple(p for _, p in sorted(params)))

    def _table(
        self,
        msg: p4i.Table,
        actions: Catalog[ActionSchema],
        direct_counters: Catalog[DirectSchema],
        direct_meters: Catalog[DirectSchema],
    ) -> TableSchema:
        name = msg.preamble.name
        info = self._lookup(self.program.tables, name)
        json_key = {k.name: (i, k) for i, k in enumerate(info.key)}
        if len(msg.match_fields) != len(json_key):
            raise invalid(
                f"P4Info table '{name}' has {len(msg.match_fields)} match fields"
                f" but the BMv2 JSON has {len(json_key)}"
            )
        fields: list[tuple[int, MatchField]] = []
        for mf in msg.match_fields:
            where = f"match field '{mf.name}' of P4Info table '{name}'"
            kind = _MATCH_KINDS.get(mf.match_type)
            if kind is None:
                raise invalid(f"{where} has a match kind the embedded switch does not support")
            if mf.name not in json_key:
                raise invalid(f"{where} does not exist in the BMv2 JSON")
            index, key = json_key[mf.name]
            if key.bitwidth != mf.bitwidth:
                # p4c's P4Info and JSON disagree on keys on expressions, slices, errors
                # and translated types (0 bits: a string in the P4Info). BMv2 loads them,
                # takes values in the P4Info's width and matches in the JSON's; a value in
                # other bytes than the JSON's it refuses, and so does the codec, per entry
                same_bytes = (mf.bitwidth + 7) // 8 == (key.bitwidth + 7) // 8
                log.warning("%s is %d bits but %d in the BMv2 JSON%s", where, mf.bitwidth,
                            key.bitwidth, "" if same_bytes else ": no entry can match on it")
            json_kind = str(key.match_kind).lower()
            if json_kind != kind and (kind, json_kind) != ("optional", "ternary"):
                raise invalid(f"{where} is {kind} but {json_kind} in the BMv2 JSON")
            json_width = key.bitwidth if key.bitwidth != mf.bitwidth else 0
            fields.append((index, MatchField(mf.id, mf.name, mf.bitwidth, kind, json_kind, json_width)))
        for ref in msg.action_refs:
            action = actions[ref.id]
            if action.in_json and action.name not in info.action_names:
                raise invalid(
                    f"P4Info table '{name}' lists action '{action.name}',"
                    " which the BMv2 JSON table does not have"
                )
        table_id = msg.preamble.id
        profiles = {p.preamble.id: p.preamble.name for p in self.p4info.action_profiles}
        profile = profiles.get(msg.implementation_id)
        if profile != info.action_profile:
            raise invalid(
                f"P4Info table '{name}' is implemented by action profile '{profile}'"
                f" but the BMv2 JSON says '{info.action_profile}'"
            )
        return TableSchema(
            id=table_id,
            name=name,
            fields=tuple(f for _, f in sorted(fields, key=lambda x: x[0])),
            action_scopes={ref.id: ref.scope for ref in msg.action_refs},
            const_default_action_id=msg.const_default_action_id,
            profile_id=msg.implementation_id,
            direct_counter_id=next(
                (c.id for c in direct_counters if c.table_id == table_id), 0
            ),
            direct_meter_id=next((m.id for m in direct_meters if m.table_id == table_id), 0),
            size=msg.size,
            is_const=msg.is_const_table,
            supports_idle_timeout=msg.idle_timeout_behavior == p4i.Table.NOTIFY_CONTROL,
        )

    def _array(self, kind: str, collection: dict, msg, bitwidth: int = 0) -> ArraySchema:
        name = msg.preamble.name
        info = self._lookup(collection, name)
        if getattr(info, "is_direct", False):
            raise invalid(f"P4Info {kind} '{name}' is indexed but direct in the BMv2 JSON")
        if info.size != msg.size:
            raise invalid(
                f"P4Info {kind} '{name}' has {msg.size} cells but {info.size} in the BMv2 JSON"
            )
        return ArraySchema(msg.preamble.id, name, msg.size, bitwidth)

    def _counter(self, msg: p4i.Counter) -> ArraySchema:
        return self._array("counter", self.program.counters, msg)

    def _meter(self, msg: p4i.Meter) -> ArraySchema:
        return self._array("meter", self.program.meters, msg)

    def _register(self, msg: p4i.Register) -> ArraySchema:
        name = msg.preamble.name
        width = self._bitwidth(msg.type_spec, f"P4Info register '{name}'")
        schema = self._array("register", self.program.registers, msg, width)
        json_width = self.program.registers[name].bitwidth
        if json_width != width:
            raise invalid(
                f"P4Info register '{name}' is {width} bits wide but {json_width} in the BMv2 JSON"
            )
        return schema

    def _direct(self, msg, kind: str) -> DirectSchema:
        name = msg.preamble.name
        collection = self.program.counters if kind == "counter" else self.program.meters
        info = self._lookup(collection, name)
        table = next(
            (t.preamble.name for t in self.p4info.tables if t.preamble.id == msg.direct_table_id),
            None,
        )
        if not info.is_direct or info.binding != table:
            raise invalid(
                f"P4Info direct {kind} '{name}' belongs to table '{table}'"
                f" but the BMv2 JSON binds it to '{info.binding}'"
            )
        return DirectSchema(msg.preamble.id, name, msg.direct_table_id)

    def _profile(self, msg: p4i.ActionProfile) -> ProfileSchema:
        name = msg.preamble.name
        info = self._lookup(self.program.action_profiles, name)
        if bool(info.with_selector) != msg.with_selector:
            raise invalid(
                f"P4Info action profile '{name}' "
                + ("has" if msg.with_selector else "has no")
                + " selector, the BMv2 JSON disagrees"
            )
        return ProfileSchema(
            id=msg.preamble.id,
            name=name,
            table_ids=tuple(msg.table_ids),
            with_selector=msg.with_selector,
            size=msg.size,
            max_group_size=msg.max_group_size,
        )

    def _digest(self, msg: p4i.Digest) -> DigestSchema:
        name = msg.preamble.name
        info = self._lookup(self.program.digests, name)
        kind = msg.type_spec.WhichOneof("type_spec")
        if kind == "struct":
            struct = self.p4info.type_info.structs.get(msg.type_spec.struct.name)
            if struct is None:
                raise invalid(f"P4Info digest '{name}': struct '{msg.type_spec.struct.name}'"
                              " is missing from type_info")
            members = [m.type_spec for m in struct.members]
        elif kind == "tuple":
            members = list(msg.type_spec.tuple.members)
        elif kind == "bitstring":
            members = [msg.type_spec]
        else:
            raise invalid(f"P4Info digest '{name}' is a {kind}; digests of structs, tuples"
                          " and bitstrings are supported")
        widths = tuple(self._bitwidth(m, f"P4Info digest '{name}'") for m in members)
        json_widths = tuple(f.bitwidth for f in info.fields)
        if widths != json_widths:
            raise invalid(f"P4Info digest '{name}' has fields of {list(widths)} bits"
                          f" but the BMv2 JSON has {list(json_widths)}")
        return DigestSchema(msg.preamble.id, name, kind, widths)

    def _bitwidth(self, type_spec: p4t.P4DataTypeSpec, where: str) -> int:
        """The width of a `bit<W>`, `int<W>` or serializable `enum bit<W>` type (registers
        and digests hold nothing else); the P4Info gives an enum's width in its type_info."""
        kind = type_spec.WhichOneof("type_spec")
        if kind == "bitstring":
            bits = type_spec.bitstring.WhichOneof("type_spec")
            if bits in ("bit", "int"):
                return getattr(type_spec.bitstring, bits).bitwidth
        elif kind == "serializable_enum":
            enum = self.p4info.type_info.serializable_enums.get(type_spec.serializable_enum.name)
            if enum is None:
                raise invalid(f"{where}: enum '{type_spec.serializable_enum.name}' is missing from type_info")
            return enum.underlying_type.bitwidth
        raise invalid(f"{where}: only bit<W>, int<W> and serializable enum values are supported")

    def _controller_header(self, name: str) -> ControllerHeader | None:
        for header in self.p4info.controller_packet_metadata:
            if header.preamble.name == name:
                return ControllerHeader(
                    name, tuple(Param(m.id, m.name, m.bitwidth) for m in header.metadata)
                )
        return None
