"""Hashes and checksums over packet fields: a calculation of the program as a function `calc(F, P)`.

The inputs (fields, constants, whole headers, varbit fields, the payload) are packed bit
by bit, zero-padded to whole bytes, and handed to an algorithm of `hashes`:

>>> from embedded_switch.layout import Layout
>>> from embedded_switch.program import describe
>>> L = Layout(describe({"header_types": [{"name": "t", "fields": [["a", 16]]}],
...                      "headers": [{"name": "h", "id": 0, "header_type": "t", "metadata": False}]}))
>>> calc = make_calc(L, "identity", [{"type": "field", "value": ["h", "a"]}], "example")
>>> calc([1, 0x1234])
4660
"""
from __future__ import annotations

from typing import Callable

from embedded_switch import hashes
from embedded_switch.errors import PipelineError
from embedded_switch.layout import Layout
from embedded_switch.program import hex_value


def _field(layout: Layout, v, inp: dict, where: str) -> tuple:
    varbit = layout.varbit(v)
    if varbit:
        return ("v", layout.headers[v[0]].valid, *varbit)
    idx, width, _ = layout.field(v, where)
    return "f", layout.headers[v[0]].valid, idx, width


def _constant(layout: Layout, v, inp: dict, where: str) -> tuple:
    return "c", hex_value(v, where), int(inp.get("bitwidth", 0) or 0)


def _header(layout: Layout, v, inp: dict, where: str) -> tuple:
    h = layout.header(v, where)
    return "h", h.valid, tuple(((idx, h.vl[2]), None) if h.vl and idx == h.vl[1] else (idx, w)
                               for _, w, _, idx in h.fields)


def _payload(layout: Layout, v, inp: dict, where: str) -> tuple:
    return ("p",)


_INPUTS = {"field": _field, "hexstr": _constant, "header": _header, "payload": _payload}


def calc_spec(layout: Layout, inputs: list, where: str) -> list[tuple]:
    """What `make_calc` packs, one tuple per input: (kind, ...slots and widths)."""
    spec = []
    for inp in inputs:
        t = inp.get("type")
        read = _INPUTS.get(t) if isinstance(t, str) else None
        if read is None:
            raise PipelineError(f"{where}: unsupported calculation input type '{t}'")
        spec.append(read(layout, inp.get("value"), inp, where))
    return spec


def make_calc(layout: Layout, algo: str | None, inputs: list, where: str) -> Callable:
    """`calc(F, P=None) -> int`: algorithm `algo` over `inputs` (P gives the payload),
    generated once as straight-line code: runs of fields of one header are packed by one
    expression under one validity test."""
    fn = hashes.ALGORITHMS.get(algo)
    if fn is None:
        raise PipelineError(f"{where}: unsupported hash algorithm '{algo}' "
                            f"(supported: {', '.join(sorted(hashes.ALGORITHMS))})")
    lines = ["def calc(F, P=None):", "    acc = nbits = 0", "    tail = b''"]
    run: list[tuple[int, int]] = []  # (slot, width) of fixed fields under validity slot `valid`
    valid = None

    def flush() -> None:
        if run:
            total = sum(w for _, w in run)
            packed, shift = [], total
            for idx, w in run:
                shift -= w
                packed.append(f"(F[{idx}] & {(1 << w) - 1}) << {shift}" if shift else f"(F[{idx}] & {(1 << w) - 1})")
            lines.append(f"    if F[{valid}]: acc = (acc << {total}) | {' | '.join(packed)}; nbits += {total}")
            run.clear()

    for item in calc_spec(layout, inputs, where):
        kind = item[0]
        if kind == "f" and item[1] == valid:
            run.append((item[2], item[3]))
            continue
        flush()
        if kind == "f":
            valid = item[1]
            run.append((item[2], item[3]))
            continue
        valid = None
        if kind == "c":
            w = item[2]
            lines.append(f"    acc = (acc << {w}) | {item[1] & ((1 << w) - 1)}; nbits += {w}")
        elif kind == "v":
            lines.append(f"    if F[{item[1]}]: w = F[{item[3]}]; acc = (acc << w) | F[{item[2]}]; nbits += w")
        elif kind == "h":
            lines.append(f"    if F[{item[1]}]:")
            for idx, w in item[2]:
                if w is None:  # the varbit field: (value slot, length slot)
                    lines.append(f"        w = F[{idx[1]}]; acc = (acc << w) | F[{idx[0]}]; nbits += w")
                else:
                    lines.append(f"        acc = (acc << {w}) | (F[{idx}] & {(1 << w) - 1}); nbits += {w}")
            if not item[2]:
                lines.append("        pass")  # a header without fields adds nothing
        else:
            lines.append("    if P is not None: tail = P.data[P.off:]")
    flush()
    lines += ["    pad = -nbits % 8", "    return fn((acc << pad).to_bytes((nbits + pad) // 8, 'big') + tail)"]
    ns = {"fn": fn}
    exec(compile("\n".join(lines), f"<{where}>", "exec"), ns)
    return ns["calc"]
