"""Translate a BMv2 JSON program (v1model, as p4c emits it) into Python, once, at load time.

The packet state is a flat list `F` of integers: every header field, one validity slot
per header and one `next` slot per header stack, at indexes fixed by `Layout`. The
parser, each action, each table and conditional, the checksums and the deparser become
functions in one generated module (`compile()`d once); subexpressions repeated inside an
action are evaluated once into locals. Every construct the compiler does not know is
refused here, with `PipelineError` naming it and where it is; never at packet time.

The JSON is read once (`program.describe`); the parts of the translation live in
`expressions` and `primitives` (actions), `parser` and `controls` (tables, conditionals),
all writing into one `codegen.Module`.

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
from typing import Callable

from embedded_switch.codegen import LearnList, Module
from embedded_switch.controls import Controls
from embedded_switch.errors import PipelineError
from embedded_switch.expressions import Body, count_subexpressions
from embedded_switch.layout import HeaderLayout, Layout
from embedded_switch.packet import MAX_PARSER_STATES, TRACE_LOG, PacketAbort, ParserExit, error_codes
from embedded_switch.parser import compile_parser
from embedded_switch.primitives import emit_primitive
from embedded_switch.program import (ActionDef, ChecksumInfo, DeparserInfo, Program, describe, hex_value,
                                     refusing_malformed)
from embedded_switch.runtime import ActionProfile, ActionRt, Counter, MeterArray, Register, Table

log = logging.getLogger(__name__)

# --------------------------------------------------------------- generated helpers --

def _make_helpers(layout: Layout, errors: dict[str, int]) -> dict:
    """The functions and tables the generated code calls, by the names it uses."""
    HV = [h.valid for h in layout.headers.values()]
    HF = [h.slots for h in layout.headers.values()]
    SIB = [h.siblings for h in layout.headers.values()]
    SIZE = [0 if h.metadata else h.nbits // 8 for h in layout.headers.values()]

    def _last(idxs, nxt):
        if nxt <= 0 or nxt > len(idxs):
            raise ParserExit(errors["StackOutOfBounds"])
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
            raise ParserExit(errors["PacketTooShort"])
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
    NAMES: dict = {}  # generated function -> what it is in the P4 program, filled after exec

    def _trace(fn):
        TRACE_LOG.debug("  %s", NAMES.get(fn, fn.__name__))

    return {k: v for k, v in locals().items() if k.startswith("_") or k in ("HV", "HF", "NAMES")} | {
        "ParserExit": ParserExit, "PacketAbort": PacketAbort}


# ---------------------------------------------------------------------- compiler --

ARRIVE = ("ingress_port", "packet_length", "instance_type", "ingress_global_timestamp")
DEPART = ("egress_port", "egress_spec", "packet_length", "egress_global_timestamp")


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
    arrive: Callable         # (F, ingress_port, packet_length, instance_type, timestamp): set as ingress starts
    depart: Callable         # (F, egress_port, egress_spec, packet_length, timestamp): set as egress starts
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
    learn_lists: dict[int, LearnList]
    value_sets: dict[str, set]
    errors: dict[str, int]
    drop_port: int


class Compiler:
    """Translates one `Program` into a `CompiledProgram`."""

    def __init__(self, program: Program, drop_port: int = 511):
        version = program.version
        if not isinstance(version, list) or not version or version[0] != 2:
            raise PipelineError(f"__meta__.version {version!r}: only BMv2 JSON format 2.x is supported")
        self.program, self.layout = program, Layout(program)
        self.module = Module(program, self.layout, drop_port, _make_helpers(self.layout, error_codes(program.errors)))
        if program.extern_instances:
            names = ", ".join(program.extern_instances)
            raise PipelineError(f"extern_instances: extern instances are not supported ({names})")

    def compile(self) -> CompiledProgram:
        """Emit every function of the program, run the module once and link its parts."""
        m, program = self.module, self.program
        for h in self.layout.headers.values():
            if not h.metadata:
                self.unpacker(h)
                self.packer(h)
        m.ns["UNPACK"] = None  # filled after exec
        actions = {a.id: ActionRt(a.id, a.name, None, tuple(p.bitwidth for p in a.params))
                   for a in program.action_defs}
        action_fns = {a.id: self.compile_action(a) for a in program.action_defs}
        parse_init, parse_states = self._parser()
        verify, update = self.compile_checksums(program.checksums)
        deparse = self.compile_deparser(program.deparser)
        controls = Controls(m, actions, {a.id: a for a in program.action_defs})
        pipes = {name: controls.compile(p) for name, p in program.pipelines.items()}
        self._emit_parse(parse_init)
        self._emit_standard_metadata()
        src, ns = self._execute()
        ns["NAMES"].update({ns[fn]: f"{'table' if fn.startswith('nt') else 'condition'} '{name}'"
                            for name, fn in controls.nodes.items()})
        ns["NAMES"].update({ns[fn]: f"parser state '{name}'" for name, fn in parse_states.items()})
        ns["UNPACK"] = [ns.get(f"u{h.hid}") for h in self.layout.headers.values()]
        for aid, fname in action_fns.items():
            actions[aid].fn = ns[fname]
        controls.link(ns)
        names = list(pipes)
        ingress = pipes.get("ingress") or (pipes[names[0]] if names else None)
        egress = pipes.get("egress") or (pipes[names[1]] if len(names) > 1 else None)
        return CompiledProgram(
            info=program, layout=self.layout, ns=ns, source=src, parse=ns["parse"],
            verify=ns[verify], ingress=ns[ingress] if ingress else _noop,
            egress=ns[egress] if egress else _noop, update=ns[update],
            parse_trace=ns["parse_trace"], ingress_trace=ns[f"{ingress}_trace"] if ingress else _noop,
            egress_trace=ns[f"{egress}_trace"] if egress else _noop,
            deparse=ns[deparse], arrive=ns["arrive"], depart=ns["depart"], sm=m.sm, tables=controls.tables, table_actions=controls.table_actions,
            actions=actions, counters=m.counters,
            direct_counters={c.name: c.binding for c in program.counters.values() if c.is_direct},
            meters=m.meters, direct_meters={x.name: x.binding for x in program.meters.values() if x.is_direct},
            registers=m.registers, profiles=controls.profiles, field_lists=self.field_lists(),
            learn_lists=m.learn_lists, value_sets=m.value_sets, errors=m.errors, drop_port=m.drop_port)

    def _execute(self) -> tuple[str, dict]:
        """Compile the emitted source and run it in the module's namespace: (source, namespace)."""
        src = "\n".join(self.module.lines)
        try:
            code = compile(src, "<embedded_switch program>", "exec")
        except (SyntaxError, RecursionError, MemoryError) as exc:
            raise PipelineError(f"generated code does not compile: {exc}") from None
        exec(code, self.module.ns)
        return src, self.module.ns

    def compile_action(self, a: ActionDef) -> str:
        """Emit `a<id>(F, P, d0, d1, ...)`; an action with jumps becomes blocks in a loop."""
        where = f"action '{a.name}' (id {a.id})"
        params = tuple(p.bitwidth for p in a.params)
        counts: dict[str, int] = {}
        count_subexpressions(a.primitives, counts)
        body = Body(self.module, where, params, counts)
        if any(p.get("op") in _JUMPS for p in a.primitives):
            self._jumping(body, a.primitives, where, params, counts)
        else:
            for p in a.primitives:
                if emit_primitive(body, p):
                    break
        name = f"a{a.id}"
        args = "".join(f", d{i}" for i in range(len(params)))
        self.module.emit_function(f"def {name}(F, P{args}):", body.lines)
        return name

    def _jumping(self, body: Body, prims: list, where: str, params: tuple[int, ...], counts: dict) -> None:
        """Primitives with `_jump`/`_jump_if_zero`: one block per jump target, selected by `pc`."""
        targets = {0, len(prims)}
        for i, p in enumerate(prims):
            if p.get("op") in _JUMPS:
                tgt = hex_value(p["parameters"][-1]["value"], where)
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
            block = Body(self.module, where, params, counts)
            block.ntemps = body.ntemps
            self._block(block, prims[start:end], end, where)
            body.ntemps = block.ntemps
            body.emit(f"    {'if' if bi == 0 else 'elif'} pc == {start}:")
            body.lines.extend("        " + ln for ln in block.lines)
        body.emit("    return")

    @staticmethod
    def _block(block: Body, prims: list, end: int, where: str) -> None:
        """One straight run of primitives; it ends by setting `pc` (jump, or fall through to `end`)."""
        for p in prims:
            if p.get("op") == "_jump":
                block.emit(f"pc = {hex_value(p['parameters'][0]['value'], where)}")
                block.emit("continue")
                return
            if p.get("op") == "_jump_if_zero":
                c = block.data(block.ex(p["parameters"][0]))
                block.emit(f"if {c.code} == 0:")
                block.emit(f"    pc = {hex_value(p['parameters'][1]['value'], where)}")
                block.emit("    continue")
                continue
            if emit_primitive(block, p):
                return
        block.emit(f"pc = {end}")
        block.emit("continue")

    def unpacker(self, h: HeaderLayout) -> str:
        """`u<hid>(F, d, o, L=0) -> o'`: extract header h from bytes d at offset o (L: varbit bits)."""
        errors = self.module.errors
        name = f"u{h.hid}"
        body = []
        if h.vl:
            # BMv2's order: a length that is not whole bytes, then the packet, then the maximum
            body += [f"if L < 0 or L % 8: raise ParserExit({errors['ParserInvalidArgument']})",
                     f"e = o + {h.nbits // 8} + (L >> 3)",
                     f"if e > len(d): raise ParserExit({errors['PacketTooShort']})",
                     f"if L > {h.max_vl}: raise ParserExit({errors['HeaderTooShort']})"]
        else:
            body += [f"e = o + {h.nbits // 8}", f"if e > len(d): raise ParserExit({errors['PacketTooShort']})"]
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
        self.module.emit_function(f"def {name}(F, d, o, L=0):", body)
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
        self.module.emit_function(f"def {name}(F):", body)
        return name

    def _parser(self) -> tuple[str, dict[str, str]]:
        """The one parser v1model runs ('parser', else the first); (init state, state functions)."""
        parsers = list(self.program.parsers.values())
        chosen = self.program.parsers.get("parser") or (parsers[0] if parsers else None)
        if chosen is None:
            return "None", {}
        for p in parsers:
            if p is not chosen:
                log.warning("parser '%s' ignored (v1model runs one parser: '%s')", p.name, chosen.name)
        return compile_parser(self.module, chosen)

    def _emit_parse(self, parse_init: str) -> None:
        """`parse(F, P) -> error code` and `parse_trace`: run states until one returns None."""
        errors = self.module.errors
        for name, traced in (("parse", ""), ("parse_trace", "        _trace(s)")):
            self.module.emit_function(f"def {name}(F, P):", [
                f"s = {parse_init}", f"n = {MAX_PARSER_STATES}", "try:", "    while s is not None:",
                "        n -= 1", f"        if not n: raise ParserExit({errors['ParserTimeout']})",
                *([traced] if traced else []), "        s = s(F, P)", "    return 0",
                "except ParserExit as x:", "    return x.code"])

    def _emit_standard_metadata(self) -> None:
        """`arrive` and `depart`: the standard metadata v1model sets as a packet starts ingress
        and egress (`ARRIVE`, `DEPART`), each value masked to its field; fields the program
        does not have are left out."""
        sm, masks = self.module.sm, self.layout.masks
        for name, fields in (("arrive", ARRIVE), ("depart", DEPART)):
            params = ", ".join(f"v{i}" for i in range(len(fields)))
            self.module.emit_function(f"def {name}(F, {params}):", [
                f"F[{sm[f]}] = v{i} & {masks[sm[f]]}" for i, f in enumerate(fields) if sm[f] is not None])

    def compile_checksums(self, checksums: tuple[ChecksumInfo, ...]) -> tuple[str, str]:
        verify, update = [], []
        for c in checksums:
            where = f"checksum '{c.name}'"
            if c.type not in ("generic", "ipv4"):
                raise PipelineError(f"{where}: unsupported checksum type '{c.type}'")
            calc = self.module.calculation(c.calculation, where)
            idx, width, _ = self.layout.field(c.target, where)
            m = (1 << width) - 1
            body_v, body_u = Body(self.module, where), Body(self.module, where)
            if c.if_cond is not None:
                cond_v = body_v.boolean(body_v.ex(c.if_cond)).code
                cond_u = body_u.boolean(body_u.ex(c.if_cond)).code
            else:
                cond_v = cond_u = "True"
            if c.verify:
                verify.extend(body_v.lines)
                verify.append(f"if {cond_v} and ({calc}(F, P) & {m}) != F[{idx}]: bad = 1")
            if c.update:
                update.extend(body_u.lines)
                update.append(f"if {cond_u}: F[{idx}] = {calc}(F, P) & {m}")
        ce = self.module.sm["checksum_error"]
        vbody = ["bad = 0", *verify] + ([f"F[{ce}] = bad"] if ce is not None else [])
        self.module.emit_function("def verify_checksums(F, P):", vbody)
        self.module.emit_function("def update_checksums(F, P):", update)
        return "verify_checksums", "update_checksums"

    def compile_deparser(self, d: DeparserInfo | None) -> str:
        body = ["out = []"]
        if d is not None:
            if d.has_primitives:
                raise PipelineError(f"deparser '{d.name}': deparser primitives are not supported")
            for name in d.order:
                h = self.layout.header(name, f"deparser '{d.name}'")
                body.append(f"if F[{h.valid}]: out.append(k{h.hid}(F))")
        body.append("out.append(P.data[P.off:])")
        body.append("return b''.join(out)")
        self.module.emit_function("def deparse(F, P):", body)
        return "deparse"

    def field_lists(self) -> dict[int, list[int]]:
        """Slots of each field list (what resubmit, recirculate and clone preserve)."""
        out = {}
        for fl in self.program.field_lists:
            idxs = []
            for el in fl.elements:
                if el.get("type") != "field":
                    raise PipelineError(f"field list '{fl.name}': unsupported element type '{el.get('type')}'")
                idxs.append(self.layout.field(el["value"], f"field list '{fl.name}'")[0])
            out[fl.id] = idxs
        return out


_JUMPS = ("_jump", "_jump_if_zero")


def _noop(F, P):
    return None


def compile_program(j: dict, drop_port: int = 511) -> CompiledProgram:
    """Validate and translate a parsed BMv2 JSON; raises PipelineError on anything unsupported."""
    program = describe(j)
    with refusing_malformed():
        return Compiler(program, drop_port).compile()
