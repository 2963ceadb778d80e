"""A switch's live record against what it really holds and counted (controller.metrics),
and ``dcia top --once`` showing it, on both targets."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest
from scapy.layers.inet import ICMP, UDP

from controller import entries as E
from controller.deployment import SwitchEndpoint
from controller.metrics import rates, switch_record
from controller.session import switch_status
from dcia.capability import Capability, LoadedModel
from dcia.wire import DCIA, DCIA_UDP_PORT
from tests.dataplane.rig import frame
from tests.dataplane.test_ipv4_checks import MODEL, X

pytestmark = pytest.mark.netns


def tensor(**kw) -> DCIA:
    fields = dict(model_id=MODEL.model_id, model_version=MODEL.version, request_id=1, elems=X)
    return UDP(sport=DCIA_UDP_PORT, dport=DCIA_UDP_PORT) / DCIA(**{**fields, **kw})


def test_the_record_and_rates_are_what_the_switch_holds_and_counted(rig):
    rig.install([MODEL])
    endpoint = SwitchEndpoint("s1", rig.addr)
    before = asyncio.run(switch_status(endpoint))
    sent = ([frame(tensor(request_id=i)) for i in range(30)]                  # 2 layers each
            + [frame(tensor(model_version=9, request_id=i)) for i in range(5)]  # other version
            + [frame(tensor(model_id=77, request_id=i)) for i in range(4)]      # unknown model
            + [frame(tensor(ver=3, request_id=i)) for i in range(6)]            # malformed
            + [frame(ICMP(), ttl=1) for _ in range(7)])                         # TTL expired
    for f in sent:
        rig.h1.send(bytes(f))
    assert len(rig.h2.receive_count(45, timeout=20)) == 45
    after = asyncio.run(switch_status(endpoint))
    measured = rates(before, after)
    counted = {k: round(v * measured.interval_s) for k, v in measured.per_s.items()}
    assert counted == {"computed": 60, "pass-through": 4, "version mismatch": 5, "malformed": 6,
                       "deferred": 0, "unauthorised": 0,
                       "ttl expired": 7, "bad checksum": 0, "bad header": 0}
    assert {i: round(v * measured.interval_s) for i, v in measured.layers_per_s.items()} == {0: 30, 1: 30}
    assert not measured.reset
    record = switch_record(Capability.nominal("s1", "switch", layer_time_s=1e-3), after, measured)
    assert record.models == (LoadedModel(MODEL.model_id, MODEL.version, (0, 1)),)
    assert record.load == pytest.approx(min(1.0, measured.per_s["computed"] * 1e-3))
    # table occupancy against the sizes of the P4Info
    assert after.tables[E.T_LAYERS] == (2, 1024) and after.tables[E.T_VERSIONS][0] == 2
    assert after.tables[E.T_ROUTES][0] == 2 and after.tables[E.dense_table(0)] == (2, 1024)


def test_dcia_top_once_shows_the_switch(rig, tmp_path):
    rig.install([MODEL])
    topology = tmp_path / "one.toml"
    topology.write_text(f'''
[hosts.h1]
kind = "edge"
ip = "10.0.1.1/24"
mac = "08:00:00:00:01:11"
[hosts.h2]
kind = "cloud"
ip = "10.0.2.2/24"
mac = "08:00:00:00:02:22"
[switches.s1]
grpc = "{rig.addr}"
device_id = 1
[[links]]
endpoints = ["h1", "s1:1"]
[[links]]
endpoints = ["s1:2", "h2"]
[paths]
main = ["h1", "s1", "h2"]
''')
    out = subprocess.run([sys.executable, "-m", "controller.cli", "top", "--topology", topology,
                          "--once", "--interval", "0.5"], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "COLUMNS": "200"})
    assert out.returncode == 0, out.stderr
    row = next(line for line in out.stdout.splitlines() if line.startswith("│ s1"))
    assert "4 v1: 0..1" in row and "2/1024" in row, out.stdout
