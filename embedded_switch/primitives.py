"""Primitives of a BMv2 JSON program (the statements of actions) as Python source.

`emit_primitive(body, p)` looks the primitive up in `PRIMITIVES`, checks its number of
parameters and lets one small function write its statements into `body`.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

from embedded_switch.errors import PipelineError
from embedded_switch.expressions import Body, Expr


class Primitive(NamedTuple):
    arity: int | None  # None: the emitter checks its parameters itself
    emit: Callable[[Body, list, str], None]
    ends: bool = False  # the function returns after it (exit)


def emit_primitive(body: Body, p: dict) -> bool:
    """Emit one primitive; True if it ends the function (exit)."""
    op = p.get("op")
    ps = p.get("parameters", [])
    nparams = len(ps)
    where = f"{body.where}: primitive '{op}'"
    prim = PRIMITIVES.get(op) if isinstance(op, str) else None
    if prim is None:
        raise PipelineError(f"{where}: unsupported primitive")
    if prim.arity is not None and nparams != prim.arity:
        raise PipelineError(f"{where}: expected {prim.arity} parameters, got {nparams}")
    prim.emit(body, ps, where)
    return prim.ends


def _copy_headers(body: Body, dst: list[str], src: list[str]) -> None:
    for a, b in zip(dst, src):
        body.emit(f"_copy_header(F, {body.L.headers[a].hid}, {body.L.headers[b].hid})")


def _two(body: Body, ps: list, kind: str, what: str, where: str) -> tuple[str, str]:
    """Names of the two operands of a copy, both of `kind` (union, stack, ustack)."""
    d, s = body.ex(ps[0]), body.ex(ps[1])
    if d.kind != kind or s.kind != kind:
        raise PipelineError(f"{where}: expected two {what}")
    return d.name, s.name


# -- assignments

def _assign(body: Body, ps: list, where: str) -> None:
    body.assign(ps[0], ps[1])


def _assign_varbit(body: Body, ps: list, where: str) -> None:
    d, s = body.L.varbit(ps[0].get("value")), body.L.varbit(ps[1].get("value"))
    if d is None or s is None:
        raise PipelineError(f"{where}: both parameters must be varbit fields")
    body.emit(f"F[{d[0]}] = F[{s[0]}]; F[{d[1]}] = F[{s[1]}]")
    body.invalidate(None)


def _assign_header(body: Body, ps: list, where: str) -> None:
    d, s = body.header_ref(ps[0]), body.header_ref(ps[1])
    body.emit(f"_copy_header(F, {d.code}, {s.code})")
    body.invalidate(None)


def _assign_union(body: Body, ps: list, where: str) -> None:
    d, s = _two(body, ps, "union", "header unions", where)
    _copy_headers(body, body.L.unions[d], body.L.unions[s])
    body.invalidate(None)


def _assign_stack(body: Body, ps: list, where: str) -> None:
    d, s = _two(body, ps, "stack", "header stacks", where)
    sd, ss = body.L.stacks[d], body.L.stacks[s]
    _copy_headers(body, sd.headers, ss.headers)
    body.emit(f"F[{sd.next}] = F[{ss.next}]")
    body.invalidate(None)


def _assign_union_stack(body: Body, ps: list, where: str) -> None:
    d, s = _two(body, ps, "ustack", "header union stacks", where)
    sd, ss = body.L.union_stacks[d], body.L.union_stacks[s]
    for ud, us in zip(sd.headers, ss.headers):
        _copy_headers(body, body.L.unions[ud], body.L.unions[us])
    body.emit(f"F[{sd.next}] = F[{ss.next}]")
    body.invalidate(None)


# -- headers and stacks

def _validity(valid: bool, reset: bool) -> Callable[[Body, list, str], None]:
    def emit(body: Body, ps: list, where: str) -> None:
        body.set_valid(body.header_ref(ps[0]), valid, reset)
        body.invalidate(None)
    return emit


def _push_pop(op: str) -> Callable[[Body, list, str], None]:
    def emit(body: Body, ps: list, where: str) -> None:
        s = body.ex(ps[0])
        count = body.data(body.ex(ps[1]))
        if s.kind == "stack":
            stack = body.L.stacks[s.name]
            elems = tuple((body.L.headers[x].hid,) for x in stack.headers)
        elif s.kind == "ustack":
            stack = body.L.union_stacks[s.name]
            elems = tuple(tuple(body.L.headers[h].hid for h in body.L.unions[u]) for u in stack.headers)
        else:
            raise PipelineError(f"{where}: expected a header stack")
        body.emit(f"_{op}(F, {body.module.const(elems)}, {stack.next}, {count.code})")
        body.invalidate(None)
    return emit


# -- forwarding

def _drop(body: Body, ps: list, where: str) -> None:
    sm = body.module.sm
    if sm["egress_spec"] is None:
        raise PipelineError(f"{where}: the program has no standard_metadata.egress_spec")
    body.emit(f"F[{sm['egress_spec']}] = {body.module.drop_port}")
    if sm["mcast_grp"] is not None:
        body.emit(f"F[{sm['mcast_grp']}] = 0")
    body.invalidate(None)


def _exit(body: Body, ps: list, where: str) -> None:
    body.emit("P.exit = True")
    body.emit("return")


def _no_op(body: Body, ps: list, where: str) -> None:
    pass


def _clone(body: Body, ps: list, where: str) -> None:
    sess, fl = body.data(body.ex(ps[0])), body.data(body.ex(ps[1]))
    body.emit(f"P.clone = ({sess.code}, {fl.code})")


def _packet_attribute(attr: str) -> Callable[[Body, list, str], None]:
    """resubmit, recirculate, truncate: one value into a field of the packet context."""
    def emit(body: Body, ps: list, where: str) -> None:
        body.emit(f"P.{attr} = {body.data(body.ex(ps[0])).code}")
    return emit


def _digest(body: Body, ps: list, where: str) -> None:
    lid = body.data(body.ex(ps[1]))
    if lid.const is not None and lid.const not in body.module.learn_lists:
        raise PipelineError(f"{where}: unknown learn list id {lid.const}")
    body.emit(f"P.digest = {lid.code}")


# -- externs

def _count(body: Body, ps: list, where: str) -> None:
    ctr = body.module.counter(ps[0], where)
    idx = body.data(body.ex(ps[1]))
    body.emit(f"{ctr}.count({idx.code}, P.ilen)")


def _execute_meter(body: Body, ps: list, where: str) -> None:
    m = body.module.meter(ps[0], where)
    idx = body.data(body.ex(ps[1]))
    code, _, _, written = body.lvalue(ps[2])
    body.emit(f"_c = {m}.execute({idx.code}, P.ilen)")
    body.emit(f"if _c is not None: {code} = _c")
    body.invalidate(written)


def _register_read(body: Body, ps: list, where: str) -> None:
    code, width, signed, written = body.lvalue(ps[0])
    reg = body.module.register_param(ps[1], where)
    idx = body.data(body.ex(ps[2]))
    body.emit(f"{code} = {body.fit(Expr(f'{reg}.read({idx.code})', reads=None), width, signed)}")
    body.invalidate(written)


def _register_write(body: Body, ps: list, where: str) -> None:
    reg = body.module.register_param(ps[0], where)
    idx = body.data(body.ex(ps[1]))
    val = body.data(body.ex(ps[2]))
    body.emit(f"{reg}.write({idx.code}, {val.code})")


def _hash(body: Body, ps: list, where: str) -> None:
    code, width, signed, written = body.lvalue(ps[0])
    base = body.data(body.ex(ps[1]))
    if ps[2].get("type") != "calculation":
        raise PipelineError(f"{where}: third parameter must be a calculation")
    calc = body.module.calculation(ps[2]["value"], where)
    size = body.data(body.ex(ps[3]))
    val = Expr(f"(_hash({calc}, F, P, {size.code}) + {base.code})", reads=None)
    body.emit(f"{code} = {body.fit(val, width, signed)}")
    body.invalidate(written)


def _random(body: Body, ps: list, where: str) -> None:
    code, width, signed, written = body.lvalue(ps[0])
    lo, hi = body.data(body.ex(ps[1])), body.data(body.ex(ps[2]))
    body.emit(f"_lo, _hi = {lo.code}, {hi.code}")
    body.emit(f"if _lo <= _hi: {code} = {body.fit(Expr('_rand(_lo, _hi)', reads=None), width, signed)}")
    body.invalidate(written)


# -- diagnostics

def _log_msg(body: Body, ps: list, where: str) -> None:
    if len(ps) not in (1, 2):
        raise PipelineError(f"{where}: expected 1 or 2 parameters, got {len(ps)}")
    fmt = body.ex(ps[0])
    args = body.ex(ps[1]).items if len(ps) == 2 else []
    vals = ", ".join(body.data(a).code for a in args)
    body.emit(f"_log_msg({fmt.code}, [{vals}])")


def _check(op: str) -> Callable[[Body, list, str], None]:
    """assert and assume: a false condition drops the packet."""
    def emit(body: Body, ps: list, where: str) -> None:
        c = body.boolean(body.ex(ps[0]))
        body.emit(f"if not {c.code}: _fail({op!r}, {body.where!r})")
    return emit


PRIMITIVES: dict[str, Primitive] = {
    "assign": Primitive(2, _assign), "modify_field": Primitive(2, _assign),
    "assign_VL": Primitive(2, _assign_varbit), "assign_header": Primitive(2, _assign_header),
    "assign_union": Primitive(2, _assign_union), "assign_header_stack": Primitive(2, _assign_stack),
    "assign_union_stack": Primitive(2, _assign_union_stack),
    "add_header": Primitive(1, _validity(True, True)), "setValid": Primitive(1, _validity(True, False)),
    "add_header_fast": Primitive(1, _validity(True, False)),
    "remove_header": Primitive(1, _validity(False, False)), "setInvalid": Primitive(1, _validity(False, False)),
    "push": Primitive(2, _push_pop("push")), "pop": Primitive(2, _push_pop("pop")),
    "mark_to_drop": Primitive(None, _drop), "drop": Primitive(None, _drop),
    "exit": Primitive(None, _exit, ends=True), "no_op": Primitive(None, _no_op),
    "count": Primitive(2, _count), "execute_meter": Primitive(3, _execute_meter),
    "register_read": Primitive(3, _register_read), "register_write": Primitive(3, _register_write),
    "modify_field_with_hash_based_offset": Primitive(4, _hash), "modify_field_rng_uniform": Primitive(3, _random),
    "clone_ingress_pkt_to_egress": Primitive(2, _clone), "clone_egress_pkt_to_egress": Primitive(2, _clone),
    "resubmit": Primitive(1, _packet_attribute("resubmit")), "recirculate": Primitive(1, _packet_attribute("recirc")),
    "truncate": Primitive(1, _packet_attribute("trunc")),
    "log_msg": Primitive(None, _log_msg),
    "assert": Primitive(1, _check("assert")), "assume": Primitive(1, _check("assume")),
    "generate_digest": Primitive(2, _digest),
}
