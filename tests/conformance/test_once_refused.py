"""Constructs the embedded switch once refused at load time, or ran otherwise than BMv2
(issue 10). Each runs on a variant of a committed conformance program's p4c output,
changed where p4c emits the construct, and the same frames go through BMv2 where root
and BMv2 are there (the parity marks, as in test_bmv2_parity.py)."""
import copy
import json
import os

import pytest

from embedded_switch.switch import Switch
from tests.conformance import test_bmv2_parity as parity_lab
from tests.conformance.loader import PROGRAMS, eth

on_bmv2 = pytest.mark.parametrize("target", ["embedded", pytest.param("bmv2", marks=[
    pytest.mark.parity, pytest.mark.netns,
    pytest.mark.skipif(parity_lab.BMV2 is None, reason="BMv2 simple_switch_grpc is not installed"),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces and veth pairs")])])


def variant(name: str, change) -> dict:
    """programs/NAME.json as p4c made it, changed by `change(json)`."""
    j = json.loads((PROGRAMS / f"{name}.json").read_text())
    change(j)
    return j


def outputs(target: str, program: dict, frames: list[bytes], tmp_path, monkeypatch) -> list[list[tuple[int, bytes]]]:
    """What `target` sends out of ports 1..4 for each frame entering port 1."""
    if target == "embedded":
        sw = Switch()
        sw.load_pipeline(json.dumps(program).encode())
        return [sorted((p, d) for p, d in sw.process(1, f) if 1 <= p <= parity_lab.PORTS) for f in frames]
    (tmp_path / "variant.json").write_text(json.dumps(program))
    monkeypatch.setattr(parity_lab, "PROGRAMS", tmp_path)
    return parity_lab.bmv2_outputs("variant", frames)


def states(j: dict) -> dict:
    return {s["name"]: s for s in j["parsers"][0]["parse_states"]}


def tables(j: dict) -> dict:
    return {t["name"]: t for p in j["pipelines"] for t in p["tables"]}


# ---------------------------------------------------- parser error codes (parser.p4) --
# parser.p4's `special` state advances 16 bits, then extracts a tag; res.err (byte 14) is 0
# NoError, 1 PacketTooShort, 4 BadKind (error 7), 9 any other error. The variant reaches
# `special` without the value set, advances `bits` instead of 16, and its res.err 4 tests
# for the error numbered `code` instead of BadKind.

def error_variant(bits: int, code: int, drop_core_error: str | None = None) -> dict:
    def change(j):
        states(j)["check_special"]["transitions"] = [
            {"type": "default", "value": None, "mask": None, "next_state": "special"}]
        [adv] = [op for op in states(j)["special"]["parser_ops"] if op["op"] == "advance"]
        adv["parameters"][0]["value"] = hex(bits)
        [cond] = [c for c in j["pipelines"][0]["conditionals"] if c["expression"]["value"]["right"] == {
            "type": "hexstr", "value": "0x7"}]
        cond["expression"]["value"]["right"]["value"] = hex(code)
        if drop_core_error:
            j["errors"] = [e for e in j["errors"] if e[0] != drop_core_error]
    return variant("parser", change)


ERROR_FRAMES = [eth(0x1234) + b"\xAA\xBB\x09\x09tail", eth(0x1234) + b"\xAA"]


@on_bmv2
def test_advance_by_bits_that_are_not_whole_bytes_is_parser_invalid_argument(target, tmp_path, monkeypatch):
    got = outputs(target, error_variant(12, 6), ERROR_FRAMES, tmp_path, monkeypatch)
    assert [[d[14] for _, d in out] for out in got] == [[4], [4]]   # ParserInvalidArgument, long or short


@on_bmv2
def test_advance_by_whole_bytes_is_unchanged(target, tmp_path, monkeypatch):
    got = outputs(target, error_variant(16, 6), ERROR_FRAMES, tmp_path, monkeypatch)
    assert [[(d[14], d[18]) for _, d in out] for out in got] == [[(0, 9)], [(1, 0xFF)]]


@on_bmv2
def test_core_errors_the_json_leaves_out_are_numbered_after_its_largest(target, tmp_path, monkeypatch):
    """The JSON declares BadKind 7 and not ParserInvalidArgument: BMv2 numbers that 8."""
    program = error_variant(12, 8, drop_core_error="ParserInvalidArgument")
    got = outputs(target, program, ERROR_FRAMES[:1], tmp_path, monkeypatch)
    assert [[d[14] for _, d in out] for out in got] == [[4]]


def varbit_variant(bits: int) -> dict:
    """`special` extracts a varbit header of at most 2 bytes, `bits` long, instead of advancing."""
    def change(j):
        j["header_types"].append({"name": "vl_t", "id": len(j["header_types"]), "fields": [["v", "*"]],
                                  "max_length": 2})
        j["headers"].append({"name": "vl", "id": len(j["headers"]), "header_type": "vl_t", "metadata": False,
                             "pi_omit": True})
        length = {"type": "expression", "value": {"type": "expression", "value": {
            "op": "&", "left": {"type": "hexstr", "value": hex(bits)}, "right": {"type": "hexstr", "value": "0xffff"}}}}
        ops = states(j)["special"]["parser_ops"]
        [at] = [i for i, op in enumerate(ops) if op["op"] == "advance"]
        ops[at] = {"op": "extract_VL", "parameters": [{"type": "regular", "value": "vl"}, length]}
    j = error_variant(16, 6)
    change(j)
    return j


@on_bmv2
@pytest.mark.parametrize("bits, errors", [(12, [4, 4]), (16, [0, 1]), (24, [9, 1])])
def test_extract_vl_checks_whole_bytes_then_the_packet_then_the_maximum(target, bits, errors, tmp_path, monkeypatch):
    """12 bits: ParserInvalidArgument (4, as the variant tests for it) even on a short
    packet; 24 bits, past the 2-byte maximum: HeaderTooShort (9, another error), but
    PacketTooShort (1) first on a short packet."""
    got = outputs(target, varbit_variant(bits), ERROR_FRAMES, tmp_path, monkeypatch)
    assert [[d[14] for _, d in out] for out in got] == [[e] for e in errors]


# ------------------------------------------------- const entry masks (tables.p4) --
# t_const's entries, written as p4c writes `0x1F &&& 0xF0` and `0x3F &&& 0xE0`; and t_lpm
# given const entries `0xABCD/8` and `0x12FF/12`. BMv2 clears the bits the mask or prefix
# leaves out. tables.p4's result: konst (byte 31 of the output), lpm (byte 26).

def mask_variant() -> dict:
    def change(j):
        t = tables(j)
        t["TblIngress.t_const"]["entries"][0]["match_key"][0]["key"] = "0x1f"
        t["TblIngress.t_const"]["entries"][2]["match_key"][0]["key"] = "0x3f"
        lpm = t["TblIngress.t_lpm"]
        set_lpm = lpm["action_ids"][lpm["actions"].index("TblIngress.set_lpm")]
        lpm["entries"] = [{"match_key": [{"match_type": "lpm", "key": key, "prefix_length": plen}],
                           "action_entry": {"action_id": set_lpm, "action_data": [hex(v)]}, "priority": i + 1}
                          for i, (key, plen, v) in enumerate((("0xabcd", 8, 1), ("0x12ff", 12, 2)))]
    return variant("tables", change)


MASK_CASES = [  # (t, l, konst, lpm)
    (0x11, 0xAB12, 1, 1), (0x1F, 0xABCD, 1, 1), (0x25, 0x12F5, 3, 2), (0x05, 0x12FF, 0xCC, 2),
    (0x3F, 0x1300, 3, 0xEE), (0x11, 0xAC00, 1, 0xEE),
]


@on_bmv2
def test_const_entries_match_with_bits_outside_mask_or_prefix_cleared(target, tmp_path, monkeypatch):
    frames = [eth(0x1234) + bytes([1]) + l.to_bytes(2, "big") + bytes([t, 0, 0, 0, 0]) for t, l, _, _ in MASK_CASES]
    got = outputs(target, mask_variant(), frames, tmp_path, monkeypatch)
    res = [[(d[len(f) + 6], d[len(f) + 1]) for _, d in out] for f, out in zip(frames, got)]
    assert res == [[(konst, lpm)] for _, _, konst, lpm in MASK_CASES]


# ------------------------------------- a P4Info action the JSON lacks (basic_fwd.p4) --
# p4c's P4Info names NoAction for tables whose JSON (with nested switch statements) has
# no such action. The variant drops NoAction from basic_fwd's JSON, keeps its P4Info, and
# is set over P4Runtime: BMv2 takes the pair, forwards with the entries it accepts and
# refuses an entry naming NoAction; so does the embedded switch.

def p4info_only_action_variant() -> dict:
    def change(j):
        gone = {a["id"] for a in j["actions"] if a["name"] == "NoAction"}
        j["actions"] = [a for a in j["actions"] if a["id"] not in gone]
        for t in tables(j).values():
            keep = [i for i, aid in enumerate(t["action_ids"]) if aid not in gone]
            t["actions"] = [t["actions"][i] for i in keep]
            t["action_ids"] = [t["action_ids"][i] for i in keep]
            t["next_tables"].pop("NoAction", None)
            if t["default_entry"]["action_id"] in gone:
                t["default_entry"]["action_id"] = t["action_ids"][t["actions"].index("FwdIngress.drop")]
    return variant("basic_fwd", change)


@pytest.mark.parametrize("target", [pytest.param(t, marks=[
    pytest.mark.parity, pytest.mark.netns,
    pytest.mark.skipif(parity_lab.BMV2 is None and t == "bmv2", reason="BMv2 simple_switch_grpc is not installed"),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces and veth pairs")])
    for t in ("embedded", "bmv2")])
def test_p4info_action_missing_from_the_json_loads_and_no_entry_can_use_it(target, tmp_path, monkeypatch):
    import finsy as fy

    (tmp_path / "variant.json").write_text(json.dumps(p4info_only_action_variant()))
    (tmp_path / "variant.p4info.txtpb").write_text((PROGRAMS / "basic_fwd.p4info.txtpb").read_text())
    monkeypatch.setattr(parity_lab, "PROGRAMS", tmp_path)
    dmac = "FwdIngress.dmac"
    forward = [+fy.P4TableEntry(dmac, match=fy.P4TableMatch({"hdr.ethernet.dstAddr": 0x0A0A0A0A0A0A}),
                                action=fy.P4TableAction("FwdIngress.forward", port=3))]
    frame = bytes.fromhex("0a0a0a0a0a0a" "020000000001" "88b5") + b"hello"
    other = bytes.fromhex("0b0b0b0b0b0b" "020000000001" "88b5") + b"hello"
    assert parity_lab.bmv2_outputs("variant", [frame, other], forward, target=target) == [[(3, frame)], []]
    no_action = [+fy.P4TableEntry(dmac, match=fy.P4TableMatch({"hdr.ethernet.dstAddr": 0x0B0B0B0B0B0B}),
                                  action=fy.P4TableAction("NoAction"))]
    with pytest.raises(fy.P4ClientError) as refused:   # BMv2: UNKNOWN, with no message
        parity_lab.bmv2_outputs("variant", [other], no_action, target=target)
    if target == "embedded":
        assert "'NoAction' of table 'FwdIngress.dmac' is in the P4Info but not in the BMv2 JSON" in str(refused.value)


# --------------------------- key widths the P4Info and JSON disagree on (basic_fwd.p4) --
# p4c gives keys on expressions, slices and `error` fields one width in the P4Info and
# another in the JSON (an error is a string, 0 bits, in the P4Info; 32 bits in the JSON).
# BMv2 loads the pair, takes values in the P4Info's width and matches in the JSON's. The
# variant gives dmac's 48-bit key `width` bits in the P4Info and is set over P4Runtime.

def set_key_width(tmp_path, monkeypatch, width: int) -> None:
    (tmp_path / "variant.json").write_text((PROGRAMS / "basic_fwd.json").read_text())
    info = (PROGRAMS / "basic_fwd.p4info.txtpb").read_text()
    at = info.index("bitwidth: 48", info.index('name: "hdr.ethernet.dstAddr"'))
    (tmp_path / "variant.p4info.txtpb").write_text(info[:at] + f"bitwidth: {width}" + info[at + 12:])
    monkeypatch.setattr(parity_lab, "PROGRAMS", tmp_path)


TARGETS = [pytest.param(t, marks=[
    pytest.mark.parity, pytest.mark.netns,
    pytest.mark.skipif(parity_lab.BMV2 is None and t == "bmv2", reason="BMv2 simple_switch_grpc is not installed"),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces and veth pairs")])
    for t in ("embedded", "bmv2")]


@pytest.mark.parametrize("target", TARGETS)
def test_key_narrower_in_the_p4info_takes_entries_and_matches_in_the_json_width(target, tmp_path, monkeypatch):
    import finsy as fy

    set_key_width(tmp_path, monkeypatch, 47)
    entry = [+fy.P4TableEntry("FwdIngress.dmac", match=fy.P4TableMatch({"hdr.ethernet.dstAddr": 0x0A0A0A0A0A0A}),
                              action=fy.P4TableAction("FwdIngress.forward", port=3))]
    frame = bytes.fromhex("0a0a0a0a0a0a" "020000000001" "88b5") + b"hello"
    other = bytes.fromhex("8a0a0a0a0a0a" "020000000001" "88b5") + b"hello"   # differs in bit 47 only
    assert parity_lab.bmv2_outputs("variant", [frame, other], entry, target=target) == [[(3, frame)], []]


@pytest.mark.parametrize("target", TARGETS)
def test_key_of_zero_bits_in_the_p4info_loads(target, tmp_path, monkeypatch):
    """As p4c writes an `error` key; the other table takes entries as before."""
    import finsy as fy

    set_key_width(tmp_path, monkeypatch, 0)
    route = [+fy.P4TableEntry("FwdIngress.ipv4_lpm", match=fy.P4TableMatch({"hdr.ipv4.dstAddr": ("10.0.2.0", 24)}),
                              action=fy.P4TableAction("FwdIngress.drop"))]
    frame = bytes.fromhex("0a0a0a0a0a0a" "020000000001" "88b5") + b"hello"
    assert parity_lab.bmv2_outputs("variant", [frame], route, target=target) == [[]]


# ------------------------------- the same, on programs of their own, as p4c compiles them --

def compiled(name: str) -> dict:
    return variant(name, lambda j: None)


# parser_errors.p4: res.err (byte 14) 0 NoError, 1 PacketTooShort, 4 HeaderTooShort,
# 6 ParserInvalidArgument; the rest of the output is the frame as it came in, less the
# bytes a successful advance skipped.
VL, ADV = 0x9000, 0x9001
PARSER_ERROR_CASES = [  # (ethertype, length in bits, rest of the packet, res.err)
    (VL, 16, b"\x07\xAA\xBB\xCC", 0), (VL, 12, b"\x07\xAA\xBB\xCC", 6), (VL, 12, b"", 6),
    (VL, 40, b"\x07" + bytes(5), 4), (VL, 40, b"\x07\x01", 1), (VL, 0, b"\x07", 0),
    (ADV, 16, b"\x01\x02\x03", 0), (ADV, 12, b"\x01\x02\x03", 6), (ADV, 16, b"\x01", 1), (ADV, 20, b"", 6),
]


@on_bmv2
def test_parser_errors_program(target, tmp_path, monkeypatch):
    frames = [eth(ethertype) + bytes([bits]) + rest for ethertype, bits, rest, _ in PARSER_ERROR_CASES]
    got = outputs(target, compiled("parser_errors"), frames, tmp_path, monkeypatch)
    skipped = [bits // 8 if ethertype == ADV and err == 0 else 0 for ethertype, bits, _, err in PARSER_ERROR_CASES]
    assert got == [[(1, f[:14] + bytes([err]) + f[14:15] + f[15 + n:])]
                   for f, n, (*_, err) in zip(frames, skipped, PARSER_ERROR_CASES)]


# const_masks.p4: p4c keeps 0xFF &&& 0x0F and 0xABCD/8 as written in the JSON (it only
# warns, for the LPM entry, that P4Runtime wants the bits cleared).
CONST_MASK_CASES = [  # (t, l, ternary result, lpm result)
    (0x0F, 0xAB12, 1, 1), (0x3F, 0xABCD, 1, 1), (0x31, 0x12F5, 2, 2), (0xFF, 0x12FF, 1, 2),
    (0x00, 0x1300, 0xEE, 0xEE), (0x35, 0xAC00, 2, 0xEE),
]


@on_bmv2
def test_const_masks_program(target, tmp_path, monkeypatch):
    frames = [eth(0x1234) + bytes([t]) + l.to_bytes(2, "big") for t, l, _, _ in CONST_MASK_CASES]
    got = outputs(target, compiled("const_masks"), frames, tmp_path, monkeypatch)
    assert got == [[(1, f + bytes([ternary, lpm]))] for f, (_, _, ternary, lpm) in zip(frames, CONST_MASK_CASES)]


# key_widths.p4: t_err's key is `standard_metadata.parser_error`, 0 bits in the P4Info;
# t_expr's keys are computed (a + b, a[3:0], (bit<4>)b). The pair is set over P4Runtime.
@pytest.mark.parametrize("target", TARGETS)
def test_key_widths_program_loads_and_matches_computed_keys(target, tmp_path, monkeypatch):
    import finsy as fy

    for suffix in (".json", ".p4info.txtpb"):
        (tmp_path / f"variant{suffix}").write_text((PROGRAMS / f"key_widths{suffix}").read_text())
    monkeypatch.setattr(parity_lab, "PROGRAMS", tmp_path)
    entry = [+fy.P4TableEntry("I.t_expr", match=fy.P4TableMatch({"sum": 0x15, "lo": 3, "cast": (2, 0xF)}),
                              priority=1, action=fy.P4TableAction("I.set", v=0x77))]
    hit, miss = eth(0x1234) + b"\x13\x02", eth(0x1234) + b"\x13\x03"
    assert parity_lab.bmv2_outputs("variant", [hit, miss], entry, target=target) == \
        [[(1, hit[:15] + b"\x77")], [(1, miss)]]


# header_mux.p4: note(b.isValid(), c ? b : a) copies a header chosen at run time (an
# assign_header whose source is a `?` between headers) into o. Output: Ethernet, sel,
# res (valid_b, o.x or 0xEE when o is invalid), o, a, b, then the payload.
A, B = b"\x01\x02", b"\x03\x04"
HEADER_MUX_CASES = [  # (sel.op, b parsed, res, o)
    (0x00, True, b"\x01\x01", A), (0x01, True, b"\x01\x03", B),
    (0x80, False, b"\x00\x01", A), (0x81, False, b"\x00\xEE", b""),
]


@on_bmv2
def test_header_mux_program(target, tmp_path, monkeypatch):
    frames = [eth(0x1234) + bytes([op]) + A + (B if parsed else b"") + b"zz" for op, parsed, _, _ in HEADER_MUX_CASES]
    got = outputs(target, compiled("header_mux"), frames, tmp_path, monkeypatch)
    assert got == [[(1, f[:15] + res + o + f[15:])] for f, (_, _, res, o) in zip(frames, HEADER_MUX_CASES)]


# varbits.p4: a local varbit variable (a metadata header with a varbit field), varbit
# fields and headers with one compared, extract_VL into a header stack. Output:
# Ethernet, pre, res (fields, headers, stack, local equal), a and b with their data
# swapped (each keeps its kind, the data its length), vs[0], vs[1], then the rest.
VARBIT_CASES = [  # (a kind, a data, b kind, b data, vs element bytes, res)
    (7, b"\xAA\xBB", 7, b"\xAA\xBB", (b"\x01", b"\x01"), (1, 1, 1, 1)),
    (7, b"\x00\x05", 7, b"\x05", (b"\x01", b"\x02"), (1, 1, 0, 1)),   # equal values, not lengths
    (7, b"\xAA\xBB", 8, b"\xAA\xBB", (b"\x01\x02", b"\x01\x02"), (1, 0, 1, 1)),
    (7, b"", 7, b"", (b"", b""), (1, 1, 1, 1)),
    (7, b"\x01\x02\x03\x04", 7, b"\x01\x02\x03", (b"\x09\x09", b"\x09\x08"), (0, 0, 0, 1)),
]


@on_bmv2
def test_varbits_program(target, tmp_path, monkeypatch):
    frames = [eth(0x1234) + bytes([len(ad), len(bd), len(vs[0])]) + bytes([ak]) + ad + bytes([bk]) + bd
              + vs[0] + vs[1] + b"tail" for ak, ad, bk, bd, vs, _ in VARBIT_CASES]
    got = outputs(target, compiled("varbits"), frames, tmp_path, monkeypatch)
    assert got == [[(1, f[:17] + bytes(res) + bytes([ak]) + bd + bytes([bk]) + ad + vs[0] + vs[1] + b"tail")]
                   for f, (ak, ad, bk, bd, vs, res) in zip(frames, VARBIT_CASES)]


# typed_registers.p4: registers of a serializable enum (the P4Info names the type; its
# width is in type_info) and of int<8> (an `int` bitstring in the P4Info), set over
# P4Runtime. Output: the frame, then the EtherType of the frame before and the sum of
# the deltas (IPv4 +5, ARP -3, others none) of the frames before.
@pytest.mark.parametrize("target", TARGETS)
def test_typed_registers_program_loads_over_p4runtime(target, tmp_path, monkeypatch):
    import finsy as fy

    for suffix in (".json", ".p4info.txtpb"):
        (tmp_path / f"variant{suffix}").write_text((PROGRAMS / f"typed_registers{suffix}").read_text())
    monkeypatch.setattr(parity_lab, "PROGRAMS", tmp_path)
    writes = [+fy.P4TableEntry("TrIngress.deltas", match=fy.P4TableMatch({"hdr.ethernet.etherType": ethertype}),
                               action=fy.P4TableAction("TrIngress.add", delta=delta))
              for ethertype, delta in ((0x0800, 5), (0x0806, 0xFD))]
    frames = [eth(t) + b"xyz" for t in (0x0800, 0x0806, 0x0800, 0x1234, 0x0806)]
    reports = [(0, 0), (0x0800, 5), (0x0806, 2), (0x0800, 0), (0x1234, 7)]
    assert parity_lab.bmv2_outputs("variant", frames, writes, target=target) == \
        [[(1, f[:14] + last.to_bytes(2, "big") + bytes([total]) + f[14:])] for f, (last, total) in zip(frames, reports)]
