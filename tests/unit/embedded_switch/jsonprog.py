"""Small BMv2 JSON programs written by hand, shaped as p4c's v1model back end emits them.

They let the unit tests exercise the executor without p4c. `unit_program()` has one
table per match kind, an action profile, a selector, counters, a meter and a register:

    Ethernet (etherType 0x88B5) / h_t: e, l(16), t, r, o, out, sv(int8), pad
"""
from __future__ import annotations

import copy
import json

STANDARD_METADATA = [
    ["ingress_port", 9, False], ["egress_spec", 9, False], ["egress_port", 9, False],
    ["instance_type", 32, False], ["packet_length", 32, False], ["enq_timestamp", 32, False],
    ["enq_qdepth", 19, False], ["deq_timedelta", 32, False], ["deq_qdepth", 19, False],
    ["ingress_global_timestamp", 48, False], ["egress_global_timestamp", 48, False],
    ["mcast_grp", 16, False], ["egress_rid", 16, False], ["checksum_error", 1, False],
    ["parser_error", 32, False], ["priority", 3, False], ["_padding_0", 3, False]]

ETHERTYPE = 0x88B5


def field(h: str, f: str) -> dict:
    return {"type": "field", "value": [h, f]}


def hexv(v: int) -> dict:
    return {"type": "hexstr", "value": hex(v) if v >= 0 else "-" + hex(-v)}


def rd(i: int) -> dict:
    return {"type": "runtime_data", "value": i}


def op(o: str, left, right, cond=None) -> dict:
    v = {"op": o, "left": left, "right": right}
    if cond is not None:
        v["cond"] = cond
    return {"type": "expression", "value": v}


def wrap(e: dict) -> dict:
    """A primitive parameter holding an expression (p4c wraps it once more)."""
    return {"type": "expression", "value": e}


def prim(name: str, *params) -> dict:
    return {"op": name, "parameters": list(params)}


def action(aid: int, name: str, params: list[tuple[str, int]], prims: list[dict]) -> dict:
    return {"name": name, "id": aid, "runtime_data": [{"name": n, "bitwidth": w} for n, w in params],
            "primitives": prims}


def table(tid: int, name: str, key: list[tuple[str, list, str]], actions: list[tuple[int, str]], nxt: str | None,
          default: tuple[int, list[int]] | None = (0, []), ttype: str = "simple", profile: str | None = None,
          const_default: bool = False, with_counters: bool = False, direct_meters: str | None = None,
          size: int = 64, match_type: str | None = None) -> dict:
    kinds = [k[2] for k in key]
    mt = match_type or ("range" if "range" in kinds else "ternary" if {"ternary", "optional"} & set(kinds)
                        else "lpm" if "lpm" in kinds else "exact")
    t = {"name": name, "id": tid,
         "key": [{"match_type": kind, "name": kname, "target": target, "mask": None} for kname, target, kind in key],
         "match_type": mt, "type": ttype, "max_size": size, "with_counters": with_counters,
         "support_timeout": False, "direct_meters": direct_meters,
         "action_ids": [a for a, _ in actions], "actions": [n for _, n in actions],
         "base_default_next": nxt, "next_tables": {n: nxt for _, n in actions}}
    if profile:
        t["action_profile"] = profile
    if default is not None and ttype == "simple":
        t["default_entry"] = {"action_id": default[0], "action_const": const_default,
                              "action_data": [hex(x) for x in default[1]], "action_entry_const": const_default}
    return t


