"""The generated module while it is being written.

It holds the source lines, named constants and the run-time objects (counters, meters,
registers, value sets) its code refers to. Every part of the compiler (expressions, primitives, parser, controls) writes into one
`Module`; `Module.const` gives a Python object a name the generated code can use:

>>> from embedded_switch.layout import Layout
>>> from embedded_switch.program import describe
>>> program = describe({})
>>> m = Module(program, Layout(program), 511, {})
>>> m.const((1, 2)), m.const((1, 2)), m.const("x", "S")
('K0', 'K0', 'S1')
"""
from __future__ import annotations

from typing import Any, NamedTuple

from embedded_switch.calculations import make_calc
from embedded_switch.errors import PipelineError
from embedded_switch.layout import Layout
from embedded_switch.packet import ALIAS_PREFIXES, STANDARD_FIELDS, error_codes
from embedded_switch.program import Program
from embedded_switch.runtime import Counter, MeterArray, Register


class LearnList(NamedTuple):
    """A digest the packet path sends: its P4Info name and the slots of its fields."""
    name: str
    slots: list[int]


class Module:
    """Source, constants and run-time objects of the module generated for one program."""

    def __init__(self, program: Program, layout: Layout, drop_port: int, ns: dict):
        self.program, self.layout, self.drop_port, self.ns = program, layout, drop_port, ns
        self.lines: list[str] = []
        self.consts: dict[Any, str] = {}
        self.sm = self._standard_metadata()
        self.errors = error_codes(program.errors)
        self.counters = {c.name: Counter(c.name, c.size) for c in program.counters.values()}
        self.meters: dict[str, MeterArray] = {}
        for m in program.meters.values():
            if m.rate_count != 2:
                raise PipelineError(f"meter array '{m.name}': only 2-rate meters are supported")
            self.meters[m.name] = MeterArray(m.name, m.size, m.rate_type == "bytes")
        self.registers = {r.name: Register(r.name, r.size, r.bitwidth) for r in program.registers.values()}
        self.calcs: dict[str, str] = {}
        self.value_sets: dict[str, set] = {name: set() for name in program.value_sets}
        self.learn_lists = {d.id: LearnList(d.name, [layout.field(t, f"learn list '{d.name}'")[0] for t in d.targets])
                            for d in program.digests.values()}

    def _standard_metadata(self) -> dict[str, int | None]:
        """Slot of each v1model standard metadata field (None: the program has none)."""
        aliases = self.program.field_aliases
        sm: dict[str, int | None] = {}
        for name in STANDARD_FIELDS:
            ref = next((aliases[p + name] for p in ALIAS_PREFIXES if p + name in aliases), None)
            if ref is None:
                h = self.layout.headers.get("standard_metadata")
                if h is not None and name in h.fidx:
                    ref = ["standard_metadata", name]
            sm[name] = self.layout.field(ref, "field_aliases")[0] if ref else None
        return sm

    def const(self, value: Any, prefix: str = "K") -> str:
        """The name under which the generated code sees `value` (one name per value)."""
        by_identity = callable(value) or isinstance(value, (list, dict, set))
        key = (prefix, id(value)) if by_identity else (prefix, value)
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

    def calculation(self, name: str, where: str) -> str:
        """The generated name of calculation `name`, made on first use."""
        if name not in self.calcs:
            c = self.program.calculations.get(name)
            if c is None:
                raise PipelineError(f"{where}: unknown calculation '{name}'")
            self.calcs[name] = self.const(make_calc(self.layout, c.algo, c.inputs, f"calculation '{name}'"), "H")
        return self.calcs[name]

    def emit_function(self, header: str, body: list[str]) -> None:
        self.lines.append(header)
        self.lines.extend("    " + b for b in (body or ["pass"]))
        self.lines.append("")
