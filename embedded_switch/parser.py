"""The parser of a BMv2 JSON program as Python source: one function per parse state.

A state function `ps<id>(F, P)` runs the state's operations (each one small function in
`PARSER_OPS`), computes the transition key and returns the next state's function, or
None when the parser accepts; errors leave it as `ParserExit(code)`.
"""
from __future__ import annotations

from typing import Callable

from embedded_switch.codegen import Module
from embedded_switch.errors import PipelineError
from embedded_switch.expressions import Body
from embedded_switch.primitives import emit_primitive
from embedded_switch.program import ParserInfo, ParseStateInfo, TransitionInfo, hex_value

_COUNT = {1: "one", 2: "two"}


def compile_parser(module: Module, parser: ParserInfo) -> tuple[str, dict[str, str]]:
    """Emit the state functions; (the initial state's function or "None", state name -> function)."""
    names = {s.name: f"ps{s.id}" for s in parser.states}
    for s in parser.states:
        _state(module, parser, s, names)
    init = parser.init_state
    if init is not None and init not in names:
        raise PipelineError(f"parser '{parser.name}': unknown init_state '{init}'")
    return (names[init] if init else "None"), names


def _state(module: Module, parser: ParserInfo, s: ParseStateInfo, names: dict[str, str]) -> None:
    where = f"parser '{parser.name}' state '{s.name}'"
    body = Body(module, where, parser=True)
    for op in s.ops:
        _parser_op(body, op, where)
    key = _transition_key(body, s.keys, where)
    if s.keys:
        body.emit(f"k = {key}")
    for tr in s.transitions:
        if tr.next_state is not None and tr.next_state not in names:
            raise PipelineError(f"{where}: transition to unknown state '{tr.next_state}'")
        target = names[tr.next_state] if tr.next_state is not None else "None"
        if tr.type == "default":
            body.emit(f"return {target}")
            break
        body.emit(f"if {_transition_test(body, tr, where)}: return {target}")
    else:
        body.emit("return None")  # as in BMv2: no case matched and no default, the parser accepts
    module.emit_function(f"def {names[s.name]}(F, P):", body.lines)


def _transition_key(body: Body, keys: list, where: str) -> str:
    """The key as one integer: each part padded to whole bytes, the first part highest."""
    parts, nbits = [], 0
    for k in reversed(keys):
        code, width = _key_part(body, k, where)
        parts.append(f"({code} << {nbits})" if nbits else code)
        nbits += (width + 7) // 8 * 8
    return " | ".join(reversed(parts))


def _key_part(body: Body, k: dict, where: str) -> tuple[str, int]:
    t, v = k.get("type"), k.get("value")
    L = body.L
    if t == "field":
        body.ex(k)
        idx, width, signed = L.field(v, where)
        return (f"(F[{idx}] & {(1 << width) - 1})" if signed else f"F[{idx}]"), width
    if t == "stack_field":
        e = body.ex(k)
        h = L.headers[L.stack(v[0], where).headers[0]]
        width = h.fields[h.position(v[1])][1]
        return f"({e.code} & {(1 << width) - 1})", width
    if t == "union_stack_field":
        e = body.ex(k)
        h = L.headers[L.union_stack_member(v[0], v[1], where)[0]]
        width = h.fields[h.position(v[2])][1]
        return f"({e.code} & {(1 << width) - 1})", width
    if t == "lookahead":
        width = int(v[1])
        return f"_lookahead(P, {int(v[0])}, {width})", width
    raise PipelineError(f"{where}: unsupported transition key type '{t}'")


def _transition_test(body: Body, tr: TransitionInfo, where: str) -> str:
    """The condition under which the parser takes transition `tr` (value or value set, maybe masked)."""
    if tr.type == "hexstr":
        val = hex_value(tr.value, where)
        if tr.mask is None:
            return f"k == {val}"
        mask = hex_value(tr.mask, where)
        return f"k & {mask} == {val & mask}"
    if tr.type == "parse_vset":
        if tr.value not in body.module.value_sets:
            raise PipelineError(f"{where}: unknown parse value set '{tr.value}'")
        vsn = body.module.const(body.module.value_sets[tr.value], "VS")
        if tr.mask is None:
            return f"k in {vsn}"
        mask = hex_value(tr.mask, where)
        return f"any(k & {mask} == x & {mask} for x in {vsn})"
    raise PipelineError(f"{where}: unsupported transition type '{tr.type}'")


