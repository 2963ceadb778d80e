"""Where each field, validity bit and stack counter lives in the per-packet list `F`.

`F` is the flat list of integers the generated code works on, one slot per field:

>>> from embedded_switch.program import describe
>>> L = Layout(describe({"header_types": [{"name": "t", "fields": [["a", 4], ["b", 12]]}],
...                      "headers": [{"name": "h", "id": 0, "header_type": "t", "metadata": False}]}))
>>> L.field(["h", "b"], "test")
(2, 12, False)
"""
from __future__ import annotations

from dataclasses import dataclass

from embedded_switch.errors import PipelineError
from embedded_switch.program import HeaderInfo, HeaderTypeInfo, Program


@dataclass
class HeaderLayout:
    name: str
    hid: int
    metadata: bool
    valid: int
    fields: list[tuple[str, int, bool, int]]  # (name, width, signed, index)
    fidx: dict[str, int]
    nbits: int                      # fixed-width bits (a varbit field adds its current length)
    siblings: tuple[int, ...] = ()  # validity slots of the other members of its union
    vl: tuple[int, int, int] | None = None  # varbit field: (position in fields, value slot, length slot)
    max_vl: int = 0                 # most bits the varbit field may hold

    @property
    def slots(self) -> tuple[int, ...]:
        """Every slot of the header but validity: fields, then the varbit length."""
        return tuple(idx for *_, idx in self.fields) + ((self.vl[2],) if self.vl else ())

    def position(self, fname: str) -> int:
        """Where field `fname` is in `fields`."""
        return [n for n, *_ in self.fields].index(fname)


@dataclass
class StackLayout:
    name: str
    sid: int
    headers: list[str]
    next: int


class Layout:
    """Where each field, validity bit and stack counter lives in `F`."""

    def __init__(self, program: Program):
        self.size = 0
        self.headers: dict[str, HeaderLayout] = {}
        self.by_id: dict[int, str] = {}
        self.template: list[int] = []
        self.masks: list[int] = []  # what a slot can hold (standard metadata writes are masked with it)
        self.meta_slots: list[int] = []
        for i, h in enumerate(program.headers):
            self.headers[h.name] = self._header(i, h, program.header_types[h.header_type])
            self.by_id[h.id] = h.name
        self.stacks: dict[str, StackLayout] = {}
        for s in program.header_stacks:
            names = [self.by_id[i] for i in s.elements]
            self.stacks[s.name] = StackLayout(s.name, len(self.stacks), names, self._slot(0, 0xFFFF))
        self.unions: dict[str, list[str]] = {}
        self.union_members: dict[str, list[str]] = {}  # union -> member names, in header order
        by_union_id = {}
        for u in program.header_unions:
            names = [self.by_id[i] for i in u.header_ids]
            self.unions[u.name] = names
            self.union_members[u.name] = program.union_members.get(u.union_type, [])
            by_union_id[u.id] = u.name
            for n in names:
                self.headers[n].siblings = tuple(self.headers[o].valid for o in names if o != n)
        self.union_stacks: dict[str, StackLayout] = {}  # .headers holds the union names here
        for s in program.header_union_stacks:
            names = [by_union_id[i] for i in s.elements]
            self.union_stacks[s.name] = StackLayout(s.name, len(self.union_stacks), names, self._slot(0, 0xFFFF))

    def _header(self, hid: int, h: HeaderInfo, htype: HeaderTypeInfo) -> HeaderLayout:
        valid = self._slot(1 if h.metadata else 0)
        fl, fidx, vl = [], {}, None
        for pos, f in enumerate(htype.fields):
            idx = self._slot(0, (1 << (f.bitwidth or 0)) - 1)
            width = f.bitwidth
            if width is None:  # in a header, or in metadata (p4c's local varbit variables)
                vl = (pos, idx, self._slot(0, 0xFFFF))
                width = 0
            fl.append((f.name, width, f.signed, idx))
            fidx[f.name] = idx
            if h.metadata:
                self.meta_slots.append(idx)
        if h.metadata and vl:
            self.meta_slots.append(vl[2])
        nbits = sum(w for _, w, _, _ in fl)
        if not h.metadata and nbits % 8:
            raise PipelineError(f"header '{h.name}': {nbits} bits is not a whole number of bytes")
        hl = HeaderLayout(h.name, hid, h.metadata, valid, fl, fidx, nbits, vl=vl)
        if vl:
            hl.max_vl = max(0, int(htype.max_length) * 8 - nbits)
        return hl

    def _slot(self, init: int, mask: int = 1) -> int:
        self.masks.append(mask)
        self.template.append(init)
        self.size += 1
        return self.size - 1

    def field(self, ref: list, where: str) -> tuple[int, int, bool]:
        """(index, width, signed) of field [header, field]; `$valid$` is the validity slot."""
        if not (isinstance(ref, list) and len(ref) == 2):
            raise PipelineError(f"{where}: bad field reference {ref!r}")
        h = self.headers.get(ref[0])
        if h is None:
            raise PipelineError(f"{where}: unknown header instance '{ref[0]}'")
        if ref[1] == "$valid$":
            return h.valid, 1, False
        for fname, width, signed, idx in h.fields:
            if fname == ref[1]:
                if h.vl and h.vl[1] == idx:
                    raise PipelineError(f"{where}: varbit field '{ref[0]}.{ref[1]}' can only be extracted, "
                                        "emitted, compared, copied (assign_VL) or checksummed")
                return idx, width, signed
        raise PipelineError(f"{where}: header '{ref[0]}' has no field '{ref[1]}'")

    def varbit(self, ref: list) -> tuple[int, int] | None:
        """(value slot, length slot) if [header, field] is a varbit field."""
        h = self.headers.get(ref[0]) if isinstance(ref, list) and len(ref) == 2 else None
        if h is not None and h.vl and h.fields[h.vl[0]][0] == ref[1]:
            return h.vl[1], h.vl[2]
        return None

    def header(self, name: str, where: str) -> HeaderLayout:
        if name not in self.headers:
            raise PipelineError(f"{where}: unknown header instance '{name}'")
        return self.headers[name]

    def union_stack_member(self, stack: str, member: str, where: str) -> list[str]:
        """The header of union member `member` in each element of union stack `stack`."""
        us = self.union_stacks.get(stack)
        if us is None:
            raise PipelineError(f"{where}: unknown header union stack '{stack}'")
        out = []
        for u in us.headers:
            members = self.union_members[u]
            if member not in members:
                raise PipelineError(f"{where}: union '{u}' has no member '{member}'")
            out.append(self.unions[u][members.index(member)])
        return out

    def stack(self, name: str, where: str) -> StackLayout:
        if name not in self.stacks:
            raise PipelineError(f"{where}: unknown header stack '{name}'")
        return self.stacks[name]
