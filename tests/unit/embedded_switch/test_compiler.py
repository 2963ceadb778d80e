"""The JSON-to-Python translation: expression semantics, reuse of subexpressions, jumps,
and refusal of unknown constructs at load time (naming the construct and where it is)."""
import random

import pytest

from embedded_switch.errors import PipelineError
from embedded_switch.switch import Switch
from tests.unit.embedded_switch.jsonprog import (H_FIELDS, action, base, dumps, eth_then_h_parser, field,
                                                 frame, hexv, op, prim, table, unit_program, variant, wrap)

E, T, OUT, SV, PORT = 14, 17, 20, 21, 22  # byte offsets in a frame


def run_action(prims: list[dict], **fields) -> bytes:
    """Run `prims` as the const default action of a keyless table on one frame."""
    acts = [action(0, "compute", [], prims)]
    ingress = {"name": "ingress", "id": 0, "init_table": "t", "action_profiles": [],
               "tables": [table(0, "t", [], [(0, "compute")], None, default=(0, []), const_default=True)],
               "action_calls": [], "conditionals": []}
    sw = Switch()
    sw.load_pipeline(dumps(base(H_FIELDS, eth_then_h_parser(), ["ethernet", "h"], acts, ingress)))
    [(_, data)] = sw.process(0, frame(**fields))
    return data


def assign(dst, expr):
    return prim("assign", dst, wrap(expr))


def masked(e, bits=8):
    return op("&", e, hexv((1 << bits) - 1))


def test_unsigned_arithmetic_wraps_as_p4c_masks_it():
    out = field("h", "out")
    data = run_action([assign(out, masked(op("+", field("h", "e"), field("h", "t"))))], e=200, t=100)
    assert data[OUT] == (300 & 0xFF)
    data = run_action([assign(out, masked(op("-", field("h", "e"), field("h", "t"))))], e=1, t=2)
    assert data[OUT] == 0xFF


def test_saturating_casts():
    out, sv = field("h", "out"), field("h", "sv")
    data = run_action([assign(out, op("usat_cast", op("+", field("h", "e"), field("h", "t")), hexv(8)))], e=200, t=100)
    assert data[OUT] == 255
    data = run_action([assign(out, op("usat_cast", op("-", field("h", "e"), field("h", "t")), hexv(8)))], e=1, t=2)
    assert data[OUT] == 0
    data = run_action([assign(sv, op("sat_cast", op("+", field("h", "sv"), field("h", "sv")), hexv(8)))], sv=-100)
    assert data[SV] == 0x80
    data = run_action([assign(sv, op("sat_cast", op("+", field("h", "sv"), field("h", "sv")), hexv(8)))], sv=100)
    assert data[SV] == 0x7F


def test_signed_fields_and_two_comp_mod():
    sv = field("h", "sv")
    # sign extension of a bit<8> through two_comp_mod, then arithmetic shift right
    e = op(">>", op("two_comp_mod", field("h", "e"), hexv(8)), hexv(1))
    data = run_action([assign(sv, op("two_comp_mod", e, hexv(8)))], e=0xF0)
    assert data[SV] == 0xF8
    # int<8> * int<8> into an int<8> wraps
    data = run_action([assign(sv, op("two_comp_mod", op("*", field("h", "sv"), hexv(3)), hexv(8)))], sv=-50)
    assert data[SV] == (-150) & 0xFF


def test_shift_by_field_ternary_and_bool_conversions():
    out = field("h", "out")
    shl = masked(op("<<", field("h", "e"), field("h", "t")))
    assert run_action([assign(out, shl)], e=0x81, t=1)[OUT] == 0x02
    assert run_action([assign(out, shl)], e=0x81, t=200)[OUT] == 0
    tern = op("?", field("h", "e"), field("h", "t"), cond=op(">", field("h", "e"), field("h", "t")))
    assert run_action([assign(out, tern)], e=3, t=9)[OUT] == 9
    b = op("b2d", None, op("and", op("d2b", None, field("h", "e")), op("not", None, op("d2b", None, field("h", "t")))))
    assert run_action([assign(out, b)], e=1, t=0)[OUT] == 1
    assert run_action([assign(out, b)], e=1, t=1)[OUT] == 0