def _parser_op(body: Body, op: dict, where: str) -> None:
    kind, ps = op.get("op"), op.get("parameters", [])
    entry = PARSER_OPS.get(kind) if isinstance(kind, str) else None
    if entry is None:
        raise PipelineError(f"{where}: unsupported parser op '{kind}'")
    arity, emit = entry
    if len(ps) != arity:
        raise PipelineError(f"{where}: {kind} takes {_COUNT[arity]} parameter{'s' if arity > 1 else ''}")
    emit(body, kind, ps, where)


def _extract_next(body: Body, hids: tuple[int, ...], nxt: int, length: str = "") -> None:
    """Extract into the next element of a stack (or of a union stack, one member); `length`:
    the varbit field's length in bits (extract_VL), as `, code`."""
    body.emit(f"i = F[{nxt}]")
    body.emit(f"if i >= {len(hids)}: raise ParserExit({body.module.errors['StackOutOfBounds']})")
    body.emit(f"P.off = UNPACK[{body.module.const(hids)}[i]](F, P.data, P.off{length})")
    body.emit(f"F[{nxt}] = i + 1")


def _extract(body: Body, kind: str, ps: list, where: str) -> None:
    t, v = ps[0].get("type"), ps[0].get("value")
    L = body.L
    length = f", {body.data(body.ex(ps[1])).code}" if kind == "extract_VL" else ""
    if t == "regular":
        h = L.header(v, where)
        if length and not h.vl:
            raise PipelineError(f"{where}: extract_VL of '{v}', which has no varbit field")
        body.emit(f"P.off = u{h.hid}(F, P.data, P.off{length})")
    elif t == "stack":
        s = L.stack(v, where)
        if length and not (s.headers and L.headers[s.headers[0]].vl):
            raise PipelineError(f"{where}: extract_VL into stack '{v}', whose headers have no varbit field")
        _extract_next(body, tuple(L.headers[n].hid for n in s.headers), s.next, length)
    elif t == "union_stack":
        members = L.union_stack_member(v[0], v[1], where)
        if length and not (members and L.headers[members[0]].vl):
            raise PipelineError(f"{where}: extract_VL into member '{v[1]}' of union stack '{v[0]}', "
                                "which has no varbit field")
        _extract_next(body, tuple(L.headers[n].hid for n in members), L.union_stacks[v[0]].next, length)
    else:
        raise PipelineError(f"{where}: unsupported extract target type '{t}'")
    body.invalidate(None)


def _set(body: Body, kind: str, ps: list, where: str) -> None:
    body.assign(ps[0], ps[1])


def _verify(body: Body, kind: str, ps: list, where: str) -> None:
    c = body.boolean(body.ex(ps[0]))
    e = body.data(body.ex(ps[1]))
    body.emit(f"if not {c.code}: raise ParserExit({e.code})")


def _advance(body: Body, kind: str, ps: list, where: str) -> None:
    """advance (bits) and shift (bytes): skip input without extracting it."""
    n = body.data(body.ex(ps[0]))
    if kind == "shift":
        body.emit(f"_n = P.off + {n.code}")
    else:  # BMv2 refuses to advance by bits that do not make whole bytes
        body.emit(f"_n = {n.code}")
        body.emit(f"if _n % 8: raise ParserExit({body.module.errors['ParserInvalidArgument']})")
        body.emit("_n = P.off + (_n >> 3)")
    body.emit(f"if _n > len(P.data): raise ParserExit({body.module.errors['PacketTooShort']})")
    body.emit("P.off = _n")


def _primitive(body: Body, kind: str, ps: list, where: str) -> None:
    if emit_primitive(body, ps[0]):
        raise PipelineError(f"{where}: exit in a parser is not supported")


PARSER_OPS: dict[str, tuple[int, Callable[[Body, str, list, str], None]]] = {
    "extract": (1, _extract), "extract_VL": (2, _extract), "set": (2, _set), "verify": (2, _verify),
    "advance": (1, _advance), "shift": (1, _advance), "primitive": (1, _primitive),
}
