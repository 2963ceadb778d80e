"""Expressions of a BMv2 JSON program as Python source.

`Body` turns the JSON of expressions (with exact bit-width semantics: interval bounds
let it skip masks and wraps that cannot change a value) into code in statements of one
generated function; a subexpression used more than once is computed once into a local,
and reused only while the fields it reads are unchanged. Each expression type and each
operator is one small function in a table (`EXPRESSIONS`, `OPERATORS`).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from embedded_switch.errors import PipelineError
from embedded_switch.program import hex_value

if TYPE_CHECKING:
    from embedded_switch.codegen import Module


@dataclass
class Expr:
    code: str
    kind: str = "data"        # data | bool | header | stack | union | ustack | string | list
    lo: int | None = None     # known bounds of the value (None: unknown)
    hi: int | None = None
    reads: frozenset | None = frozenset()  # F slots read; None: not pure, never hoisted
    name: str | None = None   # static header / stack / union name
    like: str | None = None   # a header chosen at run time: one of the same type (its layout)
    const: int | None = None
    items: list = field(default_factory=list)


def _urange(width: int) -> tuple[int, int]:
    return 0, (1 << width) - 1


def _srange(width: int) -> tuple[int, int]:
    return -(1 << (width - 1)), (1 << (width - 1)) - 1


def _fits(e: Expr, lo: int, hi: int) -> bool:
    return e.lo is not None and e.hi is not None and lo <= e.lo and e.hi <= hi


def _known(*es: Expr) -> bool:
    return all(e.lo is not None and e.hi is not None for e in es)


def _field_expr(code: str, width: int, signed: bool, reads) -> Expr:
    lo, hi = _srange(width) if signed else _urange(width)
    return Expr(code, lo=lo, hi=hi, reads=reads)


def _bounds(op: str, a: Expr, b: Expr) -> tuple[int | None, int | None]:
    """Bounds of `a op b` from the bounds of a and b (interval arithmetic)."""
    if not _known(a, b):
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


def _union(*es: Expr) -> frozenset | None:
    out = frozenset()
    for e in es:
        if e.reads is None:
            return None
        out |= e.reads
    return out


def count_subexpressions(obj: Any, counts: dict[str, int]) -> None:
    """Count each operator expression in the JSON `obj` (the candidates for reuse)."""
    if isinstance(obj, dict):
        if "op" in obj and ("left" in obj or "right" in obj):
            key = json.dumps(obj, sort_keys=True)
            counts[key] = counts.get(key, 0) + 1
        for v in obj.values():
            count_subexpressions(v, counts)
    elif isinstance(obj, list):
        for v in obj:
            count_subexpressions(v, counts)


_SIMPLE = re.compile(r"F\[\d+\]|d\d+|_t\d+")  # already as cheap as a local: never hoisted


class Body:
    """Statements of one generated function, with common-subexpression reuse."""

    def __init__(self, module: Module, where: str, params: tuple[int, ...] = (), counts=None,
                 parser: bool = False):
        self.module, self.L, self.where, self.params, self.parser = module, module.layout, where, params, parser
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
        t = j.get("type")
        read = EXPRESSIONS.get(t) if isinstance(t, str) else None
        if read is None:
            raise self.err(f"unsupported expression type '{t}'")
        return read(self, j.get("value"))

    def op(self, v: dict) -> Expr:
        key = json.dumps(v, sort_keys=True)
        hit = self.avail.get(key)
        if hit is not None:
            return hit
        op = v.get("op")
        compute = OPERATORS.get(op) if isinstance(op, str) else None
        if compute is None:
            raise self.err(f"unsupported expression op '{op}'")
        e = compute(self, v)
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

    def header_ref(self, j: dict) -> Expr:
        e = self.ex(j)
        if e.kind != "header":
            raise self.err(f"expected a header, got {j!r}")
        return e

    def dynamic_field_type(self, h: Expr, offset: int) -> tuple[str, int, bool]:
        """Field type of `access_field` on a header chosen at run time (a stack element, a `?`)."""
        if h.like is None:
            raise self.err("unsupported dynamic header access")
        hl = self.L.headers[h.like]
        if not 0 <= offset < len(hl.fields):
            raise self.err(f"field offset {offset} out of range")
        name, width, signed, _ = hl.fields[offset]
        return name, width, signed

    def stack_field(self, stack: str, fname: str) -> tuple[int, bool, tuple[int, ...]]:
        """(width, signed, slot in each element) of field `fname` of header stack `stack`."""
        s = self.L.stack(stack, self.where)
        h = self.L.header(s.headers[0], self.where) if s.headers else None
        if h is None or fname not in h.fidx:
            raise self.err(f"stack '{stack}' has no field '{fname}'")
        pos = h.position(fname)
        _, width, signed, _ = h.fields[pos]
        return width, signed, tuple(self.L.headers[n].fields[pos][3] for n in s.headers)

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
            if isinstance(v, dict) and "op" not in v:
                return self.lvalue(v)
            if v.get("op") == "access_field":
                h = self.ex(v["left"])
                if h.kind == "header" and h.name is not None:
                    _, width, signed, idx = self.L.headers[h.name].fields[v["right"]]
                    return f"F[{idx}]", width, signed, {idx}
                _, width, signed = self.dynamic_field_type(h, v["right"])
                return f"F[HF[{h.code}][{v['right']}]]", width, signed, None
            raise self.err(f"expression op '{v.get('op')}' is not an assignable value")
        if t == "stack_field":
            e = self.ex(j)
            width, signed, _ = self.stack_field(v[0], v[1])
            return e.code, width, signed, None
        raise self.err(f"'{t}' is not an assignable value")

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


# ---------------------------------------------------------- expression types --

def _expression(b: Body, v) -> Expr:
    if isinstance(v, dict) and "op" in v:
        return b.op(v)
    return b.ex(v)


def _field(b: Body, v) -> Expr:
    """A field; a varbit field reads as its value, which BMv2 compares whatever the lengths."""
    varbit = b.L.varbit(v)
    if varbit is not None:
        return _field_expr(f"F[{varbit[0]}]", b.L.headers[v[0]].max_vl, False, frozenset([varbit[0]]))
    idx, width, signed = b.L.field(v, b.where)
    return _field_expr(f"F[{idx}]", width, signed, frozenset([idx]))


def _hexstr(b: Body, v) -> Expr:
    n = hex_value(v, b.where)
    return Expr(repr(n), lo=n, hi=n, const=n)


def _bool(b: Body, v) -> Expr:
    return Expr("True" if v else "False", kind="bool")


def _action_param(b: Body, v) -> Expr:
    if not isinstance(v, int) or not 0 <= v < len(b.params):
        raise b.err(f"action parameter index {v!r} out of range")
    return _field_expr(f"d{v}", b.params[v], False, frozenset())


def _header(b: Body, v) -> Expr:
    return Expr(str(b.L.header(v, b.where).hid), kind="header", name=v)


def _header_stack(b: Body, v) -> Expr:
    return Expr(str(b.L.stack(v, b.where).sid), kind="stack", name=v)


def _header_union(b: Body, v) -> Expr:
    if v not in b.L.unions:
        raise b.err(f"unknown header union '{v}'")
    return Expr("None", kind="union", name=v)


def _header_union_stack(b: Body, v) -> Expr:
    if v not in b.L.union_stacks:
        raise b.err(f"unknown header union stack '{v}'")
    return Expr("None", kind="ustack", name=v)


def _union_stack_field(b: Body, v) -> Expr:
    hdrs = b.L.union_stack_member(v[0], v[1], b.where)
    h = b.L.headers[hdrs[0]]
    if v[2] not in h.fidx:
        raise b.err(f"union member '{v[1]}' has no field '{v[2]}'")
    pos = h.position(v[2])
    _, width, signed, _ = h.fields[pos]
    idxs = tuple(b.L.headers[n].fields[pos][3] for n in hdrs)
    nxt = b.L.union_stacks[v[0]].next
    return _field_expr(f"F[_last({b.module.const(idxs)}, F[{nxt}])]", width, signed, None)


def _stack_field(b: Body, v) -> Expr:
    width, signed, idxs = b.stack_field(v[0], v[1])
    nxt = b.L.stacks[v[0]].next
    return _field_expr(f"F[_last({b.module.const(idxs)}, F[{nxt}])]", width, signed, None)


def _register(b: Body, v) -> Expr:
    reg = b.module.register(v[0], b.where)
    idx = b.ex(v[1])
    return _field_expr(f"{reg}.read({idx.code})", b.module.registers[v[0]].width, False, None)


def _lookahead(b: Body, v) -> Expr:
    if not b.parser:
        raise b.err("lookahead outside a parser")
    off, width = v
    return _field_expr(f"_lookahead(P, {int(off)}, {int(width)})", int(width), False, None)


def _string(b: Body, v) -> Expr:
    return Expr(repr(str(v)), kind="string", reads=None)


def _parameters_vector(b: Body, v) -> Expr:
    return Expr("", kind="list", items=[b.ex(x) for x in v], reads=None)


EXPRESSIONS: dict[str, Callable[[Body, Any], Expr]] = {
    "expression": _expression, "field": _field, "hexstr": _hexstr, "bool": _bool,
    "runtime_data": _action_param, "local": _action_param, "header": _header, "header_stack": _header_stack,
    "header_union": _header_union, "header_union_stack": _header_union_stack,
    "union_stack_field": _union_stack_field, "stack_field": _stack_field, "register": _register,
    "lookahead": _lookahead, "string": _string, "parameters_vector": _parameters_vector,
}


# ----------------------------------------------------------------- operators --

def _not(b: Body, v: dict) -> Expr:
    r = b.boolean(b.ex(v.get("right")))
    return Expr(f"(not {r.code})", kind="bool", reads=r.reads)


def _d2b(b: Body, v: dict) -> Expr:
    return b.boolean(b.ex(v.get("right")))


def _b2d(b: Body, v: dict) -> Expr:
    return b.data(b.ex(v.get("right")))


def _invert(b: Body, v: dict) -> Expr:
    r = b.data(b.ex(v.get("right")))
    lo, hi = (-r.hi - 1, -r.lo - 1) if _known(r) else (None, None)
    return Expr(f"(~{r.code})", lo=lo, hi=hi, reads=r.reads)


def _valid(b: Body, v: dict) -> Expr:
    r = b.ex(v.get("right"))
    if r.kind != "header":
        raise b.err("'valid' needs a header")
    if r.name is not None:
        slot = b.L.headers[r.name].valid
        return Expr(f"(F[{slot}] != 0)", kind="bool", reads=frozenset([slot]))
    return Expr(f"(F[HV[{r.code}]] != 0)", kind="bool", reads=None)


def _valid_union(b: Body, v: dict) -> Expr:
    r = b.ex(v.get("right"))
    if r.kind != "union":
        raise b.err("'valid_union' needs a header union")
    slots = [b.L.headers[n].valid for n in b.L.unions[r.name]]
    code = " or ".join(f"F[{s}] != 0" for s in slots) or "False"
    return Expr(f"({code})", kind="bool", reads=frozenset(slots))


def _stack_size(b: Body, v: dict) -> Expr:
    """`last_stack_index` and `size_stack`: from the stack's `next` counter."""
    op, r = v.get("op"), b.ex(v.get("right"))
    if r.kind not in ("stack", "ustack"):
        raise b.err(f"'{op}' needs a header stack")
    s = b.L.stacks[r.name] if r.kind == "stack" else b.L.union_stacks[r.name]
    code = f"(F[{s.next}] - 1)" if op == "last_stack_index" else f"F[{s.next}]"
    return Expr(code, lo=-1, hi=len(s.headers), reads=frozenset([s.next]))


