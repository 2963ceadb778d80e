"""Binding a P4Info to the executor's program: ids to names, orders, and mismatches."""

import logging

import pytest
from google.protobuf import text_format
from finsy.proto import p4i, p4r

from embedded_switch.p4runtime.codec import decode_match
from embedded_switch.p4runtime.schema import Schema
from embedded_switch.p4runtime.status import Code, P4RuntimeError
from embedded_switch.program import describe

# A BMv2 JSON reduced to what `describe` reads: one table keyed by two fields (in the
# opposite order from the P4Info), one action with two parameters, a counter, a register.
JSON = {
    "header_types": [{"name": "h_t", "id": 0, "fields": [["a", 8, False], ["b", 16, False]]}],
    "headers": [{"name": "h", "id": 0, "header_type": "h_t", "metadata": False}],
    "actions": [
        {"name": "NoAction", "id": 0, "runtime_data": [], "primitives": []},
        {"name": "ingress.set", "id": 1, "primitives": [],
         "runtime_data": [{"name": "x", "bitwidth": 9}, {"name": "y", "bitwidth": 32}]},
    ],
    "counter_arrays": [{"name": "ingress.c", "id": 0, "size": 8, "is_direct": False}],
    "register_arrays": [{"name": "ingress.r", "id": 0, "size": 4, "bitwidth": 12}],
    "pipelines": [{
        "name": "ingress", "init_table": "ingress.t", "action_profiles": [], "conditionals": [],
        "tables": [{
            "name": "ingress.t", "id": 0, "match_type": "ternary", "type": "simple", "max_size": 64,
            "key": [{"match_type": "ternary", "name": "h.b", "target": ["h", "b"], "mask": None},
                    {"match_type": "exact", "name": "h.a", "target": ["h", "a"], "mask": None}],
            "actions": ["ingress.set", "NoAction"], "action_ids": [1, 0],
            "default_entry": {"action_id": 0, "action_const": False, "action_data": []},
        }],
    }],
}

P4INFO = """
tables {
  preamble { id: 33554433 name: "ingress.t" }
  match_fields { id: 1 name: "h.a" bitwidth: 8 match_type: EXACT }
  match_fields { id: 2 name: "h.b" bitwidth: 16 match_type: OPTIONAL }
  action_refs { id: 16777217 }
  action_refs { id: 16777218 scope: DEFAULT_ONLY }
  size: 64
}
actions { preamble { id: 16777217 name: "ingress.set" } params { id: 1 name: "y" bitwidth: 32 } params { id: 2 name: "x" bitwidth: 9 } }
actions { preamble { id: 16777218 name: "NoAction" } }
counters { preamble { id: 302000001 name: "ingress.c" } spec { unit: BOTH } size: 8 }
registers { preamble { id: 369000001 name: "ingress.r" } type_spec { bitstring { bit { bitwidth: 12 } } } size: 4 }
"""


def p4info(text: str = P4INFO) -> p4i.P4Info:
    return text_format.Parse(text, p4i.P4Info())


def bind(info: p4i.P4Info) -> Schema:
    return Schema.bind(info, describe(JSON))


def test_fields_and_params_follow_the_executor_order():
    schema = bind(p4info())
    table = schema.tables[33554433]
    assert [f.name for f in table.fields] == ["h.b", "h.a"]
    assert table.fields[0].optional_as_ternary and table.needs_priority
    assert [p.name for p in schema.actions[16777217].params] == ["x", "y"]
    assert schema.action_ids["ingress.set"] == 16777217
    assert schema.registers[369000001].bitwidth == 12
    assert schema.counters[302000001].size == 8


def test_unknown_ids_are_invalid_argument():
    with pytest.raises(P4RuntimeError) as info:
        bind(p4info()).tables[99]
    assert info.value.code == Code.INVALID_ARGUMENT


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (('name: "h.a"', 'name: "h.z"'), ["h.z", "does not exist"]),
        (("match_type: EXACT", "match_type: LPM"), ["h.a", "lpm", "exact"]),
        (('name: "y" bitwidth: 32', 'name: "y" bitwidth: 31'), ["'y'", "ingress.set"]),
        (("size: 8", "size: 9"), ["counter 'ingress.c'", "9 cells"]),
        (("bitwidth: 12 }", "bitwidth: 13 }"), ["register 'ingress.r'", "13 bits"]),
    ],
)
def test_each_disagreement_with_the_json_is_named(change, words):
    with pytest.raises(P4RuntimeError) as info:
        bind(p4info(P4INFO.replace(*change)))
    assert info.value.code == Code.INVALID_ARGUMENT
    for word in words:
        assert word in info.value.message


def test_a_key_wider_in_the_p4info_loads_but_takes_no_entry(caplog):
    """p4c gives some keys (expressions, translated types) other widths in the P4Info
    than in the JSON; BMv2 loads the pair and refuses every entry that matches on the
    key when the widths take different bytes."""
    with caplog.at_level(logging.WARNING):
        schema = bind(p4info(P4INFO.replace("bitwidth: 8 match_type", "bitwidth: 9 match_type")))
    assert "'h.a'" in caplog.text and "no entry can match on it" in caplog.text
    table = schema.tables[33554433]
    match = [p4r.FieldMatch(field_id=1, exact=p4r.FieldMatch.Exact(value=b"\x01"))]
    with pytest.raises(P4RuntimeError) as info:
        decode_match(table.fields, match, table=table.name)
    assert info.value.code == Code.INVALID_ARGUMENT
    assert "'h.a' is 9 bits in the P4Info but 8 in the BMv2 JSON" in info.value.message


ABSENT = {
    "table": ("tables", 33554439, 'tables { preamble { id: 33554439 name: "ingress.gone" } size: 8 }'),
    "action profile": ("profiles", 285000001,
                       'action_profiles { preamble { id: 285000001 name: "ingress.as" }'
                       " with_selector: true size: 1024 }"),
    "digest": ("digests", 385000001,
               'digests { preamble { id: 385000001 name: "digest_0" }'
               " type_spec { tuple { members { bitstring { bit { bitwidth: 48 } } } } } }"),
}


@pytest.mark.parametrize("kind", ABSENT)
def test_an_object_p4c_left_out_of_the_json_loads_but_is_refused(kind, caplog):
    """p4c leaves unused profiles and digests and folded tables out of the JSON; BMv2
    loads the pair and refuses only what names the object. Wildcards pass over it."""
    attr, id_, text = ABSENT[kind]
    with caplog.at_level(logging.WARNING):
        schema = bind(p4info(P4INFO + text))
    assert len([r for r in caplog.records if "p4c left it out" in r.message]) == 1
    catalog = getattr(schema, attr)
    for use in (lambda: catalog[id_], lambda: catalog.select(id_)):
        with pytest.raises(P4RuntimeError) as info:
            use()
        assert info.value.code == Code.NOT_FOUND
        assert f"P4Info {kind} '" in info.value.message
        assert "is not in the BMv2 JSON (p4c left it out" in info.value.message
    assert id_ not in [getattr(o, "id") for o in catalog.select(0)]
    assert schema.tables[33554433].name == "ingress.t"


def test_an_id_given_twice_is_refused_even_when_absent_from_the_json():
    text = ABSENT["digest"][2]
    with pytest.raises(P4RuntimeError) as info:
        bind(p4info(P4INFO + text + text))
    assert "used twice" in info.value.message