def test_repeated_subexpression_is_reused_only_while_its_inputs_hold():
    out, e_, t_ = field("h", "out"), field("h", "e"), field("h", "t")
    inc = masked(op("+", e_, hexv(1)))
    prims = [assign(out, op("+", inc, inc)),      # (e+1) twice: one evaluation
             assign(e_, hexv(10)),                # e changes: the cached (e+1) is stale
             assign(t_, inc)]
    data = run_action(prims, e=4)
    assert (data[OUT], data[E], data[T]) == (10, 10, 11)


def test_jumps_inside_an_action():
    out = field("h", "out")
    prims = [prim("_jump_if_zero", wrap(op("b2d", None, op("==", field("h", "e"), hexv(1)))), hexv(3)),
             assign(out, hexv(0x11)),
             prim("_jump", hexv(4)),
             assign(out, hexv(0x22))]
    assert run_action(prims, e=1)[OUT] == 0x11
    assert run_action(prims, e=2)[OUT] == 0x22


def test_exit_stops_the_control():
    out = field("h", "out")
    data = run_action([assign(out, hexv(1)), prim("exit"), assign(out, hexv(2))])
    assert data[OUT] == 1


def test_division_by_zero_drops_only_that_packet():
    out = field("h", "out")
    acts = [action(0, "compute", [], [assign(out, op("/", field("h", "e"), field("h", "t")))])]
    ingress = {"name": "ingress", "id": 0, "init_table": "t", "action_profiles": [],
               "tables": [table(0, "t", [], [(0, "compute")], None)], "action_calls": [], "conditionals": []}
    sw = Switch()
    sw.load_pipeline(dumps(base(H_FIELDS, eth_then_h_parser(), ["ethernet", "h"], acts, ingress)))
    assert sw.process(0, frame(e=7, t=0)) == []
    assert sw.stats["dropped_error"] == 1
    [(_, data)] = sw.process(0, frame(e=7, t=2))
    assert data[OUT] == 3


def _refused(mutate) -> str:
    with pytest.raises(PipelineError) as info:
        Switch().load_pipeline(variant(unit_program(), mutate))
    return str(info.value)


@pytest.mark.parametrize("mutate,words", [
    (lambda j: j["actions"][1]["primitives"].append(prim("teleport")), ["teleport", "ingress.set_out"]),
    (lambda j: j["actions"][1]["primitives"].append(assign(field("h", "out"), op("**", hexv(1), hexv(2)))),
     ["'**'", "ingress.set_out"]),
    (lambda j: j["actions"][1]["primitives"].append(prim("assign", field("h", "out"), {"type": "quantum", "value": 1})),
     ["quantum", "ingress.set_out"]),
    (lambda j: j["pipelines"][0]["tables"][0]["key"][0].update(match_type="fuzzy"), ["fuzzy", "ingress.t_exact"]),
    (lambda j: j["pipelines"][0]["action_profiles"][1]["selector"].update(algo="sha1"), ["sha1", "ingress.sel"]),
    (lambda j: j.update(extern_instances=[{"name": "x1", "id": 0, "type": "Foo", "attribute_values": []}]),
     ["extern", "x1"]),
    (lambda j: j["parsers"][0]["parse_states"][0]["parser_ops"].append({"op": "wiggle", "parameters": []}),
     ["wiggle", "start"]),
    (lambda j: j["actions"][1]["primitives"].append(prim("assign", field("h", "nope"), hexv(1))), ["nope"]),
    (lambda j: j["__meta__"].update(version=[3, 0]), ["version"]),
    (lambda j: j["pipelines"][0]["tables"][0]["next_tables"].update({"NoAction": "missing_table"}),
     ["missing_table"]),
])
def test_unknown_constructs_are_refused_at_load_time(mutate, words):
    msg = _refused(mutate)
    for w in words:
        assert w in msg