def _choice(b: Body, v: dict) -> Expr:
    """`c ? x : y` of data, booleans or whole headers (p4c's `mux` of headers, chosen at run time)."""
    c = b.boolean(b.ex(v.get("cond")))
    x, y = b.ex(v.get("left")), b.ex(v.get("right"))
    if x.kind == "bool" and y.kind == "bool":
        return Expr(f"({x.code} if {c.code} else {y.code})", kind="bool", reads=_union(x, y, c))
    if x.kind == "header" and y.kind == "header":
        return Expr(f"({x.code} if {c.code} else {y.code})", kind="header", reads=None, like=x.name or x.like)
    x, y = b.data(x), b.data(y)
    lo = min(x.lo, y.lo) if x.lo is not None and y.lo is not None else None
    hi = max(x.hi, y.hi) if x.hi is not None and y.hi is not None else None
    return Expr(f"({x.code} if {c.code} else {y.code})", lo=lo, hi=hi, reads=_union(x, y, c))


def _logical(b: Body, v: dict) -> Expr:
    x, y = b.boolean(b.ex(v.get("left"))), b.boolean(b.ex(v.get("right")))
    return Expr(f"({x.code} {v['op']} {y.code})", kind="bool", reads=_union(x, y))


def _dereference_stack(b: Body, v: dict) -> Expr:
    s = b.ex(v.get("left"))
    if s.kind != "stack":
        raise b.err("'dereference_header_stack' needs a header stack")
    idx = b.data(b.ex(v.get("right")))
    names = b.L.stacks[s.name].headers
    hids = tuple(b.L.headers[n].hid for n in names)
    return Expr(f"_elem({b.module.const(hids)}, {idx.code})", kind="header", reads=None,
                like=names[0] if names else None)


