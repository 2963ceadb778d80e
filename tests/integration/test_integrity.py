"""Partition integrity against running switch processes (topologies/linear.toml on free
ports, a key pair made by `dcia keygen`): a signed manifest deploys; unsigned, tampered,
wrongly signed and mismatched ones are refused with nothing written; `dcia audit` names a
weight changed, an entry added and an entry removed behind the controller's back by a
second P4Runtime client."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import finsy as fy
import pytest

from controller import entries as E
from controller.deployment import SwitchEndpoint
from controller.session import switch_status
from dcia.artifacts import Pipeline
from dcia.targets import SwitchConfig, SwitchProcess, find_bmv2
from tests.topology_files import on_free_ports

LINEAR = Path("topologies/linear.toml")
MODEL = ("--model", "models/digits.onnx", "--calibration", "digits")


class Network:
    def __init__(self, target: str, tmp: Path, *, require_signed: bool = True):
        self.tmp = tmp
        self.topology = tmp / "linear.toml"
        self.addr = on_free_ports(LINEAR, self.topology, (
            '\n[security]\ntrusted_keys = { ops = "ops.pub" }\n'
            f"require_signed = {'true' if require_signed else 'false'}\n"))
        self.procs = [SwitchProcess(target, SwitchConfig(ports={}, grpc_addr=addr, device_id=int(name[1:])),
                                    stdout_path=tmp / f"{name}.out") for name, addr in self.addr.items()]

    def held(self) -> dict[str, list[int]]:
        async def all_():
            return await asyncio.gather(*(switch_status(SwitchEndpoint(n, a, int(n[1:])))
                                          for n, a in self.addr.items()))
        return {st.name: st.models.get((1, 1), []) for st in asyncio.run(all_())}

    def tamper(self, switch: str, updates) -> None:
        """Write ``updates(sw)`` to ``switch`` as a second controller (a higher election id)."""
        pipeline = Pipeline.default()

        async def go():
            opts = fy.SwitchOptions(p4info=pipeline.p4info, device_id=int(switch[1:]),
                                    initial_election_id=50)
            async with fy.Switch(switch, self.addr[switch], opts) as sw:
                await sw.write(await updates(sw))
        asyncio.run(go())


@pytest.fixture(params=["embedded", "bmv2"])
def net(request, tmp_path):
    if request.param == "bmv2" and find_bmv2() is None:
        pytest.skip("BMv2 simple_switch_grpc is not installed here")
    network = Network(request.param, tmp_path)
    try:
        for p in network.procs:
            p.start()
        assert dcia("keygen", "--out", tmp_path / "ops").returncode == 0
        assert dcia("keygen", "--out", tmp_path / "intruder").returncode == 0
        yield network
    finally:
        for p in network.procs:
            p.stop()


def dcia(*args) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    return subprocess.run([sys.executable, "-m", "controller.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=300, env=env)


def sign(net: Network, key: str = "ops", *extra: str) -> Path:
    out = net.tmp / f"{key}.manifest.json"
    done = dcia("sign", "--topology", net.topology, *MODEL, "--key", net.tmp / f"{key}.key",
                "--key-name", "ops", "--out", out, *extra)
    assert done.returncode == 0, done.stderr
    return out


def deploy(net: Network, *extra) -> subprocess.CompletedProcess:
    return dcia("deploy", "--topology", net.topology, *MODEL, "--push-pipeline", "always", *extra)


def test_a_signed_manifest_deploys_and_audits_clean(net):
    manifest = sign(net)
    done = deploy(net, "--manifest", manifest)
    assert done.returncode == 0, done.stderr
    assert "signed by 'ops', matches the model and the deployment" in done.stdout
    assert net.held()["s1"] == [1, 2, 3]
    audit = dcia("audit", "--topology", net.topology, "--manifest", manifest)
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert re.search(r"\d+ signed entries on 3 switches: 0 differ; 0 of 3 switches unreadable", audit.stdout)


def refused(net: Network, manifest: Path | None, message: str) -> None:
    before = net.held()
    done = deploy(net, *(["--manifest", manifest] if manifest else []))
    assert done.returncode == 2, done.stdout
    assert done.stderr.startswith("error: ") and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert re.search(message, done.stderr), done.stderr
    assert net.held() == before, "nothing was written"


def test_unsigned_tampered_and_wrongly_signed_manifests_are_refused_with_nothing_written(net):
    refused(net, None, r"requires signed deployments \(\[security\] require_signed\): give --manifest")
    manifest = sign(net)
    doc = json.loads(manifest.read_text())

    unsigned = net.tmp / "unsigned.json"
    unsigned.write_text(json.dumps({**doc, "signature": None}))
    refused(net, unsigned, "the manifest is not signed")

    tampered = net.tmp / "tampered.json"   # one entry's digest changed after signing
    doc["manifest"]["switches"]["s1"]["entries"][0][2] = "0" * 64
    tampered.write_text(json.dumps(doc))
    refused(net, tampered, "signature by key 'ops' does not match its content")

    # signed by a key the topology does not trust, under the trusted key's name
    refused(net, sign(net, "intruder"), "signature by key 'ops' does not match its content")

    other = sign(net, "ops", "--model-id", "7")   # a valid signature, for another model id
    refused(net, other, "the manifest is for model_id 7, this deployment's is 1")

    garbage = net.tmp / "garbage.json"
    garbage.write_text("{")
    refused(net, garbage, "not a manifest file")


def test_a_deployment_other_than_the_signed_one_is_refused(net):
    manifest = sign(net)
    spread = net.tmp / "max1.json"   # signed with every switch computing one layer
    done = dcia("sign", "--topology", net.topology, *MODEL, "--key", net.tmp / "ops.key",
                "--max-layers-per-switch", "1", "--out", spread)
    assert done.returncode == 0, done.stderr
    assert deploy(net, "--manifest", spread).returncode == 0   # deploys its own assignment
    assert net.held() == {"s1": [1], "s2": [2], "s3": [3]}
    # a model whose layer differs from the signed one
    quantized = net.tmp / "model.json"
    from controller.demo_model import load_demo

    model = load_demo().quantized
    layer = model.layers[2]
    changed = dataclasses.replace(layer, bias=[b + 1 for b in layer.bias])
    dataclasses.replace(model, layers=[*model.layers[:2], changed, *model.layers[3:]]).save(quantized)
    before = net.held()
    done = dcia("deploy", "--topology", net.topology, "--model", quantized, "--manifest", manifest)
    assert done.returncode == 2 and "layer 2 of the model differs from the signed one" in done.stderr
    assert net.held() == before


def test_the_audit_names_a_changed_weight_an_extra_and_a_missing_entry(net):
    manifest = sign(net)
    assert deploy(net, "--manifest", manifest).returncode == 0

    async def change_a_weight(sw):
        [entry] = [e async for e in sw.read(fy.P4TableEntry(E.dense_table(0)))
                   if e.match["layer"] == 2]
        args = dict(entry.action.args)
        args["w"] ^= 1       # one bit of the packed weights of neuron 0
        return [~dataclasses.replace(entry, action=fy.P4TableAction(entry.action.name, **args))]

    async def add_a_layer(sw):     # model 1 layer 0 on s2: an entry nobody signed
        return [+e for e in E.version_entries(1, [1])]

    async def remove_an_entry(sw):
        [entry] = [e async for e in sw.read(fy.P4TableEntry(E.dense_table(5)))
                   if e.match["layer"] == 3]
        return [-entry]

    net.tamper("s1", change_a_weight)
    net.tamper("s2", add_a_layer)
    net.tamper("s1", remove_an_entry)
    audit = dcia("audit", "--topology", net.topology, "--manifest", manifest)
    assert audit.returncode == 1, audit.stdout + audit.stderr
    rows = [re.sub(r"\s+", " ", line) for line in audit.stdout.splitlines()]
    print("\n".join(audit.stdout.splitlines()))
    assert any(re.search(r"s1 │ DciaIngress\.dense_0 │ layer=2 model_id=1 model_version=1 │ changed", r) for r in rows)
    assert any(re.search(r"s1 │ DciaIngress\.dense_5 │ layer=3 model_id=1 model_version=1 │ missing", r) for r in rows)
    assert sum("│ extra" in r and r.lstrip("│ ").startswith("s2") for r in rows) == 2
    assert re.search(r"signed entries on 3 switches: 4 differ", audit.stdout)


def test_a_switch_the_audit_cannot_read_is_reported_not_skipped(net):
    manifest = sign(net)
    assert deploy(net, "--manifest", manifest).returncode == 0
    net.procs[2].stop()                                   # s3
    audit = dcia("audit", "--topology", net.topology, "--manifest", manifest)
    assert audit.returncode == 1, audit.stdout + audit.stderr
    assert re.search(r"s3 .*unreadable: switch s3: no P4Runtime server", re.sub(r"\s+", " ", audit.stdout))
    assert re.search(r"0 differ; 1 of 3 switches unreadable", audit.stdout)