def base(h_fields: list, parser_states: list[dict], deparse: list[str], actions: list[dict],
         ingress: dict, egress: dict | None = None, **extra) -> dict:
    j = {
        "__meta__": {"version": [2, 23], "compiler": "tests/unit/embedded_switch/jsonprog.py"},
        "header_types": [
            {"name": "scalars_0", "id": 0, "fields": extra.pop("scalars", [["m8", 8, False], ["m32", 32, False]])},
            {"name": "standard_metadata", "id": 1, "fields": STANDARD_METADATA},
            {"name": "ethernet_t", "id": 2, "fields": [["dst", 48, False], ["src", 48, False], ["etherType", 16, False]]},
            {"name": "h_t", "id": 3, "fields": h_fields},
        ],
        "headers": [
            {"name": "scalars", "id": 0, "header_type": "scalars_0", "metadata": True},
            {"name": "standard_metadata", "id": 1, "header_type": "standard_metadata", "metadata": True},
            {"name": "ethernet", "id": 2, "header_type": "ethernet_t", "metadata": False},
            {"name": "h", "id": 3, "header_type": "h_t", "metadata": False},
        ],
        "header_stacks": [], "header_union_types": [], "header_unions": [], "header_union_stacks": [],
        "field_lists": [], "errors": [["NoError", 0], ["PacketTooShort", 1], ["NoMatch", 2],
                                      ["StackOutOfBounds", 3], ["HeaderTooShort", 4], ["ParserTimeout", 5],
                                      ["ParserInvalidArgument", 6]],
        "enums": [],
        "parsers": [{"name": "parser", "id": 0, "init_state": "start", "parse_states": parser_states}],
        "parse_vsets": [],
        "deparsers": [{"name": "deparser", "id": 0, "order": deparse, "primitives": []}],
        "meter_arrays": [], "counter_arrays": [], "register_arrays": [], "calculations": [],
        "learn_lists": [], "actions": actions,
        "pipelines": [ingress, egress or {"name": "egress", "id": 1, "init_table": None, "action_profiles": [],
                                          "tables": [], "action_calls": [], "conditionals": []}],
        "checksums": [], "force_arith": [], "extern_instances": [],
        "field_aliases": [["queueing_metadata.enq_timestamp", ["standard_metadata", "enq_timestamp"]],
                          ["intrinsic_metadata.mcast_grp", ["standard_metadata", "mcast_grp"]],
                          ["intrinsic_metadata.egress_rid", ["standard_metadata", "egress_rid"]]],
    }
    j.update(extra)
    return j


def eth_then_h_parser() -> list[dict]:
    return [
        {"name": "start", "id": 0,
         "parser_ops": [{"op": "extract", "parameters": [{"type": "regular", "value": "ethernet"}]}],
         "transition_key": [field("ethernet", "etherType")],
         "transitions": [{"type": "hexstr", "value": hex(ETHERTYPE), "mask": None, "next_state": "parse_h"},
                         {"type": "default", "value": None, "mask": None, "next_state": None}]},
        {"name": "parse_h", "id": 1,
         "parser_ops": [{"op": "extract", "parameters": [{"type": "regular", "value": "h"}]}],
         "transition_key": [], "transitions": [{"type": "default", "value": None, "mask": None, "next_state": None}]},
    ]


H_FIELDS = [["e", 8, False], ["l", 16, False], ["t", 8, False], ["r", 8, False], ["o", 8, False],
            ["out", 8, False], ["sv", 8, True], ["port", 8, False]]