def _access_field(b: Body, v: dict) -> Expr:
    left, right = v.get("left"), v.get("right")
    h = b.ex(left)
    if h.kind != "header" or not isinstance(right, int):
        raise b.err("'access_field' needs a header and a field offset")
    if h.name is not None:
        hl = b.L.headers[h.name]
        if not 0 <= right < len(hl.fields):
            raise b.err(f"field offset {right} out of range for header '{h.name}'")
        _, width, signed, idx = hl.fields[right]
        return _field_expr(f"F[{idx}]", width, signed, frozenset([idx]))
    _, width, signed = b.dynamic_field_type(h, right)
    return _field_expr(f"F[HF[{h.code}][{right}]]", width, signed, None)


def _indexed_union_stack(b: Body, v: dict) -> Expr:
    raise b.err(f"unsupported expression op '{v.get('op')}' (a header union stack indexed at run time)")


def _compare(b: Body, v: dict) -> Expr:
    x, y = b.ex(v.get("left")), b.ex(v.get("right"))
    if not (x.kind == "bool" and y.kind == "bool"):
        x, y = b.data(x), b.data(y)
    return Expr(f"({x.code} {v['op']} {y.code})", kind="bool", reads=_union(x, y))


def _operands(b: Body, v: dict) -> tuple[Expr, Expr]:
    x, y = b.ex(v.get("left")), b.ex(v.get("right"))
    return b.data(x), b.data(y)


