"""The control pipelines of a BMv2 JSON program (ingress, egress) as Python source.

Each table and each conditional becomes a node function `n(F, P)` that does its work and
returns the next node (None: the pipeline ends); a pipeline function runs nodes from its
init table. The tables themselves, with their const entries and default actions, are
`runtime.Table` objects the generated code looks entries up in.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

from embedded_switch import match as M
from embedded_switch.calculations import make_calc
from embedded_switch.codegen import Module
from embedded_switch.errors import PipelineError
from embedded_switch.expressions import Body, count_subexpressions
from embedded_switch.program import (ActionDef, ConditionalInfo, ConstEntryInfo, KeyFieldInfo, PipelineInfo,
                                     TableInfo, hex_value)
from embedded_switch.runtime import ActionProfile, ActionRt, Entry, Table

TABLE_TYPES = ("simple", "indirect", "indirect_ws")


class NextByAction(NamedTuple):
    """Where a table goes after each of its actions: filled in once every node exists."""
    name: str                          # of the dict in the generated module
    by_action: dict[int, str | None]  # action id -> next node name
    where: str


class Exits(NamedTuple):
    """What a table node returns (code in the generated function) in each of its outcomes."""
    no_action: str       # missed without a default action, or its group is empty
    after_default: str   # missed and ran the default action
    after_hit: str       # hit and ran the entry's action


class Controls:
    """Tables, conditionals and pipeline functions of every control pipeline of a program."""

    def __init__(self, module: Module, actions: dict[int, ActionRt], action_defs: dict[int, ActionDef]):
        self.module, self.actions, self.action_defs = module, actions, action_defs
        self.tables: dict[str, Table] = {}
        self.table_actions: dict[str, dict[str, ActionRt]] = {}  # table -> action name -> action
        self.profiles: dict[str, ActionProfile] = {}
        self.nodes: dict[str, str] = {}  # table / conditional name -> generated function
        self.pipes: list[str] = []
        self.pending: list[NextByAction] = []

    def compile(self, pipeline: PipelineInfo) -> str:
        """Emit the nodes and the function of one pipeline; returns the function's name."""
        nodes = {t.name: f"nt{t.id}" for t in pipeline.tables} | {c.name: f"nc{c.id}" for c in pipeline.conditionals}
        if pipeline.has_action_calls:
            raise PipelineError(f"pipeline '{pipeline.name}': action_calls are not supported")

        def ref(name: str | None, where: str) -> str:
            if name is None:
                return "None"
            if name not in nodes:
                raise PipelineError(f"{where}: next node '{name}' does not exist")
            return nodes[name]

        for ap in pipeline.action_profiles:
            selector = make_calc(self.module.layout, ap.selector.algo, ap.selector.inputs,
                                 f"action profile '{ap.name}'") if ap.selector is not None else None
            self.profiles[ap.name] = ActionProfile(ap.name, ap.size, selector, {})
        for t in pipeline.tables:
            self._table(t, nodes[t.name], ref)
        for c in pipeline.conditionals:
            self._conditional(c, nodes[c.name], ref)
        init = ref(pipeline.init_table, f"pipeline '{pipeline.name}'")
        fn = f"pipe_{len(self.pipes)}"
        self.pipes.append(fn)
        self.module.emit_function(f"def {fn}(F, P):", [f"n = {init}", "while n is not None:", "    n = n(F, P)"])
        self.module.emit_function(f"def {fn}_trace(F, P):", [f"n = {init}", "while n is not None:", "    _trace(n)",
                                                              "    n = n(F, P)"])
        self.nodes.update(nodes)
        return fn

    def link(self, ns: dict) -> None:
        """After the module ran: give each table its next node per action."""
        for nx in self.pending:
            for n in nx.by_action.values():
                if n is not None and n not in self.nodes:
                    raise PipelineError(f"{nx.where}: next node '{n}' does not exist")
            ns[nx.name] = {aid: (ns[self.nodes[n]] if n is not None else None) for aid, n in nx.by_action.items()}

    def _conditional(self, c: ConditionalInfo, fn: str, ref: Callable[[str | None, str], str]) -> None:
        where = f"conditional '{c.name}'"
        counts: dict[str, int] = {}
        count_subexpressions(c.expression, counts)
        body = Body(self.module, where, counts=counts)
        cond = body.boolean(body.ex(c.expression))
        body.emit(f"return {ref(c.true_next, where)} if {cond.code} else {ref(c.false_next, where)}")
        self.module.emit_function(f"def {fn}(F, P):", body.lines)

    # -- tables
    def _table(self, t: TableInfo, fn: str, ref: Callable[[str | None, str], str]) -> None:
        where = f"table '{t.name}'"
        if t.table_type not in TABLE_TYPES:
            raise PipelineError(f"{where}: unsupported table type '{t.table_type}'")
        key = [self._key_code(k, where) for k in t.key]
        tbl = self._runtime_table(t, where)
        T = self.module.const(tbl, "T")
        exits = self._exits(t, ref, where)
        self.module.emit_function(f"def {fn}(F, P):", self._node(t, tbl, T, key, exits, where))

    def _runtime_table(self, t: TableInfo, where: str) -> Table:
        """The `Table` the node looks entries up in, with its default action and const entries."""
        tacts = self._table_actions(t, where)
        tbl = Table(t.name, [k.match_kind for k in t.key], [k.bitwidth for k in t.key], t.size,
                    self._default(t, where), self._profile(t, tacts, where))
        top = max((e.priority for e in t.entries), default=0)
        for i, ent in enumerate(t.entries):
            self._const_entry(tbl, ent, i, t, top, where)
        self.tables[t.name] = tbl
        self.table_actions[t.name] = tacts
        return tbl

    def _node(self, t: TableInfo, tbl: Table, T: str, key: list[str], exits: Exits, where: str) -> list[str]:
        """Body of the table's node: look up, run the action, count, meter, go on."""
        ends = any(p.get("op") == "exit" for aid in t.action_ids for p in self.action_defs[aid].primitives)
        key_code = f"({', '.join(key)},)" if key else "()"
        if tbl.is_exact:
            lines = [f"e = {self.module.const(tbl.exact, 'EX')}.get({key_code})"]
        else:
            lines = [f"e = {T}.lookup({key_code})"]
        lines += ["if e is None:", f"    d = {T}.default", f"    if d is None: return {exits.no_action}",
                  "    d[0].fn(F, P, *d[1])"]
        if ends:
            lines.append("    if P.exit: return None")
        lines.append(f"    return {exits.after_default}")
        if t.support_timeout:
            lines.append("e.last_hit = _now()")
        if t.with_counters:
            lines.append("c = e.ctr; c[0] += 1; c[1] += P.ilen")
        if t.direct_meter:
            lines += self._direct_meter(t.direct_meter, where)
        if tbl.profile is not None:
            lines += [f"r = {self.module.const(tbl.profile, 'AP')}.resolve(e, F)",
                      f"if r is None: return {exits.no_action}", "a = r[0]; a.fn(F, P, *r[1])"]
        else:
            lines.append("a = e.action; a.fn(F, P, *e.args)")
        if ends:
            lines.append("if P.exit: return None")
        lines.append(f"return {exits.after_hit}")
        return lines

    def _key_code(self, k: KeyFieldInfo, where: str) -> str:
        """The value one key field looks up, as the generated code computes it."""
        layout = self.module.layout
        if k.match_kind == "valid":
            return f"F[{layout.header(k.target, where).valid}]"
        idx, width, signed = layout.field(k.target, where)
        code = f"F[{idx}]"
        if signed:
            code = f"({code} & {(1 << width) - 1})"
        if k.mask:
            low = k.mask_shift
            code = f"(({code} & {k.mask}) >> {low})" if low else f"({code} & {k.mask})"
        return code

    def _table_actions(self, t: TableInfo, where: str) -> dict[str, ActionRt]:
        out: dict[str, ActionRt] = {}
        for aid in t.action_ids:
            if aid not in self.action_defs:
                raise PipelineError(f"{where}: unknown action id {aid}")
            out[self.action_defs[aid].name] = self.actions[aid]
        return out

    def _profile(self, t: TableInfo, tacts: dict[str, ActionRt], where: str) -> ActionProfile | None:
        """The action profile of an indirect table; it learns which actions its members may use."""
        if t.table_type == "simple":
            return None
        profile = self.profiles.get(t.action_profile)
        if profile is None:
            raise PipelineError(f"{where}: unknown action profile '{t.action_profile}'")
        if t.table_type == "indirect_ws" and profile.selector is None:
            raise PipelineError(f"{where}: action profile '{profile.name}' has no selector")
        profile.actions.update({a.aid: a for a in tacts.values()})
        return profile

    def _default(self, t: TableInfo, where: str) -> tuple[ActionRt, tuple] | None:
        de = t.default_entry
        if de is None:
            return None
        if de.action_id not in t.action_ids:
            raise PipelineError(f"{where}: default action id {de.action_id} is not one of the table's actions")
        act = self.actions[de.action_id]
        data = tuple(hex_value(x, where) & ((1 << w) - 1) for x, w in zip(de.action_data, act.widths))
        if len(data) != len(act.widths):
            raise PipelineError(f"{where}: default action data has {len(data)} values, "
                                f"action '{act.name}' takes {len(act.widths)}")
        return act, data

    def _const_entry(self, tbl: Table, ent: ConstEntryInfo, i: int, t: TableInfo, top: int, where: str) -> None:
        """Insert const entry i; BMv2's JSON priority (smaller wins) becomes a P4Runtime one."""
        if len(ent.match_key) != len(tbl.kinds):
            raise PipelineError(f"{where}: const entry {i} has {len(ent.match_key)} key fields, "
                                f"table has {len(tbl.kinds)}")
        key = []
        for m, kind, width in zip(ent.match_key, tbl.kinds, tbl.widths):
            kind_of_value = m.get("match_type")
            read = _CONST_MATCH.get(kind_of_value) if isinstance(kind_of_value, str) else None
            if read is None:
                raise PipelineError(f"{where}: const entry {i}: unsupported match type '{kind_of_value}'")
            key.append(read(m, kind, width, where))
        if ent.action_id not in t.action_ids:
            raise PipelineError(f"{where}: const entry {i}: action id {ent.action_id} not in table")
        act = self.actions[ent.action_id]
        args = tuple(hex_value(x, where) for x in ent.action_data)
        try:
            match = M.normalize_key(tbl, key)
        except Exception as exc:
            raise PipelineError(f"{where}: const entry {i}: {exc}") from None
        priority = top + 1 - ent.priority if tbl.needs_priority else 0
        if tbl.identity(match, priority) in tbl.by_match:
            raise PipelineError(f"{where}: const entry {i} duplicates an earlier entry")
        tbl.insert(Entry(handle=tbl.new_handle(), key=tuple(key), priority=priority, rank=(ent.priority, i),
                         action=act, args=args, is_const=True, match=match))

    def _exits(self, t: TableInfo, ref: Callable[[str | None, str], str], where: str) -> Exits:
        """Next nodes: by hit or miss (`__HIT__`/`__MISS__`), or by the action that ran."""
        if "__HIT__" in t.next_tables or "__MISS__" in t.next_tables:
            on_hit, on_miss = ref(t.next_tables.get("__HIT__"), where), ref(t.next_tables.get("__MISS__"), where)
            return Exits(on_miss, on_miss, on_hit)
        nx = f"NX{t.id}"
        self.pending.append(NextByAction(nx, {aid: t.next_tables.get(self.action_defs[aid].name, t.base_default_next)
                                              for aid in t.action_ids}, where))
        return Exits(ref(t.base_default_next, where), f"{nx}[d[0].aid]", f"{nx}[a.aid]")

    def _direct_meter(self, name: str, where: str) -> list[str]:
        """A direct meter runs on a hit and writes its colour where the program says."""
        meter = self.module.program.meters.get(name) if isinstance(name, str) else None
        if meter is None:
            raise PipelineError(f"{where}: unknown direct meter '{name}'")
        if not meter.result_target:
            return []
        idx, _, _ = self.module.layout.field(meter.result_target, where)
        amount = "P.ilen" if meter.rate_type == "bytes" else 1
        return [f"if e.meter is not None: F[{idx}] = e.meter.execute({amount})"]

