"""Read-only description of a loaded BMv2 JSON program: what the control plane can name.

`describe(json_dict)` turns the JSON into a `Program`; nothing here runs packets.

>>> p = describe({"actions": [{"name": "NoAction", "id": 0, "runtime_data": [], "primitives": []}]})
>>> p.actions["NoAction"].params
[]
"""
from __future__ import annotations

from dataclasses import dataclass, field

from embedded_switch.errors import PipelineError

MATCH_KINDS = ("exact", "lpm", "ternary", "range", "optional", "valid")


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


@dataclass(frozen=True)
class RegisterInfo:
    name: str
    size: int
    bitwidth: int


@dataclass(frozen=True)
class ActionProfileInfo:
    name: str
    size: int
    with_selector: bool
    max_group_size: int


@dataclass(frozen=True)
class DigestInfo:
    """A learn list (P4 `digest<T>`): its name is the P4Info digest name (the struct type)."""
    name: str
    id: int
    fields: list[ParamInfo]


@dataclass(frozen=True)
class ParserInfo:
    name: str
    init_state: str | None
    states: list[str]


@dataclass(frozen=True)
class Program:
    tables: dict[str, TableInfo] = field(default_factory=dict)
    actions: dict[str, ActionInfo] = field(default_factory=dict)
    counters: dict[str, CounterInfo] = field(default_factory=dict)
    meters: dict[str, MeterInfo] = field(default_factory=dict)
    registers: dict[str, RegisterInfo] = field(default_factory=dict)
    action_profiles: dict[str, ActionProfileInfo] = field(default_factory=dict)
    parsers: dict[str, ParserInfo] = field(default_factory=dict)
    pipelines: list[str] = field(default_factory=list)
    value_sets: dict[str, int] = field(default_factory=dict)  # name -> bitwidth
    errors: dict[str, int] = field(default_factory=dict)
    digests: dict[str, DigestInfo] = field(default_factory=dict)


def _need(obj: dict, key: str, where: str):
    if not isinstance(obj, dict) or key not in obj:
        raise PipelineError(f"{where}: missing attribute '{key}'")
    return obj[key]


def field_width(j: dict, ref: list, where: str) -> int:
    """Bit width of field [header, field] in the JSON (also `$valid$`)."""
    hdr, fname = ref
    if fname == "$valid$":
        return 1
    headers = {h["name"]: h for h in j.get("headers", [])}
    types = {t["name"]: t for t in j.get("header_types", [])}
    if hdr not in headers:
        raise PipelineError(f"{where}: unknown header instance '{hdr}'")
    for f in types[headers[hdr]["header_type"]]["fields"]:
        if f[0] == fname:
            if not isinstance(f[1], int):
                raise PipelineError(f"{where}: variable-length field '{hdr}.{fname}' is not supported")
            return f[1]
    raise PipelineError(f"{where}: header '{hdr}' has no field '{fname}'")


def key_width(j: dict, k: dict, where: str) -> int:
    """P4Runtime bit width of one table key element (a static mask narrows it)."""
    if k["match_type"] == "valid":
        return 1
    width = field_width(j, k["target"], where)
    mask = k.get("mask")
    if mask:
        m = int(mask, 16) & ((1 << width) - 1)
        if m == 0:
            raise PipelineError(f"{where}: key mask {mask} selects no bit")
        low = (m & -m).bit_length() - 1
        width = m.bit_length() - low
    return width


def describe(j: dict) -> Program:
    """Build the control-plane description of the program from its JSON."""
    actions: dict[str, ActionInfo] = {}
    for a in j.get("actions", []):
        name = _need(a, "name", "actions[]")
        params = [ParamInfo(p["name"], p["bitwidth"]) for p in a.get("runtime_data", [])]
        prev = actions.get(name)
        ids = (prev.ids if prev else ()) + (a["id"],)
        actions[name] = ActionInfo(name, prev.params if prev else params, ids)
    id_to_action = {a["id"]: a["name"] for a in j.get("actions", [])}

    counters, meters, registers, profiles, tables = {}, {}, {}, {}, {}
    for c in j.get("counter_arrays", []):
        counters[c["name"]] = CounterInfo(c["name"], c.get("size", 0), bool(c.get("is_direct")),
                                          c.get("binding"))
    for m in j.get("meter_arrays", []):
        rtype = m.get("type", "packets")
        if rtype not in ("bytes", "packets"):
            raise PipelineError(f"meter_arrays '{m['name']}': unknown type '{rtype}'")
        meters[m["name"]] = MeterInfo(m["name"], m.get("size", 0), bool(m.get("is_direct")),
                                      m.get("binding"), rtype)
    for r in j.get("register_arrays", []):
        registers[r["name"]] = RegisterInfo(r["name"], r["size"], r["bitwidth"])
    pipelines = []
    for p in j.get("pipelines", []):
        pipelines.append(p["name"])
        for ap in p.get("action_profiles", []):
            sel = ap.get("selector")
            profiles[ap["name"]] = ActionProfileInfo(ap["name"], ap.get("max_size", 0), sel is not None,
                                                     ap.get("max_group_size", 0) or 0)
        for t in p.get("tables", []):
            where = f"table '{t['name']}'"
            key = []
            for k in t.get("key", []):
                kind = k.get("match_type")
                if kind == "selector":
                    continue  # selector fields feed the action selector's hash, not the match
                if kind not in MATCH_KINDS:
                    raise PipelineError(f"{where}: unsupported match kind '{kind}'")
                target = k.get("target")
                kname = k.get("name") or (".".join(target) if isinstance(target, list) else str(target))
                key.append(KeyFieldInfo(kname, kind, key_width(j, k, where)))
            default = t.get("default_entry") or {}
            direct_counter = next((c.name for c in counters.values()
                                   if c.is_direct and c.binding == t["name"]), None)
            ttype = t.get("type", "simple")
            tables[t["name"]] = TableInfo(
                name=t["name"], key=key,
                action_names=[id_to_action.get(i, n) for i, n in
                              zip(t.get("action_ids", []), t.get("actions", []))] or list(t.get("actions", [])),
                size=t.get("max_size", 0),
                const_default=bool(default.get("action_const")),
                const_entries="entries" in t,
                direct_counter=direct_counter if t.get("with_counters") else None,
                direct_meter=t.get("direct_meters"),
                action_profile=t.get("action_profile") if ttype != "simple" else None,
                id=t.get("id", 0), match_type=t.get("match_type", "exact"),
                support_timeout=bool(t.get("support_timeout")))
    parsers = {}
    for p in j.get("parsers", []):
        parsers[p["name"]] = ParserInfo(p["name"], p.get("init_state"),
                                        [s["name"] for s in p.get("parse_states", [])])
    value_sets = {v["name"]: v.get("compressed_bitwidth", 0) for v in j.get("parse_vsets", [])}
    errors = {e[0]: e[1] for e in j.get("errors", [])}
    digests = {}
    for ll in j.get("learn_lists", []):
        where = f"learn list '{ll.get('name')}'"
        fields = [ParamInfo(".".join(el["value"]), field_width(j, el["value"], where)) for el in ll.get("elements", [])]
        digests[ll["name"]] = DigestInfo(ll["name"], ll["id"], fields)
    return Program(tables, actions, counters, meters, registers, profiles, parsers, pipelines,
                   value_sets, errors, digests)