def _and(b: Body, v: dict) -> Expr:
    x, y = _operands(b, v)
    for e, m in ((x, y), (y, x)):  # masking a value that already fits changes nothing
        if m.const is not None and m.const >= 0 and not m.const & (m.const + 1) and _fits(e, 0, m.const):
            return e
    lo, hi = _bounds("&", x, y)
    return Expr(f"({x.code} & {y.code})", lo=lo, hi=hi, reads=_union(x, y))


def _arith(b: Body, v: dict) -> Expr:
    """`+ - * | ^`: the Python operator, with bounds from the operands'."""
    x, y = _operands(b, v)
    lo, hi = _bounds(v["op"], x, y)
    return Expr(f"({x.code} {v['op']} {y.code})", lo=lo, hi=hi, reads=_union(x, y))


def _shift_by_constant(b: Body, x: Expr, y: Expr, op: str) -> Expr:
    if y.const < 0:
        raise b.err("negative shift amount")
    shift = (lambda n: n << y.const) if op == "<<" else (lambda n: n >> y.const)
    lo, hi = (shift(x.lo), shift(x.hi)) if _known(x) else (None, None)
    return Expr(f"({x.code} {op} {y.const})", lo=lo, hi=hi, reads=_union(x, y))


def _shl(b: Body, v: dict) -> Expr:
    x, y = _operands(b, v)
    if y.const is not None:
        return _shift_by_constant(b, x, y, "<<")
    if y.lo is not None and y.lo >= 0 and y.hi is not None and y.hi <= 4096:
        lo, hi = (x.lo << y.lo, x.hi << y.hi) if _known(x) and x.lo >= 0 else (None, None)
        return Expr(f"({x.code} << {y.code})", lo=lo, hi=hi, reads=_union(x, y))
    return Expr(f"_shl({x.code}, {y.code})", reads=None)


