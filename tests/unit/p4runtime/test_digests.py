"""Digests without gRPC: the P4Info binding, DigestEntry undo, and when lists are dropped."""

import json
import re
from pathlib import Path

import pytest
from finsy.proto import p4i, p4r
from google.protobuf import text_format

from embedded_switch.p4runtime.arbitration import Controller
from embedded_switch.p4runtime.digests import Digests
from embedded_switch.p4runtime.handler import DELETE, INSERT
from embedded_switch.p4runtime.journal import Journal
from embedded_switch.p4runtime.pipeline import Pipeline
from embedded_switch.p4runtime.schema import Schema
from embedded_switch.p4runtime.status import Code, P4RuntimeError
from embedded_switch.program import describe

PROGRAM = Path(__file__).resolve().parent / "programs"
P4INFO = (PROGRAM / "digests.p4info.txtpb").read_text()
JSON = json.loads((PROGRAM / "digests.json").read_text())


def bind(text: str = P4INFO) -> Schema:
    return Schema.bind(text_format.Parse(text, p4i.P4Info()), describe(JSON))


@pytest.fixture
def schema() -> Schema:
    return bind()


@pytest.fixture
def sent() -> list:
    return []


@pytest.fixture
def primary(sent) -> list:
    """The primary controller, as a one-element list (empty: no primary)."""
    return [Controller(send=sent.append)]


@pytest.fixture
def digests(schema, primary) -> Digests:
    pipeline = Pipeline(p4r.ForwardingPipelineConfig(), schema)
    return Digests(None, pipeline, primary=lambda: primary[0] if primary else None)


def entry(schema: Schema, name: str, **config) -> p4r.DigestEntry:
    digest_id = next(d.id for d in schema.digests if d.name == name)
    return p4r.DigestEntry(digest_id=digest_id, config=p4r.DigestEntry.Config(**config))


def test_digests_are_bound_with_the_widths_of_their_members(schema):
    widths = {d.name: (d.kind, d.widths) for d in schema.digests}
    assert widths == {"mac_learn_t": ("struct", (48, 9)), "ether_type_t": ("struct", (16,))}


def test_a_digest_that_disagrees_with_the_json_is_refused():
    message = "fields of [48, 8] bits but the BMv2 JSON has [48, 9]"
    with pytest.raises(P4RuntimeError, match=re.escape(message)) as info:
        bind(P4INFO.replace("bitwidth: 9", "bitwidth: 8"))
    assert info.value.code == Code.INVALID_ARGUMENT


def test_a_digest_the_json_lacks_loads_but_cannot_be_enabled():
    """p4c names some tuple digests otherwise in the JSON (its issue430-1 sample); BMv2
    loads the pair and cannot enable the digest."""
    schema = bind(P4INFO.replace('name: "ether_type_t"\n    alias', 'name: "vlan_t"\n    alias'))
    [absent_id] = schema.digests.absent
    with pytest.raises(P4RuntimeError, match="'vlan_t' is not in the BMv2 JSON") as info:
        digests = Digests(None, Pipeline(p4r.ForwardingPipelineConfig(), schema), primary=lambda: None)
        digests.write(INSERT, p4r.DigestEntry(digest_id=absent_id), Journal())
    assert info.value.code == Code.NOT_FOUND


def test_a_rolled_back_batch_restores_the_digest_entries(digests, schema):
    digests.write(INSERT, entry(schema, "mac_learn_t", max_list_size=5), Journal())
    batch = Journal()
    digests.write(DELETE, entry(schema, "mac_learn_t"), batch)
    digests.write(INSERT, entry(schema, "ether_type_t"), batch)
    batch.rollback()
    [restored] = digests.read(p4r.DigestEntry())
    assert restored.digest_entry == entry(schema, "mac_learn_t", max_list_size=5)


def test_digests_not_enabled_are_counted_and_dropped(digests, sent):
    digests.learn("mac_learn_t", [1, 3])
    assert sent == [] and digests.stats["dropped_not_enabled"] == 1


def test_a_list_without_primary_is_dropped_and_not_remembered_as_sent(
    digests, schema, primary, sent
):
    digests.write(INSERT, entry(schema, "mac_learn_t", ack_timeout_ns=60 * 10**9), Journal())
    controller = primary.pop()
    digests.learn("mac_learn_t", [1, 3])
    assert digests.stats["dropped_no_primary"] == 1
    primary.append(controller)
    digests.learn("mac_learn_t", [1, 3])
    [message] = sent
    assert message.digest.list_id == 1 and len(message.digest.data) == 1


def test_a_new_primary_receives_data_the_old_one_did_not_acknowledge(digests, schema, sent):
    digests.write(INSERT, entry(schema, "mac_learn_t", ack_timeout_ns=60 * 10**9), Journal())
    digests.learn("mac_learn_t", [1, 3])
    digests.learn("mac_learn_t", [1, 3])
    assert len(sent) == 1
    digests.forget_sent()
    digests.learn("mac_learn_t", [1, 3])
    assert [m.digest.list_id for m in sent] == [1, 2]