def test_malformed_json_is_refused():
    with pytest.raises(PipelineError, match="not valid JSON"):
        Switch().load_pipeline(b"{nope")
    with pytest.raises(PipelineError):
        Switch().load_pipeline(b"[]")


def test_random_and_truncated_frames_never_raise():
    sw = Switch()
    sw.load_pipeline(dumps(unit_program()))
    rng = random.Random(7)
    good = frame(e=1, l=2, t=3)
    for n in range(len(good)):
        sw.process(rng.randrange(512), good[:n])
    for _ in range(500):
        sw.process(rng.randrange(512), bytes(rng.randrange(256) for _ in range(rng.randrange(80))))
    assert sw.stats["dropped_error"] == 0


def varbit_switch() -> Switch:
    """Ethernet / opt_t (len: 8, data: varbit of len bytes, at most 8) / the rest."""
    j = base(H_FIELDS, [], ["ethernet", "opt"], [action(0, "NoAction", [], [])],
             {"name": "ingress", "id": 0, "init_table": None, "action_profiles": [], "tables": [],
              "action_calls": [], "conditionals": []})
    j["header_types"].append({"name": "opt_t", "id": 9, "fields": [["len", 8, False], ["data", "*"]],
                              "max_length": 9})
    j["headers"].append({"name": "opt", "id": 9, "header_type": "opt_t", "metadata": False})
    bits = op("<<", field("opt", "len"), hexv(3))
    j["parsers"][0]["parse_states"] = [
        {"name": "start", "id": 0, "transition_key": [],
         "parser_ops": [{"op": "extract", "parameters": [{"type": "regular", "value": "ethernet"}]},
                        {"op": "extract_VL", "parameters": [{"type": "regular", "value": "opt"},
                                                            {"type": "expression", "value": bits}]}],
         "transitions": [{"type": "default", "value": None, "mask": None, "next_state": None}]}]
    sw = Switch()
    sw.load_pipeline(dumps(j))
    return sw


def test_varbit_extract_and_emit():
    sw = varbit_switch()
    eth = bytes(12) + b"\x12\x34"
    frame_ = eth + b"\x03ABC" + b"rest"
    assert sw.process(0, frame_) == [(0, frame_)]
    too_long = eth + b"\x09" + bytes(12)          # 9 bytes > max_length - 1: HeaderTooShort
    [(_, out)] = sw.process(0, too_long)
    assert out == too_long
    assert sw.process(0, eth + b"\x05AB") == [(0, eth + b"\x05AB")]    # PacketTooShort: left as payload


def test_parser_loop_that_consumes_nothing_ends_with_parser_timeout():
    ingress = {"name": "ingress", "id": 0, "init_table": None, "action_profiles": [], "tables": [],
               "action_calls": [], "conditionals": []}
    states = [{"name": "start", "id": 0, "parser_ops": [], "transition_key": [],
               "transitions": [{"type": "default", "value": None, "mask": None, "next_state": "start"}]}]
    sw = Switch()
    sw.load_pipeline(dumps(base(H_FIELDS, states, ["ethernet", "h"], [action(0, "NoAction", [], [])], ingress)))
    assert sw.process(0, frame()) == [(0, frame())]


def test_debug_logging_traces_parser_states_and_tables(caplog):
    sw = Switch()
    sw.load_pipeline(dumps(unit_program()))
    with caplog.at_level("DEBUG", logger="embedded_switch.trace"):
        sw.process(0, frame())
    lines = [r.getMessage().strip() for r in caplog.records if r.name == "embedded_switch.trace"]
    assert lines[:4] == ["ingress: 23 bytes on port 0, instance type 0", "parser state 'start'",
                         "parser state 'parse_h'", "table 'ingress.t_exact'"]
    assert "egress: port 1" in lines
