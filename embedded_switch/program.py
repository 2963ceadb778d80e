"""A BMv2 JSON program, read once into typed records.

The records say what the control plane can name and what the compiler translates.
`describe(json_dict)` reads the JSON into a `Program`; nothing here runs packets or
generates code. Expressions, primitives and parser operations stay JSON (the compiler
interprets them); everything around them is a record.

>>> p = describe({"actions": [{"name": "NoAction", "id": 0, "runtime_data": [], "primitives": []}]})
>>> p.actions["NoAction"].params
[]
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

from embedded_switch.errors import PipelineError

MATCH_KINDS = ("exact", "lpm", "ternary", "range", "optional", "valid")


@contextmanager
def refusing_malformed() -> Iterator[None]:
    """Turn what malformed JSON raises deep inside (a missing key, a wrong type) into PipelineError."""
    try:
        yield
    except PipelineError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise PipelineError(f"malformed BMv2 JSON: {type(exc).__name__}: {exc}") from None


def hex_value(v: Any, where: str) -> int:
    """The integer of a JSON hexstr ("0x1f", "-0x2") or number."""
    try:
        return int(v, 16) if isinstance(v, str) else int(v)
    except (TypeError, ValueError):
        raise PipelineError(f"{where}: bad hexstr {v!r}") from None


# ------------------------------------------------------------------ headers --

@dataclass(frozen=True)
class FieldInfo:
    name: str
    bitwidth: int | None  # None: the varbit field
    signed: bool


@dataclass(frozen=True)
class HeaderTypeInfo:
    name: str
    fields: tuple[FieldInfo, ...]
    max_length: int | None  # bytes; only with a varbit field


@dataclass(frozen=True)
class HeaderInfo:
    name: str
    id: int
    header_type: str
    metadata: bool


@dataclass(frozen=True)
class StackInfo:
    """A header stack, or a header union stack (`elements` are then union ids)."""
    name: str
    elements: tuple[int, ...]


@dataclass(frozen=True)
class UnionInfo:
    name: str
    id: int
    union_type: str | None
    header_ids: tuple[int, ...]


# ---------------------------------------------------------- control plane --

@dataclass(frozen=True)
class ParamInfo:
    name: str
    bitwidth: int


@dataclass(frozen=True)
class ActionInfo:
    name: str
    params: list[ParamInfo]
    ids: tuple[int, ...] = ()  # JSON ids of the action objects with this name


@dataclass(frozen=True)
class KeyFieldInfo:
    name: str
    match_kind: str
    bitwidth: int
    target: Any = None       # [header, field], or the header of a `valid` key
    mask: int | None = None  # a static mask the key applies (within the field's width)
    mask_shift: int = 0      # zero bits below the mask: the masked value is shifted right by as many


@dataclass(frozen=True)
class DefaultEntryInfo:
    action_id: int | None
    action_data: tuple[Any, ...]


@dataclass(frozen=True)
class ConstEntryInfo:
    match_key: tuple[dict, ...]  # JSON, one per key field
    action_id: int | None
    action_data: tuple[Any, ...]
    priority: int  # BMv2's: smaller wins


@dataclass(frozen=True)
class TableInfo:
    name: str
    key: list[KeyFieldInfo]
    action_names: list[str]
    size: int
    const_default: bool
    const_entries: bool
    direct_counter: str | None
    direct_meter: str | None
    action_profile: str | None
    id: int = 0
    match_type: str = "exact"
    support_timeout: bool = False  # entries can age (P4Runtime idle timeout)
    table_type: str = "simple"     # simple | indirect | indirect_ws
    action_ids: tuple[int | None, ...] = ()
    default_entry: DefaultEntryInfo | None = None
    entries: tuple[ConstEntryInfo, ...] = ()
    next_tables: dict[str, str | None] = field(default_factory=dict)
    base_default_next: str | None = None
    with_counters: bool = False


@dataclass(frozen=True)
class CounterInfo:
    name: str
    size: int
    is_direct: bool
    binding: str | None


@dataclass(frozen=True)
class MeterInfo:
    name: str
    size: int
    is_direct: bool
    binding: str | None
    rate_type: str  # 'bytes' | 'packets'
    rate_count: Any = 2
    result_target: list | None = None  # where a direct meter writes its colour


@dataclass(frozen=True)
class RegisterInfo:
    name: str
    size: int
    bitwidth: int


@dataclass(frozen=True)
class CalculationInfo:
    """A hash or checksum over a list of inputs (JSON type/value objects)."""
    name: str
    algo: str | None
    inputs: list


@dataclass(frozen=True)
class ActionProfileInfo:
    name: str
    size: int
    with_selector: bool
    max_group_size: int
    selector: CalculationInfo | None = None


@dataclass(frozen=True)
class DigestInfo:
    """A learn list (P4 `digest<T>`): its name is the P4Info digest name (the struct type)."""
    name: str
    id: int
    fields: list[ParamInfo]
    targets: tuple[list, ...] = ()  # [header, field] of each field


# ---------------------------------------------------------------- packet path --

@dataclass(frozen=True)
class ActionDef:
    """One action object of the JSON (several may share a name)."""
    id: int
    name: str
    params: tuple[ParamInfo, ...]
    primitives: list  # JSON


@dataclass(frozen=True)
class TransitionInfo:
    type: str  # default | hexstr | parse_vset
    value: Any
    mask: Any
    next_state: str | None


@dataclass(frozen=True)
class ParseStateInfo:
    name: str
    id: int
    ops: list   # JSON parser ops
    keys: list  # JSON transition key
    transitions: tuple[TransitionInfo, ...]


@dataclass(frozen=True)
class ParserInfo:
    name: str
    init_state: str | None
    states: tuple[ParseStateInfo, ...]


@dataclass(frozen=True)
class ConditionalInfo:
    name: str
    id: int
    expression: Any  # JSON
    true_next: str | None
    false_next: str | None


@dataclass(frozen=True)
class PipelineInfo:
    name: str
    init_table: str | None
    tables: tuple[TableInfo, ...]
    conditionals: tuple[ConditionalInfo, ...]
    action_profiles: tuple[ActionProfileInfo, ...]
    has_action_calls: bool


@dataclass(frozen=True)
class ChecksumInfo:
    name: str
    type: str | None
    calculation: str
    target: list
    if_cond: Any  # JSON expression, or None
    verify: bool
    update: bool


@dataclass(frozen=True)
class DeparserInfo:
    name: str | None
    order: list[str]
    has_primitives: bool


@dataclass(frozen=True)
class FieldListInfo:
    id: int
    name: str | None
    elements: list  # JSON type/value objects


@dataclass(frozen=True)
class Program:
    """The whole program; `describe` fills it in, reading the JSON once."""
    tables: dict[str, TableInfo] = field(default_factory=dict)
    actions: dict[str, ActionInfo] = field(default_factory=dict)
    counters: dict[str, CounterInfo] = field(default_factory=dict)
    meters: dict[str, MeterInfo] = field(default_factory=dict)
    registers: dict[str, RegisterInfo] = field(default_factory=dict)
    action_profiles: dict[str, ActionProfileInfo] = field(default_factory=dict)
    parsers: dict[str, ParserInfo] = field(default_factory=dict)
    pipelines: dict[str, PipelineInfo] = field(default_factory=dict)
    value_sets: dict[str, int] = field(default_factory=dict)  # name -> bitwidth
    errors: dict[str, int] = field(default_factory=dict)
    digests: dict[str, DigestInfo] = field(default_factory=dict)
    version: Any = field(default_factory=lambda: [2, 0])  # __meta__.version
    header_types: dict[str, HeaderTypeInfo] = field(default_factory=dict)
    headers: tuple[HeaderInfo, ...] = ()
    header_stacks: tuple[StackInfo, ...] = ()
    header_unions: tuple[UnionInfo, ...] = ()
    union_members: dict[str, list[str]] = field(default_factory=dict)  # union type -> member names
    header_union_stacks: tuple[StackInfo, ...] = ()
    field_aliases: dict[str, list] = field(default_factory=dict)
    action_defs: tuple[ActionDef, ...] = ()
    calculations: dict[str, CalculationInfo] = field(default_factory=dict)
    checksums: tuple[ChecksumInfo, ...] = ()
    deparser: DeparserInfo | None = None  # v1model runs the first
    field_lists: tuple[FieldListInfo, ...] = ()
    extern_instances: tuple[str, ...] = ()

    def field_width(self, ref: list, where: str) -> int:
        """Bit width of field [header, field] (also `$valid$`)."""
        hdr, fname = ref
        if fname == "$valid$":
            return 1
        header = {h.name: h for h in self.headers}.get(hdr)
        if header is None:
            raise PipelineError(f"{where}: unknown header instance '{hdr}'")
        for f in self.header_types[header.header_type].fields:
            if f.name == fname:
                if f.bitwidth is None:
                    raise PipelineError(f"{where}: variable-length field '{hdr}.{fname}' is not supported")
                return f.bitwidth
        raise PipelineError(f"{where}: header '{hdr}' has no field '{fname}'")


def _need(obj: dict, key: str, where: str):
    if not isinstance(obj, dict) or key not in obj:
        raise PipelineError(f"{where}: missing attribute '{key}'")
    return obj[key]


def _header_type(t: dict) -> HeaderTypeInfo:
    fields: list[FieldInfo] = []
    for f in t.get("fields", []):
        if f[1] == "*":
            if any(x.bitwidth is None for x in fields):
                raise PipelineError(f"header type '{t['name']}': more than one varbit field")
            if t.get("max_length") is None:
                raise PipelineError(f"header type '{t['name']}': varbit field '{f[0]}' without max_length")
            fields.append(FieldInfo(f[0], None, False))
            continue
        if not isinstance(f[1], int) or f[1] <= 0:
            raise PipelineError(f"header type '{t['name']}': field '{f[0]}' has bad width {f[1]!r}")
        fields.append(FieldInfo(f[0], f[1], bool(f[2]) if len(f) > 2 else False))
    return HeaderTypeInfo(t["name"], tuple(fields), t.get("max_length"))


def _headers(j: dict, types: dict[str, HeaderTypeInfo]) -> tuple[HeaderInfo, ...]:
    out = []
    for h in j.get("headers", []):
        if h["header_type"] not in types:
            raise PipelineError(f"header '{h['name']}': unknown header type '{h['header_type']}'")
        out.append(HeaderInfo(h["name"], h["id"], h["header_type"], bool(h.get("metadata"))))
    return tuple(out)


def _actions(j: dict) -> tuple[tuple[ActionDef, ...], dict[str, ActionInfo]]:
    defs, actions = [], {}
    for a in j.get("actions", []):
        name = _need(a, "name", "actions[]")
        params = [ParamInfo(p["name"], p["bitwidth"]) for p in a.get("runtime_data", [])]
        prev = actions.get(name)
        ids = (prev.ids if prev else ()) + (a["id"],)
        actions[name] = ActionInfo(name, prev.params if prev else params, ids)
        defs.append(ActionDef(a["id"], name, tuple(params), a.get("primitives", [])))
    return tuple(defs), actions


def _meter(m: dict) -> MeterInfo:
    rtype = m.get("type", "packets")
    if rtype not in ("bytes", "packets"):
        raise PipelineError(f"meter_arrays '{m['name']}': unknown type '{rtype}'")
    return MeterInfo(m["name"], m.get("size", 0), bool(m.get("is_direct")), m.get("binding"), rtype,
                     m.get("rate_count", 2), m.get("result_target"))


def _calculation(c: dict) -> CalculationInfo:
    return CalculationInfo(c.get("name"), c.get("algo"), c.get("input", []))


def _action_profile(ap: dict) -> ActionProfileInfo:
    sel = ap.get("selector")
    return ActionProfileInfo(ap["name"], ap.get("max_size", 0), sel is not None, ap.get("max_group_size", 0) or 0,
                             _calculation(sel) if sel is not None else None)


def _key_field(program: Program, k: dict, where: str) -> KeyFieldInfo:
    """One table key element; a static mask narrows its P4Runtime width to the bits it keeps."""
    kind = k.get("match_type")
    if kind not in MATCH_KINDS:
        raise PipelineError(f"{where}: unsupported match kind '{kind}'")
    target = k.get("target")
    name = k.get("name") or (".".join(target) if isinstance(target, list) else str(target))
    if k["match_type"] == "valid":
        return KeyFieldInfo(name, kind, 1, target)
    width = program.field_width(k["target"], where)
    mask = k.get("mask")
    if not mask:
        return KeyFieldInfo(name, kind, width, target)
    m = int(mask, 16) & ((1 << width) - 1)
    if m == 0:
        raise PipelineError(f"{where}: key mask {mask} selects no bit")
    low = (m & -m).bit_length() - 1
    return KeyFieldInfo(name, kind, m.bit_length() - low, target, m, low)


def _table(program: Program, t: dict) -> TableInfo:
    where = f"table '{t['name']}'"
    # selector fields feed the action selector's hash, not the match
    key = [_key_field(program, k, where) for k in t.get("key", []) if k.get("match_type") != "selector"]
    names = t.get("actions", [])
    id_to_action = {d.id: d.name for d in program.action_defs}
    action_names = [id_to_action.get(i, n) for i, n in zip(t.get("action_ids", []), names)] or list(names)
    ids = t.get("action_ids") or [program.actions[n].ids[0] if n in program.actions else None for n in names]
    if len(ids) != len(names):
        raise PipelineError(f"{where}: action_ids and actions differ in length")
    default = t.get("default_entry")
    ttype = t.get("type", "simple")
    direct_counter = next((c.name for c in program.counters.values() if c.is_direct and c.binding == t["name"]), None)
    entries = t.get("entries", [])
    return TableInfo(
        name=t["name"], key=key,
        action_names=action_names,
        size=t.get("max_size", 0),
        const_default=bool((default or {}).get("action_const")),
        const_entries="entries" in t,
        direct_counter=direct_counter if t.get("with_counters") else None,
        direct_meter=t.get("direct_meters"),
        action_profile=t.get("action_profile") if ttype != "simple" else None,
        id=t["id"], match_type=t.get("match_type", "exact"),
        support_timeout=bool(t.get("support_timeout")),
        table_type=ttype, action_ids=tuple(ids),
        default_entry=None if default is None else DefaultEntryInfo(default.get("action_id"),
                                                                    tuple(default.get("action_data", []))),
        entries=tuple(ConstEntryInfo(tuple(e.get("match_key", [])), e.get("action_entry", {}).get("action_id"),
                                     tuple(e.get("action_entry", {}).get("action_data", [])),
                                     int(e.get("priority", i + 1)))
                      for i, e in enumerate(entries)),
        next_tables=t.get("next_tables", {}), base_default_next=t.get("base_default_next"),
        with_counters=bool(t.get("with_counters")))


def _pipeline(program: Program, p: dict) -> PipelineInfo:
    profiles = tuple(_action_profile(ap) for ap in p.get("action_profiles", []))
    program.action_profiles.update((ap.name, ap) for ap in profiles)
    tables = tuple(_table(program, t) for t in p.get("tables", []))
    program.tables.update((t.name, t) for t in tables)
    conditionals = tuple(ConditionalInfo(c["name"], c["id"], c["expression"], c.get("true_next"),
                                         c.get("false_next")) for c in p.get("conditionals", []))
    return PipelineInfo(p["name"], p.get("init_table"), tables, conditionals, profiles,
                        bool(p.get("action_calls")))


def _transition(tr: dict) -> TransitionInfo:
    ttype = tr.get("type") or ("hexstr" if tr.get("value") not in (None, "default") else "default")
    return TransitionInfo(ttype, tr["value"] if ttype == "hexstr" else tr.get("value"), tr.get("mask"),
                          tr.get("next_state"))


def _parser(p: dict) -> ParserInfo:
    states = tuple(ParseStateInfo(s["name"], s["id"], s.get("parser_ops", []), s.get("transition_key", []),
                                  tuple(_transition(tr) for tr in s.get("transitions", [])))
                   for s in p.get("parse_states", []))
    return ParserInfo(p["name"], p.get("init_state"), states)


def _checksum(c: dict) -> ChecksumInfo:
    return ChecksumInfo(c["name"], c.get("type", "generic"), c["calculation"], c["target"],
                        c.get("if_cond"), c.get("verify", True), c.get("update", True))


def _deparser(j: dict) -> DeparserInfo | None:
    deparsers = j.get("deparsers", [])
    d = deparsers[0] if deparsers else None
    return None if d is None else DeparserInfo(d.get("name"), d.get("order", []), bool(d.get("primitives")))


def _digest(program: Program, ll: dict) -> DigestInfo:
    where = f"learn list '{ll.get('name')}'"
    targets = tuple(el["value"] for el in ll.get("elements", []))
    fields = [ParamInfo(".".join(t), program.field_width(t, where)) for t in targets]
    return DigestInfo(ll["name"], ll["id"], fields, targets)


def describe(j: dict) -> Program:
    """Read the whole BMv2 JSON into a `Program`; PipelineError on what cannot be read."""
    if not isinstance(j, dict):
        raise PipelineError("the BMv2 JSON must be an object at top level")
    with refusing_malformed():
        types = {}
        for t in j.get("header_types", []):
            ht = _header_type(t)
            types[ht.name] = ht
        action_defs, actions = _actions(j)
        program = Program(
            actions=actions,
            counters={c["name"]: CounterInfo(c["name"], c.get("size", 0), bool(c.get("is_direct")), c.get("binding"))
                      for c in j.get("counter_arrays", [])},
            meters={m.name: m for m in map(_meter, j.get("meter_arrays", []))},
            registers={r["name"]: RegisterInfo(r["name"], r["size"], r["bitwidth"])
                       for r in j.get("register_arrays", [])},
            version=j.get("__meta__", {}).get("version", [2, 0]),
            header_types=types,
            headers=_headers(j, types),
            header_stacks=tuple(StackInfo(s["name"], tuple(s.get("header_ids", [])))
                                for s in j.get("header_stacks", [])),
            header_unions=tuple(UnionInfo(u["name"], u["id"], u.get("union_type"), tuple(u.get("header_ids", [])))
                                for u in j.get("header_unions", [])),
            union_members={t["name"]: [m[0] for m in t.get("headers", [])] for t in j.get("header_union_types", [])},
            header_union_stacks=tuple(StackInfo(s["name"], tuple(s.get("header_union_ids", [])))
                                      for s in j.get("header_union_stacks", [])),
            field_aliases={a[0]: a[1] for a in j.get("field_aliases", [])},
            action_defs=action_defs,
            calculations={c["name"]: _calculation(c) for c in j.get("calculations", [])},
            checksums=tuple(map(_checksum, j.get("checksums", []))),
            deparser=_deparser(j),
            field_lists=tuple(FieldListInfo(fl["id"], fl.get("name"), fl.get("elements", []))
                              for fl in j.get("field_lists", [])),
            extern_instances=tuple(e.get("name", "?") for e in j.get("extern_instances") or []))
        program.pipelines.update((p["name"], _pipeline(program, p)) for p in j.get("pipelines", []))
        program.parsers.update((p["name"], _parser(p)) for p in j.get("parsers", []))
        program.value_sets.update((v["name"], v.get("compressed_bitwidth", 0)) for v in j.get("parse_vsets", []))
        program.errors.update((e[0], e[1]) for e in j.get("errors", []))
        program.digests.update((ll["name"], _digest(program, ll)) for ll in j.get("learn_lists", []))
        return program
