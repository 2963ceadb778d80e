"""Tenant isolation in the data plane, on both targets: a model restricted to some sources
(``model_tenants``, installed from the policy's tenants) is computed only for them; another
source's tensor with that model id is counted as unauthorised and dropped, and the right
tenant is still served (p4src/dcia.p4: model_tenants, STAT_UNAUTHORISED)."""

from __future__ import annotations

import finsy as fy
import pytest
from scapy.layers.inet import IP
from scapy.layers.l2 import Ether

from controller import entries as E
from dcia.wire import DCIA
from tests.dataplane.rig import HOST1, HOST2, SWITCH_MAC, frame
from tests.dataplane.test_ipv4_checks import tensor
from tests.dataplane.test_steering import LAYER, MODEL_ID, VERSION, X, stats

pytestmark = pytest.mark.netns

SPOOFED = "10.0.7.7"


def install(rig, sources: list[str] | None) -> None:
    entries = (E.version_entries(MODEL_ID, [VERSION])
               + E.layer_entries(LAYER, model_id=MODEL_ID, version=VERSION, index=0))
    if sources is not None:
        entries += E.tenant_entries(MODEL_ID, sources)
    rig.write([+e for e in entries])


def model_tensor(request_id: int):
    t = tensor(elems=X, request_id=request_id)
    t[DCIA].model_id, t[DCIA].model_version = MODEL_ID, VERSION
    return t


def from_source(src: str, request_id: int) -> bytes:
    return bytes(Ether(src=HOST1["mac"], dst=SWITCH_MAC) / IP(src=src, dst=HOST2["ip"])
                 / model_tensor(request_id))


def test_another_sources_tensor_is_counted_and_dropped_and_the_tenant_still_served(rig):
    install(rig, ["10.0.1.0/24"])
    for i in range(5):
        rig.h1.send(from_source(SPOOFED, 100 + i))       # another tenant, the same model id
    rig.h1.send(bytes(frame(model_tensor(1))))           # the tenant, 10.0.1.1
    got = [Ether(f) for f in rig.h2.receive_count(6, timeout=5)]
    assert [g[IP].src for g in got] == [HOST1["ip"]], "only the tenant's tensor came out"
    assert list(got[0][DCIA].elems) == LAYER.forward(X) and got[0][DCIA].next_layer == 1
    counted = stats(rig)
    assert (counted["unauthorised"], counted["computed"]) == (5, 1)


def test_a_model_without_tenants_is_computed_for_every_source(rig):
    install(rig, None)
    rig.h1.send(from_source(SPOOFED, 7))
    [got] = [Ether(f) for f in rig.h2.receive_count(1, timeout=5)]
    assert got[DCIA].next_layer == 1 and stats(rig)["unauthorised"] == 0


def test_the_longest_prefix_decides(rig):
    install(rig, ["10.0.0.0/16"])                         # 10.0.7.7 is inside
    rig.h1.send(from_source(SPOOFED, 8))
    assert len(rig.h2.receive_count(1, timeout=5)) == 1
    rig.write([+fy.P4TableEntry(E.T_TENANTS, match=fy.P4TableMatch(model_id=MODEL_ID, src=f"{SPOOFED}/32"),
                                action=fy.P4TableAction("tenant_denied"))])
    rig.h1.send(from_source(SPOOFED, 9))
    assert rig.h2.receive_count(1, timeout=1) == [] and stats(rig)["unauthorised"] == 1
