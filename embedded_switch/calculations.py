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
    """`calc(F, P=None) -> int`: algorithm `algo` over `inputs` (P gives the payload)."""
    fn = hashes.ALGORITHMS.get(algo)
    if fn is None:
        raise PipelineError(f"{where}: unsupported hash algorithm '{algo}' "
                            f"(supported: {', '.join(sorted(hashes.ALGORITHMS))})")
    spec = calc_spec(layout, inputs, where)

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
