"""Signed partition manifests (controller.manifest): what they name, how a signature
breaks, how a switch's entries are compared with them."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import finsy as fy
import pytest

from controller import entries as E
from controller.cli import main
from controller.demo_model import load_demo
from controller.deployment import from_plan
from controller.manifest import (
    EntryRecord,
    Manifest,
    check_matches,
    compare,
    entry_record,
    generate_key,
    load_private_key,
    load_public_key,
    manifest_of,
    verify,
    write_key_pair,
)
from controller.planner import plan
from controller.topology import load_topology
from dcia.artifacts import Pipeline
from dcia.errors import IntegrityError

SCHEMA = fy.P4Schema(Pipeline.default().p4info)
MODEL = load_demo().quantized
TOPOLOGY = load_topology("topologies/linear.toml")


def manifest(model=MODEL, **plan_kw) -> Manifest:
    p = plan(model.layers, TOPOLOGY.route())
    deployment = from_plan(p, model.layers, TOPOLOGY, model_id=1, version=1)
    return manifest_of(deployment, model.layers, model=model.name, topology=TOPOLOGY.name,
                       path=p.route, assignment=p.assignment, schema=SCHEMA)


def test_a_manifest_names_every_entry_of_every_switch_and_every_layer():
    m = manifest()
    assert m.assignment == ("h1", "s1", "s1", "s1") and len(m.layers) == 4
    assert m.switches["s1"].layers == (1, 2, 3) and m.switches["s2"].entries == ()
    tables = {e.table for e in m.switches["s1"].entries}
    assert {E.T_LAYERS, E.T_VERSIONS, E.T_STEERING, E.dense_table(0)} <= tables
    assert len({e.key for e in m.switches["s1"].entries}) == len(m.switches["s1"].entries)


def test_an_entry_record_depends_on_every_parameter_and_not_on_how_it_was_built():
    [entry] = [e for e in E.layer_entries(MODEL.layers[1], model_id=1, version=1, index=1)
               if e.table_id == E.dense_table(0)]
    record = entry_record(entry, SCHEMA)
    assert record.match == "layer=1 model_id=1 model_version=1"
    round_trip = fy.P4TableEntry.decode(entry.encode(SCHEMA), SCHEMA)
    assert entry_record(round_trip, SCHEMA) == record
    args = dict(entry.action.args)
    args["bias"] ^= 1
    changed = dataclasses.replace(entry, action=fy.P4TableAction(entry.action.name, **args))
    assert entry_record(changed, SCHEMA).key == record.key
    assert entry_record(changed, SCHEMA).digest != record.digest


def test_compare_names_changed_extra_and_missing_entries():
    signed = [EntryRecord("t", "a=1", "x"), EntryRecord("t", "a=2", "y")]
    held = [EntryRecord("t", "a=1", "z"), EntryRecord("t", "a=3", "w")]
    assert [str(f) for f in compare("s1", signed, held)] == [
        "switch s1: table t, entry a=1: changed",
        "switch s1: table t, entry a=2: missing",
        "switch s1: table t, entry a=3: extra"]
    assert compare("s1", signed, signed) == []


def test_a_signature_covers_every_field(tmp_path):
    key = generate_key()
    signed = manifest().sign(key, "ops")
    trusted = {"ops": key.public_key()}
    assert verify(Manifest.load(signed.save(tmp_path / "m.json")), trusted) == signed
    for change in ({"version": 2}, {"path": "other"}, {"assignment": ("h1",) * 4},
                   {"layers": ("0" * 64,) + signed.layers[1:]}):
        with pytest.raises(IntegrityError, match="does not match its content"):
            verify(dataclasses.replace(signed, **change), trusted)
    with pytest.raises(IntegrityError, match="not signed"):
        verify(manifest(), trusted)


def test_a_rebuilt_deployment_must_equal_the_signed_one():
    signed = manifest()
    check_matches(signed, manifest())
    layer = MODEL.layers[3]
    other = dataclasses.replace(MODEL, layers=[*MODEL.layers[:3], dataclasses.replace(
        layer, weights=[[w ^ 1 for w in row] for row in layer.weights])])
    with pytest.raises(IntegrityError, match="layer 3 of the model differs from the signed one"):
        check_matches(signed, manifest(other))


@pytest.mark.parametrize("text, message", [
    ("{", "not a manifest file"),
    ('{"manifest": {"format": "other", "format_version": 1}}', "malformed"),
    ('{"signature": null}', "malformed .*KeyError"),
])
def test_a_malformed_manifest_file_is_one_line(tmp_path, text, message):
    path = tmp_path / "m.json"
    path.write_text(text)
    with pytest.raises(IntegrityError, match=message):
        Manifest.load(path)
    with pytest.raises(IntegrityError, match="not found"):
        Manifest.load(tmp_path / "none.json")


def test_key_files(tmp_path):
    private, public = write_key_pair(generate_key(), tmp_path / "ops")
    assert private.stat().st_mode & 0o777 == 0o600
    load_private_key(private), load_public_key(public)
    with pytest.raises(IntegrityError, match="not a PEM key"):
        load_public_key(private)
    (tmp_path / "x.pub").write_text(json.dumps({"not": "a key"}))
    with pytest.raises(IntegrityError, match="not a PEM key"):
        load_public_key(tmp_path / "x.pub")
    with pytest.raises(IntegrityError, match=r"not found \(make a pair with `dcia keygen`\)"):
        load_private_key(tmp_path / "none.key")


def test_the_steering_loop_refuses_a_topology_that_requires_signed_deployments(tmp_path, capsys):
    path = tmp_path / "t.toml"
    (tmp_path / "ops.pub").write_text("")
    path.write_text(Path("topologies/linear.toml").read_text() + '\n[security]\ntrusted_keys = { ops = "ops.pub" }\nrequire_signed = true\n')
    model = MODEL.save(tmp_path / "model.json")
    assert main(["steer", "--topology", str(path), "--model", str(model), "--once"]) == 2
    assert "requires signed deployments" in capsys.readouterr().err