def unit_program() -> dict:
    """Tables of every kind, chained: t_exact, t_lpm, t_tern, t_range, t_opt, t_prof, t_sel, t_fwd."""
    set_out = [prim("assign", field("h", "out"), rd(0))]
    actions = [
        action(0, "NoAction", [], []),
        action(1, "ingress.set_out", [("v", 8)], set_out),
        action(2, "ingress.fwd", [("port", 9)], [
            prim("assign", field("standard_metadata", "egress_spec"), rd(0)),
            prim("count", {"type": "counter_array", "value": "ingress.ctr"}, hexv(1)),
            prim("register_write", {"type": "register_array", "value": "ingress.reg"}, hexv(0),
                 field("h", "e")),
            prim("execute_meter", {"type": "meter_array", "value": "ingress.mtr"}, hexv(0), field("scalars", "m8"))]),
        action(3, "ingress.drop", [], [prim("mark_to_drop", {"type": "header", "value": "standard_metadata"})]),
        action(4, "NoAction", [], []),
        action(5, "ingress.set_port", [("v", 8), ("port", 9)], [
            prim("assign", field("h", "out"), rd(0)),
            prim("assign", field("h", "port"), rd(1))]),
    ]
    so = [(1, "ingress.set_out"), (0, "NoAction")]
    tables = [
        table(0, "ingress.t_exact", [("h.e", ["h", "e"], "exact")], so, "ingress.t_lpm"),
        table(1, "ingress.t_lpm", [("h.l", ["h", "l"], "lpm")], so, "ingress.t_tern", size=4),
        table(2, "ingress.t_tern", [("h.t", ["h", "t"], "ternary"), ("h.e", ["h", "e"], "exact")], so,
              "ingress.t_range"),
        table(3, "ingress.t_range", [("h.r", ["h", "r"], "range")], so, "ingress.t_opt"),
        table(4, "ingress.t_opt", [("h.o", ["h", "o"], "optional")], so, "ingress.t_prof"),
        table(5, "ingress.t_prof", [("h.e", ["h", "e"], "exact")], [(1, "ingress.set_out"), (4, "NoAction")],
              "ingress.t_sel", ttype="indirect", profile="ingress.prof"),
        table(6, "ingress.t_sel", [("h.e", ["h", "e"], "exact")], [(5, "ingress.set_port"), (4, "NoAction")],
              "ingress.t_fwd", ttype="indirect_ws", profile="ingress.sel"),
        table(7, "ingress.t_fwd", [("h.out", ["h", "out"], "exact")], [(2, "ingress.fwd"), (3, "ingress.drop")],
              None, default=(2, [1]), with_counters=True, direct_meters="ingress.dmtr"),
        table(8, "ingress.t_const", [("h.t", ["h", "t"], "exact")], [(1, "ingress.set_out")], None,
              default=(1, [0x77]), const_default=True),
        table(9, "ingress.t_keyless", [], [(0, "NoAction")], None),
    ]
    ingress = {"name": "ingress", "id": 0, "init_table": "ingress.t_exact",
               "action_profiles": [
                   {"name": "ingress.prof", "id": 0, "max_size": 8},
                   {"name": "ingress.sel", "id": 1, "max_size": 8,
                    "selector": {"algo": "crc16", "input": [field("h", "t")]}}],
               "tables": tables, "action_calls": [], "conditionals": []}
    return base(H_FIELDS, eth_then_h_parser(), ["ethernet", "h"], actions, ingress,
                counter_arrays=[{"name": "ingress.ctr", "id": 0, "size": 4, "is_direct": False},
                                {"name": "ingress.t_fwd_ctr", "id": 1, "is_direct": True,
                                 "binding": "ingress.t_fwd"}],
                meter_arrays=[{"name": "ingress.mtr", "id": 0, "type": "packets", "rate_count": 2, "size": 2,
                               "is_direct": False},
                              {"name": "ingress.dmtr", "id": 1, "type": "bytes", "rate_count": 2, "size": 64,
                               "is_direct": True, "binding": "ingress.t_fwd",
                               "result_target": ["scalars", "m8"]}],
                register_arrays=[{"name": "ingress.reg", "id": 0, "size": 4, "bitwidth": 16}])


def dumps(j: dict) -> bytes:
    return json.dumps(j).encode()


def variant(j: dict, mutate) -> bytes:
    """A copy of program j changed by `mutate(copy)`, as JSON bytes."""
    k = copy.deepcopy(j)
    mutate(k)
    return dumps(k)


def frame(e=0, l=0, t=0, r=0, o=0, out=0, sv=0, port=0, payload=b"") -> bytes:
    """Ethernet / h_t frame for unit_program()."""
    eth = bytes.fromhex("00000000000a00000000000b") + ETHERTYPE.to_bytes(2, "big")
    h = bytes([e]) + l.to_bytes(2, "big") + bytes([t, r, o, out, sv & 0xFF, port])
    return eth + h + payload