def _shr(b: Body, v: dict) -> Expr:
    x, y = _operands(b, v)
    if y.const is not None:
        return _shift_by_constant(b, x, y, ">>")
    lo, hi = (min(x.lo, 0), max(x.hi, 0)) if _known(x) else (None, None)
    if y.lo is not None and y.lo >= 0:  # never negative: a plain, pure shift
        return Expr(f"({x.code} >> {y.code})", lo=lo, hi=hi, reads=_union(x, y))
    return Expr(f"_shr({x.code}, {y.code})", lo=lo, hi=hi, reads=None)


def _divide(b: Body, v: dict) -> Expr:
    """`/` and `%`: helpers that refuse a zero divisor at packet time."""
    x, y = _operands(b, v)
    lo, hi = (0, x.hi) if x.lo is not None and x.lo >= 0 and x.hi is not None else (None, None)
    return Expr(f"{'_div' if v['op'] == '/' else '_mod'}({x.code}, {y.code})", lo=lo, hi=hi, reads=None)


def _cast(b: Body, v: dict) -> Expr:
    """`two_comp_mod` (wrap), `sat_cast` and `usat_cast` (saturate) to a constant width."""
    op = v["op"]
    x, y = _operands(b, v)
    if y.const is None or y.const <= 0:
        raise b.err(f"'{op}' needs a constant positive width")
    w = y.const
    lo, hi = _urange(w) if op == "usat_cast" else _srange(w)
    if _fits(x, lo, hi):
        return x
    if op in ("usat_cast", "sat_cast"):
        return Expr(f"min(max({x.code}, {lo}), {hi})", lo=lo, hi=hi, reads=_union(x, y))
    return Expr(f"((({x.code}) + {1 << (w - 1)} & {(1 << w) - 1}) - {1 << (w - 1)})", lo=lo, hi=hi,
                reads=_union(x, y))


OPERATORS: dict[str, Callable[[Body, dict], Expr]] = {
    "not": _not, "d2b": _d2b, "b2d": _b2d, "~": _invert, "valid": _valid, "valid_union": _valid_union,
    "last_stack_index": _stack_size, "size_stack": _stack_size, "?": _choice, "and": _logical, "or": _logical,
    "dereference_header_stack": _dereference_stack, "access_field": _access_field,
    "dereference_union_stack": _indexed_union_stack, "access_union_header": _indexed_union_stack,
    **dict.fromkeys(("==", "!=", "<", ">", "<=", ">="), _compare), "&": _and,
    **dict.fromkeys(("+", "-", "*", "|", "^"), _arith), "<<": _shl, ">>": _shr, "/": _divide, "%": _divide,
    "two_comp_mod": _cast, "sat_cast": _cast, "usat_cast": _cast,
}
