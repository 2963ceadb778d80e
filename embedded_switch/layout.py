"""Where each field, validity bit and stack counter of a BMv2 JSON program lives in the
flat per-packet list `F` that the generated code works on.

>>> L = Layout({"header_types": [{"name": "t", "fields": [["a", 4], ["b", 12]]}],
...             "headers": [{"name": "h", "id": 0, "header_type": "t", "metadata": False}]})
>>> L.field(["h", "b"], "test")
(2, 12, False)
"""
from __future__ import annotations

from dataclasses import dataclass

from embedded_switch.errors import PipelineError

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


@dataclass
class StackLayout:
    name: str
    sid: int
    headers: list[str]
    next: int


class Layout:
    """Where each field, validity bit and stack counter lives in `F`."""

    def __init__(self, j: dict):
        types, max_len = {}, {}
        for t in j.get("header_types", []):
            flds = []
            for f in t.get("fields", []):
                if f[1] == "*":
                    if any(w is None for _, w, _ in flds):
                        raise PipelineError(f"header type '{t['name']}': more than one varbit field")
                    if t.get("max_length") is None:
                        raise PipelineError(f"header type '{t['name']}': varbit field '{f[0]}' without max_length")
                    flds.append((f[0], None, False))
                    continue
                if not isinstance(f[1], int) or f[1] <= 0:
                    raise PipelineError(f"header type '{t['name']}': field '{f[0]}' has bad width {f[1]!r}")
                flds.append((f[0], f[1], bool(f[2]) if len(f) > 2 else False))
            types[t["name"]] = flds
            max_len[t["name"]] = t.get("max_length")
        self.size = 0
        self.headers: dict[str, HeaderLayout] = {}
        self.by_id: dict[int, str] = {}
        self.template: list[int] = []
        self.masks: list[int] = []  # what a slot can hold (standard metadata writes are masked with it)
        self.meta_slots: list[int] = []
        for i, h in enumerate(j.get("headers", [])):
            if h["header_type"] not in types:
                raise PipelineError(f"header '{h['name']}': unknown header type '{h['header_type']}'")
            meta = bool(h.get("metadata"))
            valid = self._slot(1 if meta else 0)
            fl, fidx, vl = [], {}, None
            for pos, (fname, width, signed) in enumerate(types[h["header_type"]]):
                idx = self._slot(0, (1 << (width or 0)) - 1)
                if width is None:
                    if meta:
                        raise PipelineError(f"metadata '{h['name']}': varbit field '{fname}' is not supported")
                    vl = (pos, idx, self._slot(0, 0xFFFF))
                    width = 0
                fl.append((fname, width, signed, idx))
                fidx[fname] = idx
                if meta:
                    self.meta_slots.append(idx)
            nbits = sum(w for _, w, _, _ in fl)
            if not meta and nbits % 8:
                raise PipelineError(f"header '{h['name']}': {nbits} bits is not a whole number of bytes")
            hl = HeaderLayout(h["name"], i, meta, valid, fl, fidx, nbits, vl=vl)
            if vl:
                hl.max_vl = max(0, int(max_len[h["header_type"]]) * 8 - nbits)
            self.headers[h["name"]] = hl
            self.by_id[h["id"]] = h["name"]
        self.stacks: dict[str, StackLayout] = {}
        for s in j.get("header_stacks", []):
            names = [self.by_id[i] for i in s.get("header_ids", [])]
            self.stacks[s["name"]] = StackLayout(s["name"], len(self.stacks), names, self._slot(0, 0xFFFF))
        self.unions: dict[str, list[str]] = {}
        self.union_members: dict[str, list[str]] = {}  # union -> member names, in header order
        member_names = {t["name"]: [m[0] for m in t.get("headers", [])] for t in j.get("header_union_types", [])}
        by_union_id = {}
        for u in j.get("header_unions", []):
            names = [self.by_id[i] for i in u.get("header_ids", [])]
            self.unions[u["name"]] = names
            self.union_members[u["name"]] = member_names.get(u.get("union_type"), [])
            by_union_id[u["id"]] = u["name"]
            for n in names:
                self.headers[n].siblings = tuple(self.headers[o].valid for o in names if o != n)
        self.union_stacks: dict[str, StackLayout] = {}  # .headers holds the union names here
        for s in j.get("header_union_stacks", []):
            names = [by_union_id[i] for i in s.get("header_union_ids", [])]
            self.union_stacks[s["name"]] = StackLayout(s["name"], len(self.union_stacks), names,
                                                       self._slot(0, 0xFFFF))

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
                                        "emitted, copied (assign_VL) or checksummed")
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