def _exact(m: dict, kind: str, width: int, where: str) -> M.MatchValue:
    value = hex_value(m["key"], where)
    return M.OptionalMatch(value) if kind == "optional" else M.Exact(value)


def _lpm(m: dict, kind: str, width: int, where: str) -> M.MatchValue:
    """BMv2 clears the value's bits beyond the prefix (p4c leaves them as written)."""
    prefix_len = int(m["prefix_length"])
    keep = ((1 << width) - 1) ^ ((1 << (width - prefix_len)) - 1) if 0 <= prefix_len <= width else -1
    return M.Lpm(hex_value(m["key"], where) & keep, prefix_len)


def _ternary(m: dict, kind: str, width: int, where: str) -> M.MatchValue:
    """ternary and optional; an optional key field's all-zero mask is its wildcard. BMv2
    clears the value's bits outside the mask (p4c leaves them as written)."""
    value, mask = hex_value(m["key"], where), hex_value(m.get("mask", "0x" + "f" * 64), where)
    if kind == "optional":
        return M.OptionalMatch(value if mask else None)
    return M.Ternary(value & mask, mask)


def _range(m: dict, kind: str, width: int, where: str) -> M.MatchValue:
    return M.Range(hex_value(m["start"], where), hex_value(m["end"], where))


def _valid(m: dict, kind: str, width: int, where: str) -> M.MatchValue:
    return M.Valid(bool(m["key"]))


_CONST_MATCH: dict[str, Callable[[dict, str, int, str], M.MatchValue]] = {
    "exact": _exact, "lpm": _lpm, "ternary": _ternary, "optional": _ternary, "range": _range, "valid": _valid}
