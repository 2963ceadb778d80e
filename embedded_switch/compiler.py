"""Translate a BMv2 JSON program (v1model, as p4c emits it) into Python, once, at load time.

The packet state is a flat list `F` of integers: every header field, one validity slot
per header and one `next` slot per header stack, at indexes fixed by `Layout`. The
parser, each action, each table and conditional, the checksums and the deparser become
functions in one generated module (`compile()`d once); subexpressions repeated inside an
action are evaluated once into locals. Every construct the compiler does not know is
refused here, with `PipelineError` naming it and where it is; never at packet time.

>>> from embedded_switch.compiler import compile_program
>>> cp = compile_program({"header_types": [], "headers": []})
>>> cp.parse is not None
True
"""
from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from typing import Any, Callable

from embedded_switch import hashes
from embedded_switch.errors import PipelineError
from embedded_switch.expressions import Body, _count_subexpressions, _hex
from embedded_switch.layout import HeaderLayout, Layout
from embedded_switch.packet import (ALIAS_PREFIXES, CORE_ERRORS, MAX_PARSER_STATES, STANDARD_FIELDS, PacketAbort,
                                    ParserExit)
from embedded_switch.program import Program, describe, key_width
from embedded_switch.runtime import ActionProfile, ActionRt, Counter, Entry, MeterArray, Register, Table

log = logging.getLogger(__name__)

# --------------------------------------------------------------- generated helpers --

