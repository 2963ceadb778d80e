"""Expressions and primitives of a BMv2 JSON program as Python source.

`Body` turns the JSON of expressions (with exact bit-width semantics: interval bounds
let it skip masks and wraps that cannot change a value) and of primitives into
statements of one generated function; a subexpression used more than once is computed
once into a local, and reused only while the fields it reads are unchanged.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from embedded_switch.errors import PipelineError

if TYPE_CHECKING:
    from embedded_switch.compiler import Compiler

@dataclass
class Expr:
    code: str
    kind: str = "data"        # data | bool | header | stack | union | string | list
    lo: int | None = None     # known bounds of the value (None: unknown)
    hi: int | None = None
    reads: frozenset | None = frozenset()  # F slots read; None: not pure, never hoisted
    name: str | None = None   # static header / stack / union name
    const: int | None = None
    items: list = field(default_factory=list)


def _urange(width: int) -> tuple[int, int]:
    return 0, (1 << width) - 1


def _srange(width: int) -> tuple[int, int]:
    return -(1 << (width - 1)), (1 << (width - 1)) - 1


def _fits(e: "Expr", lo: int, hi: int) -> bool:
    return e.lo is not None and e.hi is not None and lo <= e.lo and e.hi <= hi


def _field_expr(code: str, width: int, signed: bool, reads) -> "Expr":
    lo, hi = _srange(width) if signed else _urange(width)
    return Expr(code, lo=lo, hi=hi, reads=reads)


def _bounds(op: str, a: "Expr", b: "Expr") -> tuple[int | None, int | None]:
    """Bounds of `a op b` from the bounds of a and b (interval arithmetic)."""
    if None in (a.lo, a.hi, b.lo, b.hi):
        if op == "&":
            nonneg = [x.hi for x in (a, b) if x.lo is not None and x.lo >= 0 and x.hi is not None]
            return (0, min(nonneg)) if nonneg else (None, None)
        return None, None
    if op == "+":
        return a.lo + b.lo, a.hi + b.hi
    if op == "-":
        return a.lo - b.hi, a.hi - b.lo
    if op == "*":
        products = [a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi]
        return min(products), max(products)
    if op in ("&", "|", "^"):
        if a.lo >= 0 and b.lo >= 0:
            top = (1 << max(a.hi.bit_length(), b.hi.bit_length())) - 1
            return (0, min(a.hi, b.hi)) if op == "&" else (0, top)
        if op == "&":
            nonneg = [x.hi for x in (a, b) if x.lo >= 0]
            return (0, min(nonneg)) if nonneg else (None, None)
    return None, None


def _hex(v: Any, where: str) -> int:
    try:
        return int(v, 16) if isinstance(v, str) else int(v)
    except (TypeError, ValueError):
        raise PipelineError(f"{where}: bad hexstr {v!r}") from None


def _union(*es: Expr) -> frozenset | None:
    out = frozenset()
    for e in es:
        if e.reads is None:
            return None
        out |= e.reads
    return out


def _count_subexpressions(obj: Any, counts: dict[str, int]) -> None:
    if isinstance(obj, dict):
        if "op" in obj and ("left" in obj or "right" in obj):
            key = json.dumps(obj, sort_keys=True)
            counts[key] = counts.get(key, 0) + 1
        for v in obj.values():
            _count_subexpressions(v, counts)
    elif isinstance(obj, list):
        for v in obj:
            _count_subexpressions(v, counts)


_SIMPLE = re.compile(r"F\[\d+\]|d\d+|_t\d+")  # already as cheap as a local: never hoisted
ARITH = {"+": "+", "-": "-", "*": "*", "|": "|", "^": "^"}
COMPARE = {"==": "==", "!=": "!=", "<": "<", ">": ">", "<=": "<=", ">=": ">="}


class Body:
    """Statements of one generated function, with common-subexpression reuse."""

    def __init__(self, comp: "Compiler", where: str, params: tuple[int, ...] = (), counts=None,
                 parser: bool = False):
        self.c, self.L, self.where, self.params, self.parser = comp, comp.layout, where, params, parser
        self.lines: list[str] = []
        self.counts: dict[str, int] = counts if counts is not None else {}
        self.avail: dict[str, Expr] = {}
        self.ntemps = 0

    def err(self, msg: str) -> PipelineError:
        return PipelineError(f"{self.where}: {msg}")

    def emit(self, line: str) -> None:
        self.lines.append(line)

    def temp(self) -> str:
        self.ntemps += 1
        return f"_t{self.ntemps}"

    # -- reading
    def ex(self, j: Any) -> Expr:
        if not isinstance(j, dict):
            raise self.err(f"expected a type/value object, got {j!r}")
        t, v = j.get("type"), j.get("value")
        if t == "expression":
            if isinstance(v, dict) and "op" in v:
                return self.op(v)
            return self.ex(v)
        if t == "field":
            idx, width, signed = self.L.field(v, self.where)
            return _field_expr(f"F[{idx}]", width, signed, frozenset([idx]))
        if t == "hexstr":
            n = _hex(v, self.where)
            return Expr(repr(n), lo=n, hi=n, const=n)
        if t == "bool":
            return Expr("True" if v else "False", kind="bool")
        if t in ("runtime_data", "local"):
            if not isinstance(v, int) or not 0 <= v < len(self.params):
                raise self.err(f"action parameter index {v!r} out of range")
            return _field_expr(f"d{v}", self.params[v], False, frozenset())
        if t == "header":
            h = self.L.header(v, self.where)
            return Expr(str(h.hid), kind="header", name=v)
        if t == "header_stack":
            s = self.L.stack(v, self.where)
            return Expr(str(s.sid), kind="stack", name=v)
        if t == "header_union":
            if v not in self.L.unions:
                raise self.err(f"unknown header union '{v}'")
            return Expr("None", kind="union", name=v)
        if t == "header_union_stack":
            if v not in self.L.union_stacks:
                raise self.err(f"unknown header union stack '{v}'")
            return Expr("None", kind="ustack", name=v)
        if t == "union_stack_field":
            hdrs = self.L.union_stack_member(v[0], v[1], self.where)
            h = self.L.headers[hdrs[0]]
            if v[2] not in h.fidx:
                raise self.err(f"union member '{v[1]}' has no field '{v[2]}'")
            pos = [n for n, *_ in h.fields].index(v[2])
            _, width, signed, _ = h.fields[pos]
            idxs = tuple(self.L.headers[n].fields[pos][3] for n in hdrs)
            nxt = self.L.union_stacks[v[0]].next
            return _field_expr(f"F[_last({self.c.const(idxs)}, F[{nxt}])]", width, signed, None)
        if t == "stack_field":
            s = self.L.stack(v[0], self.where)
            h = self.L.header(s.headers[0], self.where) if s.headers else None
            if h is None or v[1] not in h.fidx:
                raise self.err(f"stack '{v[0]}' has no field '{v[1]}'")
            pos = [n for n, *_ in h.fields].index(v[1])
            _, width, signed, _ = h.fields[pos]
            idxs = tuple(self.L.headers[n].fields[pos][3] for n in s.headers)
            name = self.c.const(idxs)
            return _field_expr(f"F[_last({name}, F[{s.next}])]", width, signed, None)
        if t == "register":
            reg = self.c.register(v[0], self.where)
            idx = self.ex(v[1])
            return _field_expr(f"{reg}.read({idx.code})", self.c.j_registers[v[0]]["bitwidth"], False, None)
        if t == "lookahead":
            if not self.parser:
                raise self.err("lookahead outside a parser")
            off, width = v
            return _field_expr(f"_lookahead(P, {int(off)}, {int(width)})", int(width), False, None)
        if t == "string":
            return Expr(repr(str(v)), kind="string", reads=None)
        if t == "parameters_vector":
            return Expr("", kind="list", items=[self.ex(x) for x in v], reads=None)
        raise self.err(f"unsupported expression type '{t}'")

    def op(self, v: dict) -> Expr:
        key = json.dumps(v, sort_keys=True)
        hit = self.avail.get(key)
        if hit is not None:
            return hit
        e = self._op(v)
        if (self.counts.get(key, 0) > 1 and e.reads is not None and e.kind in ("data", "bool")
                and e.const is None and not _SIMPLE.fullmatch(e.code)):
            name = self.temp()
            self.emit(f"{name} = {e.code}")
            e = Expr(name, e.kind, e.lo, e.hi, e.reads)
            self.avail[key] = e
        return e

    def invalidate(self, written: set[int] | None) -> None:
        if written is None:
            self.avail.clear()
            return
        for k in [k for k, e in self.avail.items() if e.reads is None or e.reads & written]:
            del self.avail[k]

    def data(self, e: Expr) -> Expr:
        if e.kind == "bool":
            return Expr(f"(1 if {e.code} else 0)", lo=0, hi=1, reads=e.reads)
        if e.kind != "data":
            raise self.err(f"expected a data value, got a {e.kind}")
        return e

    def boolean(self, e: Expr) -> Expr:
        if e.kind == "data":
            return Expr(f"({e.code} != 0)", kind="bool", reads=e.reads)
        if e.kind != "bool":
            raise self.err(f"expected a boolean, got a {e.kind}")
        return e

    def _op(self, v: dict) -> Expr:
        op = v.get("op")
        left, right = v.get("left"), v.get("right")
        if op in ("not", "d2b", "b2d", "~", "valid", "valid_union", "last_stack_index", "size_stack"):
            r = self.ex(right)
            if op == "not":
                r = self.boolean(r)
                return Expr(f"(not {r.code})", kind="bool", reads=r.reads)
            if op == "d2b":
                return self.boolean(r)
            if op == "b2d":
                return self.data(r)
            if op == "~":
                r = self.data(r)
                lo, hi = (-r.hi - 1, -r.lo - 1) if r.lo is not None and r.hi is not None else (None, None)
                return Expr(f"(~{r.code})", lo=lo, hi=hi, reads=r.reads)
            if op == "valid":
                if r.kind != "header":
                    raise self.err("'valid' needs a header")
                if r.name is not None:
                    slot = self.L.headers[r.name].valid
                    return Expr(f"(F[{slot}] != 0)", kind="bool", reads=frozenset([slot]))
                return Expr(f"(F[HV[{r.code}]] != 0)", kind="bool", reads=None)
            if op == "valid_union":
                if r.kind != "union":
                    raise self.err("'valid_union' needs a header union")
                slots = [self.L.headers[n].valid for n in self.L.unions[r.name]]
                code = " or ".join(f"F[{s}] != 0" for s in slots) or "False"
                return Expr(f"({code})", kind="bool", reads=frozenset(slots))
            if r.kind not in ("stack", "ustack"):
                raise self.err(f"'{op}' needs a header stack")
            s = self.L.stacks[r.name] if r.kind == "stack" else self.L.union_stacks[r.name]
            code = f"(F[{s.next}] - 1)" if op == "last_stack_index" else f"F[{s.next}]"
            return Expr(code, lo=-1, hi=len(s.headers), reads=frozenset([s.next]))
        if op == "?":
            c = self.boolean(self.ex(v.get("cond")))
            a, b = self.ex(left), self.ex(right)
            if a.kind == "bool" and b.kind == "bool":
                return Expr(f"({a.code} if {c.code} else {b.code})", kind="bool", reads=_union(a, b, c))
            a, b = self.data(a), self.data(b)
            lo = min(a.lo, b.lo) if a.lo is not None and b.lo is not None else None
            hi = max(a.hi, b.hi) if a.hi is not None and b.hi is not None else None
            return Expr(f"({a.code} if {c.code} else {b.code})", lo=lo, hi=hi, reads=_union(a, b, c))
        if op in ("and", "or"):
            a, b = self.boolean(self.ex(left)), self.boolean(self.ex(right))
            return Expr(f"({a.code} {op} {b.code})", kind="bool", reads=_union(a, b))
        if op == "dereference_header_stack":
            s = self.ex(left)
            if s.kind != "stack":
                raise self.err("'dereference_header_stack' needs a header stack")
            idx = self.data(self.ex(right))
            hids = tuple(self.L.headers[n].hid for n in self.L.stacks[s.name].headers)
            return Expr(f"_elem({self.c.const(hids)}, {idx.code})", kind="header", reads=None)
        if op == "access_field":
            h = self.ex(left)
            if h.kind != "header" or not isinstance(right, int):
                raise self.err("'access_field' needs a header and a field offset")
            if h.name is not None:
                hl = self.L.headers[h.name]
                if not 0 <= right < len(hl.fields):
                    raise self.err(f"field offset {right} out of range for header '{h.name}'")
                _, width, signed, idx = hl.fields[right]
                return _field_expr(f"F[{idx}]", width, signed, frozenset([idx]))
            _, width, signed = self.c.dynamic_field_type(left, right, self.where)
            return _field_expr(f"F[HF[{h.code}][{right}]]", width, signed, None)
        if op in ("dereference_union_stack", "access_union_header"):
            raise self.err(f"unsupported expression op '{op}' (a header union stack indexed at run time)")
        a, b = self.ex(left), self.ex(right)
        if op in COMPARE:
            if a.kind == "bool" and b.kind == "bool":
                return Expr(f"({a.code} {COMPARE[op]} {b.code})", kind="bool", reads=_union(a, b))
            a, b = self.data(a), self.data(b)
            return Expr(f"({a.code} {COMPARE[op]} {b.code})", kind="bool", reads=_union(a, b))
        a, b = self.data(a), self.data(b)
        reads = _union(a, b)
        if op == "&":
            for x, m in ((a, b), (b, a)):  # masking a value that already fits changes nothing
                if m.const is not None and m.const >= 0 and not m.const & (m.const + 1) and _fits(x, 0, m.const):
                    return x
            lo, hi = _bounds("&", a, b)
            return Expr(f"({a.code} & {b.code})", lo=lo, hi=hi, reads=reads)
        if op in ARITH:
            lo, hi = _bounds(op, a, b)
            return Expr(f"({a.code} {ARITH[op]} {b.code})", lo=lo, hi=hi, reads=reads)
        if op == "<<":
            if b.const is not None:
                if b.const < 0:
                    raise self.err("negative shift amount")
                lo, hi = (a.lo << b.const, a.hi << b.const) if a.lo is not None and a.hi is not None else (None, None)
                return Expr(f"({a.code} << {b.const})", lo=lo, hi=hi, reads=reads)
            if b.lo is not None and b.lo >= 0 and b.hi is not None and b.hi <= 4096:
                lo, hi = (a.lo << b.lo, a.hi << b.hi) if a.lo is not None and a.lo >= 0 and a.hi is not None \
                    else (None, None)
                return Expr(f"({a.code} << {b.code})", lo=lo, hi=hi, reads=reads)
            return Expr(f"_shl({a.code}, {b.code})", reads=None)
        if op == ">>":
            if b.const is not None:
                if b.const < 0:
                    raise self.err("negative shift amount")
                lo, hi = (a.lo >> b.const, a.hi >> b.const) if a.lo is not None and a.hi is not None else (None, None)
                return Expr(f"({a.code} >> {b.const})", lo=lo, hi=hi, reads=reads)
            lo, hi = (min(a.lo, 0), max(a.hi, 0)) if a.lo is not None and a.hi is not None else (None, None)
            if b.lo is not None and b.lo >= 0:  # never negative: a plain, pure shift
                return Expr(f"({a.code} >> {b.code})", lo=lo, hi=hi, reads=reads)
            return Expr(f"_shr({a.code}, {b.code})", lo=lo, hi=hi, reads=None)
        if op in ("/", "%"):
            lo, hi = (0, a.hi) if a.lo is not None and a.lo >= 0 and a.hi is not None else (None, None)
            return Expr(f"{'_div' if op == '/' else '_mod'}({a.code}, {b.code})", lo=lo, hi=hi, reads=None)
        if op in ("two_comp_mod", "sat_cast", "usat_cast"):
            if b.const is None or b.const <= 0:
                raise self.err(f"'{op}' needs a constant positive width")
            w = b.const
            lo, hi = _urange(w) if op == "usat_cast" else _srange(w)
            if _fits(a, lo, hi):
                return a
            if op in ("usat_cast", "sat_cast"):
                return Expr(f"min(max({a.code}, {lo}), {hi})", lo=lo, hi=hi, reads=reads)
            return Expr(f"((({a.code}) + {1 << (w - 1)} & {(1 << w) - 1}) - {1 << (w - 1)})", lo=lo, hi=hi,
                        reads=reads)
        raise self.err(f"unsupported expression op '{op}'")

    # -- writing
    def fit(self, e: Expr, width: int, signed: bool) -> str:
        e = self.data(e)
        if signed:
            if _fits(e, *_srange(width)):
                return e.code
            h, m = 1 << (width - 1), (1 << width) - 1
            return f"((({e.code}) + {h} & {m}) - {h})"
        if _fits(e, *_urange(width)):
            return e.code
        return f"({e.code}) & {(1 << width) - 1}"

    def lvalue(self, j: dict) -> tuple[str, int, bool, set[int] | None]:
        """(target code, width, signed, slots written) of an assignment target."""
        t, v = j.get("type"), j.get("value")
        if t == "field":
            idx, width, signed = self.L.field(v, self.where)
            if v[1] == "$valid$":
                raise self.err(f"cannot assign to validity of '{v[0]}'")
            return f"F[{idx}]", width, signed, {idx}
        if t == "expression":
            inner = v
            if isinstance(inner, dict) and "op" not in inner:
                return self.lvalue(inner)
            if inner.get("op") == "access_field":
                h = self.ex(inner["left"])
                if h.kind == "header" and h.name is not None:
                    _, width, signed, idx = self.L.headers[h.name].fields[inner["right"]]
                    return f"F[{idx}]", width, signed, {idx}
                _, width, signed = self.c.dynamic_field_type(inner["left"], inner["right"], self.where)
                return f"F[HF[{h.code}][{inner['right']}]]", width, signed, None
            raise self.err(f"expression op '{inner.get('op')}' is not an assignable value")
        if t == "stack_field":
            e = self.ex(j)
            s = self.L.stack(v[0], self.where)
            h = self.L.headers[s.headers[0]]
            _, width, signed, _ = h.fields[[n for n, *_ in h.fields].index(v[1])]
            return e.code, width, signed, None
        raise self.err(f"'{t}' is not an assignable value")

    def header_ref(self, j: dict) -> Expr:
        e = self.ex(j)
        if e.kind != "header":
            raise self.err(f"expected a header, got {j!r}")
        return e

    def assign(self, dst: dict, src: dict) -> None:
        code, width, signed, written = self.lvalue(dst)
        e = self.ex(src)
        self.emit(f"{code} = {self.fit(e, width, signed)}")
        self.invalidate(written)

    def set_valid(self, h: Expr, valid: bool, reset: bool) -> None:
        if h.name is None:
            self.emit(f"_set_valid(F, P, {h.code}, {int(valid)}, {int(reset)})")
            return
        hl = self.L.headers[h.name]
        # like simple_switch, add_header/remove_header keep the packet length register current
        size = 0 if hl.metadata else hl.nbits // 8
        if valid:
            if reset:
                self.emit(f"if not F[{hl.valid}]:")
                for idx in hl.slots:
                    self.emit(f"    F[{idx}] = 0")
                self.emit(f"    P.plen += {size}")
            self.emit(f"F[{hl.valid}] = 1")
            for s in hl.siblings:
                self.emit(f"F[{s}] = 0")
        else:
            self.emit(f"if F[{hl.valid}]: P.plen -= {size}")
            self.emit(f"F[{hl.valid}] = 0")

    # -- primitives
    def primitive(self, p: dict) -> bool:
        """Emit one primitive; True if it ends the function (exit)."""
        op = p.get("op")
        ps = p.get("parameters", [])
        where = f"{self.where}: primitive '{op}'"
        n = len(ps)

        def need(k: int) -> None:
            if n != k:
                raise PipelineError(f"{where}: expected {k} parameters, got {n}")

        if op in ("assign", "modify_field"):
            need(2)
            self.assign(ps[0], ps[1])
        elif op == "assign_VL":
            need(2)
            d = self.L.varbit(ps[0].get("value"))
            s_ = self.L.varbit(ps[1].get("value"))
            if d is None or s_ is None:
                raise PipelineError(f"{where}: both parameters must be varbit fields")
            self.emit(f"F[{d[0]}] = F[{s_[0]}]; F[{d[1]}] = F[{s_[1]}]")
            self.invalidate(None)
        elif op == "assign_header":
            need(2)
            d, s = self.header_ref(ps[0]), self.header_ref(ps[1])
            self.emit(f"_copy_header(F, {d.code}, {s.code})")
            self.invalidate(None)
        elif op == "assign_union":
            need(2)
            d, s = self.ex(ps[0]), self.ex(ps[1])
            if d.kind != "union" or s.kind != "union":
                raise PipelineError(f"{where}: expected two header unions")
            for a, b in zip(self.L.unions[d.name], self.L.unions[s.name]):
                self.emit(f"_copy_header(F, {self.L.headers[a].hid}, {self.L.headers[b].hid})")
            self.invalidate(None)
        elif op == "assign_header_stack":
            need(2)
            d, s = self.ex(ps[0]), self.ex(ps[1])
            if d.kind != "stack" or s.kind != "stack":
                raise PipelineError(f"{where}: expected two header stacks")
            sd, ss = self.L.stacks[d.name], self.L.stacks[s.name]
            for a, b in zip(sd.headers, ss.headers):
                self.emit(f"_copy_header(F, {self.L.headers[a].hid}, {self.L.headers[b].hid})")
            self.emit(f"F[{sd.next}] = F[{ss.next}]")
            self.invalidate(None)
        elif op in ("add_header", "setValid", "remove_header", "setInvalid", "add_header_fast"):
            need(1)
            h = self.header_ref(ps[0])
            self.set_valid(h, op in ("add_header", "setValid", "add_header_fast"), op == "add_header")
            self.invalidate(None)
        elif op in ("push", "pop"):
            need(2)
            s = self.ex(ps[0])
            count = self.data(self.ex(ps[1]))
            if s.kind == "stack":
                stack = self.L.stacks[s.name]
                elems = tuple((self.L.headers[x].hid,) for x in stack.headers)
            elif s.kind == "ustack":
                stack = self.L.union_stacks[s.name]
                elems = tuple(tuple(self.L.headers[h].hid for h in self.L.unions[u]) for u in stack.headers)
            else:
                raise PipelineError(f"{where}: expected a header stack")
            self.emit(f"_{op}(F, {self.c.const(elems)}, {stack.next}, {count.code})")
            self.invalidate(None)
        elif op == "assign_union_stack":
            need(2)
            d, s = self.ex(ps[0]), self.ex(ps[1])
            if d.kind != "ustack" or s.kind != "ustack":
                raise PipelineError(f"{where}: expected two header union stacks")
            sd, ss = self.L.union_stacks[d.name], self.L.union_stacks[s.name]
            for ud, us in zip(sd.headers, ss.headers):
                for a, b in zip(self.L.unions[ud], self.L.unions[us]):
                    self.emit(f"_copy_header(F, {self.L.headers[a].hid}, {self.L.headers[b].hid})")
            self.emit(f"F[{sd.next}] = F[{ss.next}]")
            self.invalidate(None)
        elif op in ("mark_to_drop", "drop"):
            sm = self.c.sm
            if sm["egress_spec"] is None:
                raise PipelineError(f"{where}: the program has no standard_metadata.egress_spec")
            self.emit(f"F[{sm['egress_spec']}] = {self.c.drop_port}")
            if sm["mcast_grp"] is not None:
                self.emit(f"F[{sm['mcast_grp']}] = 0")
            self.invalidate(None)
        elif op == "exit":
            self.emit("P.exit = True")
            self.emit("return")
            return True
        elif op == "no_op":
            pass
        elif op == "count":
            need(2)
            ctr = self.c.counter(ps[0], where)
            idx = self.data(self.ex(ps[1]))
            self.emit(f"{ctr}.count({idx.code}, P.ilen)")
        elif op == "execute_meter":
            need(3)
            m = self.c.meter(ps[0], where)
            idx = self.data(self.ex(ps[1]))
            code, width, signed, written = self.lvalue(ps[2])
            self.emit(f"_c = {m}.execute({idx.code}, P.ilen)")
            self.emit(f"if _c is not None: {code} = _c")
            self.invalidate(written)
        elif op == "register_read":
            need(3)
            code, width, signed, written = self.lvalue(ps[0])
            reg = self.c.register_param(ps[1], where)
            idx = self.data(self.ex(ps[2]))
            self.emit(f"{code} = {self.fit(Expr(f'{reg}.read({idx.code})', reads=None), width, signed)}")
            self.invalidate(written)
        elif op == "register_write":
            need(3)
            reg = self.c.register_param(ps[0], where)
            idx = self.data(self.ex(ps[1]))
            val = self.data(self.ex(ps[2]))
            self.emit(f"{reg}.write({idx.code}, {val.code})")
        elif op == "modify_field_with_hash_based_offset":
            need(4)
            code, width, signed, written = self.lvalue(ps[0])
            base = self.data(self.ex(ps[1]))
            if ps[2].get("type") != "calculation":
                raise PipelineError(f"{where}: third parameter must be a calculation")
            calc = self.c.calculation(ps[2]["value"], where)
            size = self.data(self.ex(ps[3]))
            val = Expr(f"(_hash({calc}, F, P, {size.code}) + {base.code})", reads=None)
            self.emit(f"{code} = {self.fit(val, width, signed)}")
            self.invalidate(written)
        elif op == "modify_field_rng_uniform":
            need(3)
            code, width, signed, written = self.lvalue(ps[0])
            lo, hi = self.data(self.ex(ps[1])), self.data(self.ex(ps[2]))
            self.emit(f"_lo, _hi = {lo.code}, {hi.code}")
            self.emit(f"if _lo <= _hi: {code} = {self.fit(Expr('_rand(_lo, _hi)', reads=None), width, signed)}")
            self.invalidate(written)
        elif op in ("clone_ingress_pkt_to_egress", "clone_egress_pkt_to_egress"):
            need(2)
            sess, fl = self.data(self.ex(ps[0])), self.data(self.ex(ps[1]))
            self.emit(f"P.clone = ({sess.code}, {fl.code})")
        elif op in ("resubmit", "recirculate"):
            need(1)
            fl = self.data(self.ex(ps[0]))
            self.emit(f"P.{'resubmit' if op == 'resubmit' else 'recirc'} = {fl.code}")
        elif op == "truncate":
            need(1)
            ln = self.data(self.ex(ps[0]))
            self.emit(f"P.trunc = {ln.code}")
        elif op == "log_msg":
            if n not in (1, 2):
                raise PipelineError(f"{where}: expected 1 or 2 parameters, got {n}")
            fmt = self.ex(ps[0])
            args = self.ex(ps[1]).items if n == 2 else []
            vals = ", ".join(self.data(a).code for a in args)
            self.emit(f"_log_msg({fmt.code}, [{vals}])")
        elif op in ("assert", "assume"):
            need(1)
            c = self.boolean(self.ex(ps[0]))
            self.emit(f"if not {c.code}: _fail({op!r}, {self.where!r})")
        elif op == "generate_digest":
            need(2)
            lid = self.data(self.ex(ps[1]))
            if lid.const is not None and lid.const not in self.c.learn_lists:
                raise PipelineError(f"{where}: unknown learn list id {lid.const}")
            self.emit(f"P.digest = {lid.code}")
        else:
            raise PipelineError(f"{where}: unsupported primitive")
        return False
