"""Sealed tensors in the data plane, on both targets: a switch holding the layer a tensor
asks for computes the plain tensor but never the sealed one (flag ENCRYPTED,
p4src/dcia.p4 FLAGS_NO_COMPUTE); the sealed bytes reach the cloud as they left the edge,
and open there to the edge's tensor (dcia.sealing)."""

from __future__ import annotations

import pytest
from scapy.layers.inet import UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from controller import entries as E
from dcia.sealing import seal, unseal
from dcia.wire import DCIA, DCIA_UDP_PORT, Flag
from tests.dataplane.rig import frame
from tests.dataplane.test_ipv4_checks import tensor
from tests.dataplane.test_steering import LAYER, MODEL_ID, VERSION, X, stats

pytestmark = pytest.mark.netns

KEY = bytes(range(32))


def plain_tensor(request_id: int) -> UDP:
    t = tensor(elems=X, request_id=request_id)
    t[DCIA].model_id, t[DCIA].model_version = MODEL_ID, VERSION
    return t


def sealed_tensor(request_id: int) -> tuple[bytes, UDP]:
    payload = seal(bytes(plain_tensor(request_id)[DCIA]), KEY)
    return payload, UDP(sport=DCIA_UDP_PORT, dport=DCIA_UDP_PORT) / Raw(payload)


def test_the_switch_computes_the_plain_tensor_and_forwards_the_sealed_one_untouched(rig):
    rig.write([+e for e in E.version_entries(MODEL_ID, [VERSION])
               + E.layer_entries(LAYER, model_id=MODEL_ID, version=VERSION, index=0)])
    sealed = [sealed_tensor(2 + i) for i in range(3)]
    rig.h1.send(bytes(frame(plain_tensor(1))))
    for _, udp in sealed:
        rig.h1.send(bytes(frame(udp)))
    got = [Ether(f) for f in rig.h2.receive_count(4, timeout=5)]
    assert len(got) == 4
    computed, passed = got[0][DCIA], got[1:]
    assert list(computed.elems) == LAYER.forward(X) and computed.next_layer == 1
    for (sent, _), g in zip(sealed, passed):
        arrived = bytes(g[DCIA])
        assert arrived == sent, "a sealed tensor left the switch changed"
        assert int(g[DCIA].flags) == Flag.ENCRYPTED and g[DCIA].net_layers == 0
        opened = DCIA(unseal(arrived, KEY))
        assert list(opened.elems) == X and opened.next_layer == 0
    assert stats(rig)["computed"] == 1