def _make_helpers(layout: Layout, drop_port: int) -> dict:
    HV = [h.valid for h in layout.headers.values()]
    HF = [h.slots for h in layout.headers.values()]
    SIB = [h.siblings for h in layout.headers.values()]
    SIZE = [0 if h.metadata else h.nbits // 8 for h in layout.headers.values()]

    def _last(idxs, nxt):
        if nxt <= 0 or nxt > len(idxs):
            raise ParserExit(CORE_ERRORS["StackOutOfBounds"])
        return idxs[nxt - 1]

    def _elem(hids, i):
        if 0 <= i < len(hids):
            return hids[i]
        raise PacketAbort(f"header stack index {i} out of range 0..{len(hids) - 1}")

    def _shl(a, b):
        if b < 0:
            raise PacketAbort(f"negative shift amount {b}")
        return a << b if b <= 4096 else 0

    def _shr(a, b):
        if b < 0:
            raise PacketAbort(f"negative shift amount {b}")
        return a >> b

    def _div(a, b):
        if b == 0:
            raise PacketAbort("division by zero")
        return a // b

    def _mod(a, b):
        if b == 0:
            raise PacketAbort("modulo by zero")
        return a % b

    def _copy_header(F, dst, src):
        F[HV[dst]] = F[HV[src]]
        for d, s in zip(HF[dst], HF[src]):
            F[d] = F[s]
        if F[HV[dst]]:
            for s in SIB[dst]:
                F[s] = 0

    def _set_valid(F, P, hid, valid, reset):
        if valid:
            if reset and not F[HV[hid]]:
                for i in HF[hid]:
                    F[i] = 0
                P.plen += SIZE[hid]
            F[HV[hid]] = 1
            for s in SIB[hid]:
                F[s] = 0
        else:
            if F[HV[hid]]:
                P.plen -= SIZE[hid]
            F[HV[hid]] = 0

    def _move(F, dst, src):
        """Copy stack element src (a header, or the members of a union) over element dst."""
        for d, s in zip(dst, src):
            F[HV[d]] = F[HV[s]]
            for a, b in zip(HF[d], HF[s]):
                F[a] = F[b]

    def _push(F, elems, nslot, count):
        size = len(elems)
        for i in range(size - 1, -1, -1):
            if i >= count:
                _move(F, elems[i], elems[i - count])
            else:
                for h in elems[i]:
                    F[HV[h]] = 0
        F[nslot] = min(size, F[nslot] + count)

    def _pop(F, elems, nslot, count):
        size = len(elems)
        for i in range(size):
            if i + count < size:
                _move(F, elems[i], elems[i + count])
            else:
                for h in elems[i]:
                    F[HV[h]] = 0
        F[nslot] = max(0, F[nslot] - count)

    def _lookahead(P, off, width):
        start = P.off * 8 + off
        end = start + width
        if (end + 7) // 8 > len(P.data):
            raise ParserExit(CORE_ERRORS["PacketTooShort"])
        b0, b1 = start // 8, (end + 7) // 8
        v = int.from_bytes(P.data[b0:b1], "big")
        return (v >> (b1 * 8 - end)) & ((1 << width) - 1)

    def _hash(calc, F, P, size):
        return calc(F, P) % (size or 1)

    def _rand(lo, hi):
        return random.randint(lo, hi)

    def _log_msg(fmt, values):
        msg = fmt
        for v in values:
            msg = msg.replace("{}", str(v), 1)
        log.info("log_msg: %s", msg)

    def _fail(what, where):
        raise PacketAbort(f"{what} failed in {where}")

    _now = time.monotonic
    trace_log = logging.getLogger("embedded_switch.trace")
    NAMES: dict = {}  # generated function -> what it is in the P4 program, filled after exec

    def _trace(fn):
        trace_log.debug("  %s", NAMES.get(fn, fn.__name__))

    return {k: v for k, v in locals().items() if k.startswith("_") or k in ("HV", "HF", "NAMES")} | {
        "ParserExit": ParserExit, "PacketAbort": PacketAbort}


# ---------------------------------------------------------------------- compiler --

@dataclass
class CompiledProgram:
    """Everything the switch needs to run packets of one program."""
    info: Program
    layout: Layout
    ns: dict
    source: str
    parse: Callable
    verify: Callable
    ingress: Callable
    egress: Callable
    update: Callable
    deparse: Callable
    parse_trace: Callable    # the same three, logging each parser state and control node
    ingress_trace: Callable
    egress_trace: Callable
    sm: dict[str, int | None]
    tables: dict[str, Table]
    table_actions: dict[str, dict[str, ActionRt]]  # table -> action name -> action
    actions: dict[int, ActionRt]
    counters: dict[str, Counter]
    direct_counters: dict[str, str]  # counter name -> table
    meters: dict[str, MeterArray]
    direct_meters: dict[str, str]
    registers: dict[str, Register]
    profiles: dict[str, ActionProfile]
    field_lists: dict[int, list[int]]
    learn_lists: dict[int, tuple[str, list[int]]]  # id -> (digest name, slots)
    value_sets: dict[str, set]
    errors: dict[str, int]
    drop_port: int


class Compiler:
    def __init__(self, j: dict, drop_port: int = 511):
        self.j, self.drop_port = j, drop_port
        meta = j.get("__meta__", {})
        version = meta.get("version", [2, 0])
        if not isinstance(version, list) or not version or version[0] != 2:
            raise PipelineError(f"__meta__.version {version!r}: only BMv2 JSON format 2.x is supported")
        self.layout = Layout(j)
        self.info = describe(j)
        self.lines: list[str] = []
        self.consts: dict[Any, str] = {}
        self.ns: dict = _make_helpers(self.layout, drop_port)
        self.sm = self._standard_metadata()
        self.j_registers = {r["name"]: r for r in j.get("register_arrays", [])}
        self.errors = dict(CORE_ERRORS) | {e[0]: e[1] for e in j.get("errors", [])}
        self.counters: dict[str, Counter] = {}
        self.meters: dict[str, MeterArray] = {}
        self.registers: dict[str, Register] = {}
        for c in j.get("counter_arrays", []):
            self.counters[c["name"]] = Counter(c["name"], c.get("size", 0))
        for m in j.get("meter_arrays", []):
            if m.get("rate_count", 2) != 2:
                raise PipelineError(f"meter array '{m['name']}': only 2-rate meters are supported")
            self.meters[m["name"]] = MeterArray(m["name"], m.get("size", 0), m.get("type") == "bytes")
        for r in j.get("register_arrays", []):
            self.registers[r["name"]] = Register(r["name"], r["size"], r["bitwidth"])
        self.calcs: dict[str, str] = {}
        self.j_calcs = {c["name"]: c for c in j.get("calculations", [])}
        self.value_sets: dict[str, set] = {v["name"]: set() for v in j.get("parse_vsets", [])}
        self.learn_lists: dict[int, tuple[str, list[int]]] = {
            ll["id"]: (ll["name"], [self.layout.field(el["value"], f"learn list '{ll['name']}'")[0]
                                    for el in ll.get("elements", [])])
            for ll in j.get("learn_lists", [])}
        for key in ("extern_instances",):
            if j.get(key):
                names = ", ".join(e.get("name", "?") for e in j[key])
                raise PipelineError(f"{key}: extern instances are not supported ({names})")

    # -- constants and named objects in the generated module
    def const(self, value: Any, prefix: str = "K") -> str:
        key = (prefix, value) if not callable(value) and not isinstance(value, (list, dict, set)) else (prefix, id(value))
        if key not in self.consts:
            name = f"{prefix}{len(self.consts)}"
            self.consts[key] = name
            self.ns[name] = value
        return self.consts[key]

    def counter(self, p: dict, where: str) -> str:
        if p.get("type") != "counter_array" or p.get("value") not in self.counters:
            raise PipelineError(f"{where}: unknown counter array {p.get('value')!r}")
        return self.const(self.counters[p["value"]], "C")

    def meter(self, p: dict, where: str) -> str:
        if p.get("type") != "meter_array" or p.get("value") not in self.meters:
            raise PipelineError(f"{where}: unknown meter array {p.get('value')!r}")
        return self.const(self.meters[p["value"]], "M")

    def register(self, name: str, where: str) -> str:
        if name not in self.registers:
            raise PipelineError(f"{where}: unknown register array {name!r}")
        return self.const(self.registers[name], "R")

    def register_param(self, p: dict, where: str) -> str:
        if p.get("type") != "register_array":
            raise PipelineError(f"{where}: expected a register array")
        return self.register(p.get("value"), where)

    def dynamic_field_type(self, hdr_json: dict, offset: int, where: str) -> tuple[str, int, bool]:
        """Field type of `access_field` on a header chosen at run time (a stack element)."""
        v = hdr_json.get("value", {})
        while isinstance(v, dict) and "op" not in v:
            v = v.get("value", {})
        if isinstance(v, dict) and v.get("op") == "dereference_header_stack":
            h = self.layout.headers[self.layout.stack(v["left"]["value"], where).headers[0]]
            if not 0 <= offset < len(h.fields):
                raise PipelineError(f"{where}: field offset {offset} out of range")
            name, width, signed, _ = h.fields[offset]
            return name, width, signed
        raise PipelineError(f"{where}: unsupported dynamic header access")

    def _standard_metadata(self) -> dict[str, int | None]:
        aliases = {a[0]: a[1] for a in self.j.get("field_aliases", [])}
        sm: dict[str, int | None] = {}
        for name in STANDARD_FIELDS:
            ref = None
            for prefix in ALIAS_PREFIXES:
                if prefix + name in aliases:
                    ref = aliases[prefix + name]
                    break
            if ref is None:
                h = self.layout.headers.get("standard_metadata")
                if h is not None and name in h.fidx:
                    ref = ["standard_metadata", name]
            sm[name] = self.layout.field(ref, "field_aliases")[0] if ref else None
        return sm

    # -- calculations (checksums, hashes, selectors)
    def calc_spec(self, inputs: list, where: str) -> list[tuple]:
        spec = []
        for inp in inputs:
            t, v = inp.get("type"), inp.get("value")
            if t == "field" and self.layout.varbit(v):
                vidx, lidx = self.layout.varbit(v)
                spec.append(("v", self.layout.headers[v[0]].valid, vidx, lidx))
            elif t == "field":
                idx, width, _ = self.layout.field(v, where)
                spec.append(("f", self.layout.headers[v[0]].valid, idx, width))
            elif t == "hexstr":
                spec.append(("c", _hex(v, where), int(inp.get("bitwidth", 0) or 0)))
            elif t == "header":
                h = self.layout.header(v, where)
                spec.append(("h", h.valid, tuple(((idx, h.vl[2]), None) if h.vl and idx == h.vl[1] else (idx, w)
                                                 for _, w, _, idx in h.fields)))
            elif t == "payload":
                spec.append(("p",))
            else:
                raise PipelineError(f"{where}: unsupported calculation input type '{t}'")
        return spec

    def make_calc(self, algo: str, inputs: list, where: str) -> Callable:
        fn = hashes.ALGORITHMS.get(algo)
        if fn is None:
            raise PipelineError(f"{where}: unsupported hash algorithm '{algo}' "
                                f"(supported: {', '.join(sorted(hashes.ALGORITHMS))})")
        spec = self.calc_spec(inputs, where)

        def calc(F, P=None):
            acc, nbits, tail = 0, 0, b""
            for item in spec:
                kind = item[0]
                if kind == "f":
                    if F[item[1]]:
                        w = item[3]
                        acc = (acc << w) | (F[item[2]] & ((1 << w) - 1))
                        nbits += w
                elif kind == "c":
                    w = item[2]
                    acc = (acc << w) | (item[1] & ((1 << w) - 1))
                    nbits += w
                elif kind == "v":
                    if F[item[1]]:
                        w = F[item[3]]
                        acc = (acc << w) | F[item[2]]
                        nbits += w
                elif kind == "h":
                    if F[item[1]]:
                        for idx, w in item[2]:
                            if w is None:  # the varbit field: (value slot, length slot)
                                idx, w = idx[0], F[idx[1]]
                            acc = (acc << w) | (F[idx] & ((1 << w) - 1))
                            nbits += w
                elif P is not None:
                    tail = P.data[P.off:]
            pad = -nbits % 8
            return fn((acc << pad).to_bytes((nbits + pad) // 8, "big") + tail)

        return calc

    def calculation(self, name: str, where: str) -> str:
        if name not in self.calcs:
            c = self.j_calcs.get(name)
            if c is None:
                raise PipelineError(f"{where}: unknown calculation '{name}'")
            fn = self.make_calc(c.get("algo"), c.get("input", []), f"calculation '{name}'")
            self.calcs[name] = self.const(fn, "H")
        return self.calcs[name]

    # -- code generation
    def emit_function(self, header: str, body: list[str]) -> None:
        self.lines.append(header)
        self.lines.extend("    " + b for b in (body or ["pass"]))
        self.lines.append("")

    def compile_action(self, a: dict) -> str:
        where = f"action '{a['name']}' (id {a['id']})"
        params = tuple(p["bitwidth"] for p in a.get("runtime_data", []))
        prims = a.get("primitives", [])
        counts: dict[str, int] = {}
        _count_subexpressions(prims, counts)
        body = Body(self, where, params, counts)
        jumps = any(p.get("op") in ("_jump", "_jump_if_zero") for p in prims)
        if not jumps:
            for p in prims:
                if body.primitive(p):
                    break
        else:
            targets = {0, len(prims)}
            for i, p in enumerate(prims):
                if p.get("op") in ("_jump", "_jump_if_zero"):
                    tgt = _hex(p["parameters"][-1]["value"], where)
                    if not 0 <= tgt <= len(prims):
                        raise PipelineError(f"{where}: jump target {tgt} out of range")
                    targets |= {tgt, i + 1}
            starts = sorted(targets)
            body.emit("pc = 0")
            body.emit("while True:")
            for bi, start in enumerate(starts):
                if start == len(prims):
                    continue
                end = next(s for s in starts if s > start)
                sub = Body(self, where, params, counts)
                sub.ntemps = body.ntemps
                for i in range(start, end):
                    p = prims[i]
                    if p.get("op") == "_jump":
                        sub.emit(f"pc = {_hex(p['parameters'][0]['value'], where)}")
                        sub.emit("continue")
                        break
                    if p.get("op") == "_jump_if_zero":
                        c = sub.data(sub.ex(p["parameters"][0]))
                        sub.emit(f"if {c.code} == 0:")
                        sub.emit(f"    pc = {_hex(p['parameters'][1]['value'], where)}")
                        sub.emit("    continue")
                        continue
                    if sub.primitive(p):
                        break
                else:
                    sub.emit(f"pc = {end}")
                    sub.emit("continue")
                body.ntemps = sub.ntemps
                body.emit(f"    {'if' if bi == 0 else 'elif'} pc == {start}:")
                body.lines.extend("        " + ln for ln in sub.lines)
            body.emit("    return")
        name = f"a{a['id']}"
        args = "".join(f", d{i}" for i in range(len(params)))
        self.emit_function(f"def {name}(F, P{args}):", body.lines)
        return name

    def unpacker(self, h: HeaderLayout) -> str:
        """`u<hid>(F, d, o, L=0) -> o'`: extract header h from bytes d at offset o (L: varbit bits)."""
        name = f"u{h.hid}"
        body = []
        if h.vl:
            body += [f"if L < 0 or L % 8 or L > {h.max_vl}: raise ParserExit({self.errors['HeaderTooShort']})",
                     f"e = o + {h.nbits // 8} + (L >> 3)"]
        else:
            body.append(f"e = o + {h.nbits // 8}")
        body.append(f"if e > len(d): raise ParserExit({self.errors['PacketTooShort']})")
        if h.fields:
            body.append("v = int.from_bytes(d[o:e], 'big')")
        for pos, (_, width, signed, idx) in enumerate(h.fields):
            shift = sum(w for _, w, _, _ in h.fields[pos + 1:])
            dyn = h.vl is not None and pos < h.vl[0]
            sh = f"{shift} + L" if dyn else str(shift)
            if h.vl and pos == h.vl[0]:
                body.append(f"F[{idx}] = (v >> {shift}) & ((1 << L) - 1)")
                body.append(f"F[{h.vl[2]}] = L")
                continue
            m = (1 << width) - 1
            raw = f"(v >> ({sh})) & {m}" if (shift or dyn) else f"v & {m}"
            if signed:
                body.append(f"F[{idx}] = (({raw}) ^ {1 << (width - 1)}) - {1 << (width - 1)}")
            else:
                body.append(f"F[{idx}] = {raw}")
        body.append(f"F[{h.valid}] = 1")
        body.extend(f"F[{s}] = 0" for s in h.siblings)
        body.append("return e")
        self.emit_function(f"def {name}(F, d, o, L=0):", body)
        return name

    def packer(self, h: HeaderLayout) -> str:
        """`k<hid>(F) -> bytes`: the header as it goes on the wire."""
        name = f"k{h.hid}"
        parts = []
        for pos, (_, width, signed, idx) in enumerate(h.fields):
            shift = sum(w for _, w, _, _ in h.fields[pos + 1:])
            dyn = h.vl is not None and pos < h.vl[0]
            sh = f"({shift} + L)" if dyn else str(shift)
            v = f"(F[{idx}] & {(1 << width) - 1})" if signed else f"F[{idx}]"
            parts.append(f"({v} << {sh})" if (shift or dyn) else v)
        expr = " | ".join(parts) or "0"
        if h.vl:
            body = [f"L = F[{h.vl[2]}]", f"return ({expr}).to_bytes({h.nbits // 8} + (L >> 3), 'big')"]
        else:
            body = [f"return ({expr}).to_bytes({h.nbits // 8}, 'big')"]
        self.emit_function(f"def {name}(F):", body)
        return name

    def compile_parser(self, p: dict) -> str:
        pname = p["name"]
        states = {s["name"]: s for s in p.get("parse_states", [])}
        fname = {s["name"]: f"ps{s['id']}" for s in p.get("parse_states", [])}
        self.parse_states = fname
        for s in p.get("parse_states", []):
            where = f"parser '{pname}' state '{s['name']}'"
            body = Body(self, where, parser=True)
            for op in s.get("parser_ops", []):
                self.parser_op(body, op, where)
            keys = s.get("transition_key", [])
            kparts, kbits = [], 0
            for k in reversed(keys):
                t, v = k.get("type"), k.get("value")
                if t == "field":
                    e = body.ex(k)
                    idx, width, signed = self.layout.field(v, where)
                    code = f"(F[{idx}] & {(1 << width) - 1})" if signed else f"F[{idx}]"
                elif t == "stack_field":
                    e = body.ex(k)
                    stack = self.layout.stack(v[0], where)
                    h = self.layout.headers[stack.headers[0]]
                    width = h.fields[[n for n, *_ in h.fields].index(v[1])][1]
                    code = f"({e.code} & {(1 << width) - 1})"
                elif t == "union_stack_field":
                    e = body.ex(k)
                    h = self.layout.headers[self.layout.union_stack_member(v[0], v[1], where)[0]]
                    width = h.fields[[n for n, *_ in h.fields].index(v[2])][1]
                    code = f"({e.code} & {(1 << width) - 1})"
                elif t == "lookahead":
                    width = int(v[1])
                    code = f"_lookahead(P, {int(v[0])}, {width})"
                else:
                    raise PipelineError(f"{where}: unsupported transition key type '{t}'")
                kparts.append(f"({code} << {kbits})" if kbits else code)
                kbits += (width + 7) // 8 * 8
            if keys:
                body.emit(f"k = {' | '.join(reversed(kparts))}")
            has_default = False
            for tr in s.get("transitions", []):
                nxt = tr.get("next_state")
                if nxt is not None and nxt not in states:
                    raise PipelineError(f"{where}: transition to unknown state '{nxt}'")
                target = fname[nxt] if nxt is not None else "None"
                ttype = tr.get("type") or ("hexstr" if tr.get("value") not in (None, "default") else "default")
                mask = tr.get("mask")
                if ttype == "default":
                    body.emit(f"return {target}")
                    has_default = True
                    break
                if ttype == "hexstr":
                    val = _hex(tr["value"], where)
                    if mask is not None:
                        m = _hex(mask, where)
                        body.emit(f"if k & {m} == {val & m}: return {target}")
                    else:
                        body.emit(f"if k == {val}: return {target}")
                elif ttype == "parse_vset":
                    vs = tr.get("value")
                    if vs not in self.value_sets:
                        raise PipelineError(f"{where}: unknown parse value set '{vs}'")
                    vsn = self.const(self.value_sets[vs], "VS")
                    m = _hex(mask, where) if mask is not None else None
                    test = f"any(k & {m} == x & {m} for x in {vsn})" if m is not None else f"k in {vsn}"
                    body.emit(f"if {test}: return {target}")
                else:
                    raise PipelineError(f"{where}: unsupported transition type '{ttype}'")
            if not has_default:
                body.emit("return None")  # as in BMv2: no case matched and no default, the parser accepts
            self.emit_function(f"def {fname[s['name']]}(F, P):", body.lines)
        init = p.get("init_state")
        if init is not None and init not in states:
            raise PipelineError(f"parser '{pname}': unknown init_state '{init}'")
        return fname[init] if init else "None"

    def parser_op(self, body: Body, op: dict, where: str) -> None:
        kind, ps = op.get("op"), op.get("parameters", [])
        if kind in ("extract", "extract_VL"):
            if len(ps) != (1 if kind == "extract" else 2):
                raise PipelineError(f"{where}: {kind} takes {1 if kind == 'extract' else 2} parameters")
            t, v = ps[0].get("type"), ps[0].get("value")
            extra = ""
            if kind == "extract_VL":
                extra = f", {body.data(body.ex(ps[1])).code}"
            if t == "regular":
                h = self.layout.header(v, where)
                if extra and not h.vl:
                    raise PipelineError(f"{where}: extract_VL of '{v}', which has no varbit field")
                body.emit(f"P.off = u{h.hid}(F, P.data, P.off{extra})")
            elif t == "stack":
                s = self.layout.stack(v, where)
                if extra:
                    raise PipelineError(f"{where}: extract_VL into a header stack is not supported")
                hids = tuple(self.layout.headers[n].hid for n in s.headers)
                body.emit(f"i = F[{s.next}]")
                body.emit(f"if i >= {len(hids)}: raise ParserExit({self.errors['StackOutOfBounds']})")
                body.emit(f"P.off = UNPACK[{self.const(hids)}[i]](F, P.data, P.off)")
                body.emit(f"F[{s.next}] = i + 1")
            elif t == "union_stack":
                if extra:
                    raise PipelineError(f"{where}: extract_VL into a header union stack is not supported")
                hids = tuple(self.layout.headers[n].hid for n in self.layout.union_stack_member(v[0], v[1], where))
                nxt = self.layout.union_stacks[v[0]].next
                body.emit(f"i = F[{nxt}]")
                body.emit(f"if i >= {len(hids)}: raise ParserExit({self.errors['StackOutOfBounds']})")
                body.emit(f"P.off = UNPACK[{self.const(hids)}[i]](F, P.data, P.off)")
                body.emit(f"F[{nxt}] = i + 1")
            else:
                raise PipelineError(f"{where}: unsupported extract target type '{t}'")
            body.invalidate(None)
        elif kind == "set":
            if len(ps) != 2:
                raise PipelineError(f"{where}: set takes two parameters")
            body.assign(ps[0], ps[1])
        elif kind == "verify":
            if len(ps) != 2:
                raise PipelineError(f"{where}: verify takes two parameters")
            c = body.boolean(body.ex(ps[0]))
            e = body.data(body.ex(ps[1]))
            body.emit(f"if not {c.code}: raise ParserExit({e.code})")
        elif kind in ("advance", "shift"):
            if len(ps) != 1:
                raise PipelineError(f"{where}: {kind} takes one parameter")
            n = body.data(body.ex(ps[0]))
            nbytes = f"{n.code}" if kind == "shift" else f"({n.code}) // 8"
            body.emit(f"_n = P.off + {nbytes}")
            body.emit(f"if _n > len(P.data): raise ParserExit({self.errors['PacketTooShort']})")
            body.emit("P.off = _n")
        elif kind == "primitive":
            if len(ps) != 1:
                raise PipelineError(f"{where}: primitive takes one parameter")
            if body.primitive(ps[0]):
                raise PipelineError(f"{where}: exit in a parser is not supported")
        else:
            raise PipelineError(f"{where}: unsupported parser op '{kind}'")

    def compile_checksums(self) -> tuple[str, str]:
        verify, update = [], []
        for c in self.j.get("checksums", []):
            where = f"checksum '{c['name']}'"
            if c.get("type", "generic") not in ("generic", "ipv4"):
                raise PipelineError(f"{where}: unsupported checksum type '{c.get('type')}'")
            calc = self.calculation(c["calculation"], where)
            idx, width, _ = self.layout.field(c["target"], where)
            m = (1 << width) - 1
            cond = "True"
            body_v, body_u = Body(self, where), Body(self, where)
            if c.get("if_cond") is not None:
                cond_v = body_v.boolean(body_v.ex(c["if_cond"])).code
                cond_u = body_u.boolean(body_u.ex(c["if_cond"])).code
            else:
                cond_v = cond_u = cond
            if c.get("verify", True):
                verify.extend(body_v.lines)
                verify.append(f"if {cond_v} and ({calc}(F, P) & {m}) != F[{idx}]: bad = 1")
            if c.get("update", True):
                update.extend(body_u.lines)
                update.append(f"if {cond_u}: F[{idx}] = {calc}(F, P) & {m}")
        ce = self.sm["checksum_error"]
        vbody = ["bad = 0", *verify] + ([f"F[{ce}] = bad"] if ce is not None else [])
        self.emit_function("def verify_checksums(F, P):", vbody)
        self.emit_function("def update_checksums(F, P):", update)
        return "verify_checksums", "update_checksums"

    def compile_deparser(self, d: dict | None) -> str:
        body = ["out = []"]
        if d is not None:
            if d.get("primitives"):
                raise PipelineError(f"deparser '{d['name']}': deparser primitives are not supported")
            for name in d.get("order", []):
                h = self.layout.header(name, f"deparser '{d['name']}'")
                body.append(f"if F[{h.valid}]: out.append(k{h.hid}(F))")
        body.append("out.append(P.data[P.off:])")
        body.append("return b''.join(out)")
        self.emit_function("def deparse(F, P):", body)
        return "deparse"

    def compile_pipeline(self, p: dict, actions_by_id: dict[int, dict],
                         out_tables: dict, out_table_actions: dict, profiles: dict) -> str:
        pname = p["name"]
        nodes: dict[str, str] = {}
        for t in p.get("tables", []):
            nodes[t["name"]] = f"nt{t['id']}"
        for c in p.get("conditionals", []):
            nodes[c["name"]] = f"nc{c['id']}"
        if p.get("action_calls"):
            raise PipelineError(f"pipeline '{pname}': action_calls are not supported")

        def ref(name: str | None, where: str) -> str:
            if name is None:
                return "None"
            if name not in nodes:
                raise PipelineError(f"{where}: next node '{name}' does not exist")
            return nodes[name]

        for ap in p.get("action_profiles", []):
            where = f"action profile '{ap['name']}'"
            sel = ap.get("selector")
            selector = None
            if sel is not None:
                selector = self.make_calc(sel.get("algo"), sel.get("input", []), where)
            profiles[ap["name"]] = ActionProfile(ap["name"], ap.get("max_size", 0), selector, {})

        for t in p.get("tables", []):
            where = f"table '{t['name']}'"
            ttype = t.get("type", "simple")
            if ttype not in ("simple", "indirect", "indirect_ws"):
                raise PipelineError(f"{where}: unsupported table type '{ttype}'")
            body = Body(self, where)
            kcodes, kinds, widths = [], [], []
            for k in t.get("key", []):
                kind = k.get("match_type")
                if kind == "selector":
                    continue
                if kind == "valid":
                    h = self.layout.header(k["target"], where)
                    kcodes.append(f"F[{h.valid}]")
                else:
                    idx, width, signed = self.layout.field(k["target"], where)
                    code = f"F[{idx}]"
                    if signed:
                        code = f"({code} & {(1 << width) - 1})"
                    if k.get("mask"):
                        m = _hex(k["mask"], where) & ((1 << width) - 1)
                        low = (m & -m).bit_length() - 1
                        code = f"(({code} & {m}) >> {low})" if low else f"({code} & {m})"
                    kcodes.append(code)
                kinds.append(kind)
                widths.append(key_width(self.j, k, where))
            names = t.get("actions", [])
            ids = t.get("action_ids") or [self.action_ids_by_name.get(n) for n in names]
            if len(ids) != len(names):
                raise PipelineError(f"{where}: action_ids and actions differ in length")
            tacts: dict[str, ActionRt] = {}
            for aid in ids:
                if aid not in actions_by_id:
                    raise PipelineError(f"{where}: unknown action id {aid}")
                tacts[actions_by_id[aid]["name"]] = self.action_rts[aid]
            profile = None
            if ttype != "simple":
                profile = profiles.get(t.get("action_profile"))
                if profile is None:
                    raise PipelineError(f"{where}: unknown action profile '{t.get('action_profile')}'")
                if ttype == "indirect_ws" and profile.selector is None:
                    raise PipelineError(f"{where}: action profile '{profile.name}' has no selector")
                profile.actions.update({a.aid: a for a in tacts.values()})
            default = None
            de = t.get("default_entry")
            if de is not None:
                aid = de.get("action_id")
                if aid not in ids:
                    raise PipelineError(f"{where}: default action id {aid} is not one of the table's actions")
                act = self.action_rts[aid]
                data = tuple(_hex(x, where) & ((1 << w) - 1) for x, w in zip(de.get("action_data", []), act.widths))
                if len(data) != len(act.widths):
                    raise PipelineError(f"{where}: default action data has {len(data)} values, "
                                        f"action '{act.name}' takes {len(act.widths)}")
                default = (act, data)
            tbl = Table(t["name"], kinds, widths, t.get("max_size", 0), default, profile)
            entries = t.get("entries", [])
            top = max((int(e.get("priority", i + 1)) for i, e in enumerate(entries)), default=0)
            for i, ent in enumerate(entries):
                self.const_entry(tbl, ent, i, kinds, ids, where, top)
            out_tables[t["name"]] = tbl
            out_table_actions[t["name"]] = tacts
            T = self.const(tbl, "T")
            nt = t.get("next_tables", {})
            hitmiss = "__HIT__" in nt or "__MISS__" in nt
            if hitmiss:
                nhit, nmiss = ref(nt.get("__HIT__"), where), ref(nt.get("__MISS__"), where)
            else:
                by_aid = {}
                for aid in ids:
                    aname = actions_by_id[aid]["name"]
                    by_aid[aid] = nt.get(aname, t.get("base_default_next"))
                nx_name = f"NX{t['id']}"
                self.deferred.append((nx_name, {a: n for a, n in by_aid.items()}, where))
            exits = any(p.get("op") == "exit" for aid in ids for p in actions_by_id[aid].get("primitives", []))
            key = f"({', '.join(kcodes)},)" if kcodes else "()"
            if tbl.is_exact:
                body.emit(f"e = {self.const(tbl.exact, 'EX')}.get({key})")
            else:
                body.emit(f"e = {T}.lookup({key})")
            body.emit("if e is None:")
            body.emit(f"    d = {T}.default")
            body.emit(f"    if d is None: return {nmiss if hitmiss else ref(t.get('base_default_next'), where)}")
            body.emit("    d[0].fn(F, P, *d[1])")
            if exits:
                body.emit("    if P.exit: return None")
            body.emit(f"    return {nmiss if hitmiss else f'{nx_name}[d[0].aid]'}")
            if t.get("support_timeout"):
                body.emit("e.last_hit = _now()")
            if t.get("with_counters"):
                body.emit("c = e.ctr; c[0] += 1; c[1] += P.ilen")
            dm = t.get("direct_meters")
            if dm:
                ma = next((m for m in self.j.get("meter_arrays", []) if m["name"] == dm), None)
                if ma is None:
                    raise PipelineError(f"{where}: unknown direct meter '{dm}'")
                rt = ma.get("result_target")
                by_bytes = ma.get("type") == "bytes"
                if rt:
                    idx, width, _ = self.layout.field(rt, where)
                    body.emit(f"if e.meter is not None: F[{idx}] = e.meter.execute({'P.ilen' if by_bytes else 1})")
            if profile is not None:
                body.emit(f"r = {self.const(profile, 'AP')}.resolve(e, F)")
                body.emit(f"if r is None: return {nmiss if hitmiss else ref(t.get('base_default_next'), where)}")
                body.emit("a = r[0]; a.fn(F, P, *r[1])")
            else:
                body.emit("a = e.action; a.fn(F, P, *e.args)")
            if exits:
                body.emit("if P.exit: return None")
            body.emit(f"return {nhit if hitmiss else f'{nx_name}[a.aid]'}")
            self.emit_function(f"def {nodes[t['name']]}(F, P):", body.lines)
        for c in p.get("conditionals", []):
            where = f"conditional '{c['name']}'"
            counts: dict[str, int] = {}
            _count_subexpressions(c.get("expression"), counts)
            body = Body(self, where, counts=counts)
            cond = body.boolean(body.ex(c["expression"]))
            body.emit(f"return {ref(c.get('true_next'), where)} if {cond.code} else "
                      f"{ref(c.get('false_next'), where)}")
            self.emit_function(f"def {nodes[c['name']]}(F, P):", body.lines)
        init = ref(p.get("init_table"), f"pipeline '{pname}'")
        fn = f"pipe_{len(self.pipes)}"
        self.pipes.append(fn)
        self.emit_function(f"def {fn}(F, P):", [f"n = {init}", "while n is not None:", "    n = n(F, P)"])
        self.emit_function(f"def {fn}_trace(F, P):", [f"n = {init}", "while n is not None:", "    _trace(n)",
                                                       "    n = n(F, P)"])
        self.nodes.update(nodes)
        return fn

    def const_entry(self, tbl: Table, ent: dict, i: int, kinds, ids, where, top: int) -> None:
        """Insert const entry i; BMv2's JSON priority (smaller wins) becomes a P4Runtime one."""
        from embedded_switch.switch import normalize_key  # one place turns keys into match data
        from embedded_switch import match as M
        mk = ent.get("match_key", [])
        if len(mk) != len(kinds):
            raise PipelineError(f"{where}: const entry {i} has {len(mk)} key fields, table has {len(kinds)}")
        key = []
        for m, kind in zip(mk, kinds):
            t = m.get("match_type")
            if t == "exact":
                key.append(M.Exact(_hex(m["key"], where)) if kind != "optional" else M.OptionalMatch(_hex(m["key"], where)))
            elif t == "lpm":
                key.append(M.Lpm(_hex(m["key"], where), int(m["prefix_length"])))
            elif t in ("ternary", "optional"):
                v, msk = _hex(m["key"], where), _hex(m.get("mask", "0x" + "f" * 64), where)
                if kind == "optional":
                    key.append(M.OptionalMatch(v if msk else None))
                else:
                    key.append(M.Ternary(v, msk))
            elif t == "range":
                key.append(M.Range(_hex(m["start"], where), _hex(m["end"], where)))
            elif t == "valid":
                key.append(M.Valid(bool(m["key"])))
            else:
                raise PipelineError(f"{where}: const entry {i}: unsupported match type '{t}'")
        ae = ent.get("action_entry", {})
        aid = ae.get("action_id")
        if aid not in ids:
            raise PipelineError(f"{where}: const entry {i}: action id {aid} not in table")
        act = self.action_rts[aid]
        args = tuple(_hex(x, where) for x in ae.get("action_data", []))
        try:
            match = normalize_key(tbl, key)
        except Exception as exc:
            raise PipelineError(f"{where}: const entry {i}: {exc}") from None
        prio = int(ent.get("priority", i + 1))
        p4rt_priority = top + 1 - prio if tbl.needs_priority else 0
        if tbl.identity(match, p4rt_priority) in tbl.by_match:
            raise PipelineError(f"{where}: const entry {i} duplicates an earlier entry")
        e = Entry(handle=tbl.new_handle(), key=tuple(key), priority=p4rt_priority, rank=(prio, i), action=act,
                  args=args, is_const=True, match=match)
        tbl.insert(e)

    def compile(self) -> CompiledProgram:
        j = self.j
        self.deferred: list = []
        self.parse_states: dict[str, str] = {}
        self.nodes: dict[str, str] = {}  # table / conditional name -> generated function
        self.pipes: list[str] = []
        unpackers = {}
        for h in self.layout.headers.values():
            if not h.metadata:
                unpackers[h.hid] = self.unpacker(h)
                self.packer(h)
        self.ns["UNPACK"] = None  # filled after exec
        actions_by_id = {}
        self.action_ids_by_name = {}
        for a in j.get("actions", []):
            self.action_ids_by_name.setdefault(a["name"], a["id"])
        self.action_rts: dict[int, ActionRt] = {}
        action_fns = {}
        for a in j.get("actions", []):
            actions_by_id[a["id"]] = a
            action_fns[a["id"]] = self.compile_action(a)
            self.action_rts[a["id"]] = ActionRt(a["id"], a["name"], None,
                                                tuple(p["bitwidth"] for p in a.get("runtime_data", [])))
        parsers = j.get("parsers", [])
        chosen = next((p for p in parsers if p["name"] == "parser"), parsers[0] if parsers else None)
        parse_init = self.compile_parser(chosen) if chosen else "None"
        for p in parsers:
            if p is not chosen:
                log.warning("parser '%s' ignored (v1model runs one parser: '%s')", p["name"], chosen["name"])
        verify, update = self.compile_checksums()
        deps = j.get("deparsers", [])
        deparse = self.compile_deparser(deps[0] if deps else None)
        tables: dict[str, Table] = {}
        table_actions: dict[str, dict[str, ActionRt]] = {}
        profiles: dict[str, ActionProfile] = {}
        pipes = {}
        for p in j.get("pipelines", []):
            pipes[p["name"]] = self.compile_pipeline(p, actions_by_id, tables, table_actions,
                                                     profiles)
        for name, traced in (("parse", ""), ("parse_trace", "        _trace(s)")):
            self.emit_function(f"def {name}(F, P):", [
                f"s = {parse_init}", f"n = {MAX_PARSER_STATES}", "try:", "    while s is not None:",
                "        n -= 1", f"        if not n: raise ParserExit({self.errors['ParserTimeout']})",
                *([traced] if traced else []), "        s = s(F, P)", "    return 0",
                "except ParserExit as x:", "    return x.code"])
        src = "\n".join(self.lines)
        try:
            code = compile(src, "<embedded_switch program>", "exec")
        except (SyntaxError, RecursionError, MemoryError) as exc:
            raise PipelineError(f"generated code does not compile: {exc}") from None
        exec(code, self.ns)
        self.ns["NAMES"].update({self.ns[fn]: f"{'table' if fn.startswith('nt') else 'condition'} '{name}'"
                                 for name, fn in self.nodes.items()})
        self.ns["NAMES"].update({self.ns[fn]: f"parser state '{name}'" for name, fn in self.parse_states.items()})
        self.ns["UNPACK"] = [self.ns.get(f"u{h.hid}") for h in self.layout.headers.values()]
        for aid, fname in action_fns.items():
            self.action_rts[aid].fn = self.ns[fname]
        for nx_name, by_aid, where in self.deferred:
            for n in by_aid.values():
                if n is not None and n not in self.nodes:
                    raise PipelineError(f"{where}: next node '{n}' does not exist")
            self.ns[nx_name] = {aid: (self.ns[self.nodes[n]] if n is not None else None) for aid, n in by_aid.items()}
        names = list(pipes)
        ingress = pipes.get("ingress") or (pipes[names[0]] if names else None)
        egress = pipes.get("egress") or (pipes[names[1]] if len(names) > 1 else None)
        field_lists = {}
        for fl in j.get("field_lists", []):
            idxs = []
            for el in fl.get("elements", []):
                if el.get("type") != "field":
                    raise PipelineError(f"field list '{fl.get('name')}': unsupported element type '{el.get('type')}'")
                idxs.append(self.layout.field(el["value"], f"field list '{fl.get('name')}'")[0])
            field_lists[fl["id"]] = idxs
        direct_counters = {c["name"]: c.get("binding") for c in j.get("counter_arrays", []) if c.get("is_direct")}
        direct_meters = {m["name"]: m.get("binding") for m in j.get("meter_arrays", []) if m.get("is_direct")}
        return CompiledProgram(
            info=self.info, layout=self.layout, ns=self.ns, source=src, parse=self.ns["parse"],
            verify=self.ns[verify], ingress=self.ns[ingress] if ingress else _noop,
            egress=self.ns[egress] if egress else _noop, update=self.ns[update],
            parse_trace=self.ns["parse_trace"], ingress_trace=self.ns[f"{ingress}_trace"] if ingress else _noop,
            egress_trace=self.ns[f"{egress}_trace"] if egress else _noop,
            deparse=self.ns[deparse], sm=self.sm, tables=tables, table_actions=table_actions,
            actions=self.action_rts, counters=self.counters, direct_counters=direct_counters,
            meters=self.meters, direct_meters=direct_meters, registers=self.registers, profiles=profiles,
            field_lists=field_lists, learn_lists=self.learn_lists, value_sets=self.value_sets, errors=self.errors,
            drop_port=self.drop_port)


def _noop(F, P):
    return None


def compile_program(j: dict, drop_port: int = 511) -> CompiledProgram:
    """Validate and translate a parsed BMv2 JSON; raises PipelineError on anything unsupported."""
    if not isinstance(j, dict):
        raise PipelineError("the BMv2 JSON must be an object at top level")
    try:
        return Compiler(j, drop_port).compile()
    except PipelineError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise PipelineError(f"malformed BMv2 JSON: {type(exc).__name__}: {exc}") from None
