"""Load in the data plane, on both targets: the layer meters that defer what a switch
cannot keep up with, and the steering selector that spreads requests over next hops by
weight while keeping each request on one hop (p4src/dcia.p4: layer_meter,
steering_selector)."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest
from scapy.layers.l2 import Ether

from controller import entries as E
from dcia.arithmetic import Activation
from dcia.layers import DenseLayer
from dcia.wire import DCIA
from tests.dataplane.rig import HOST2, frame
from tests.dataplane.test_ipv4_checks import tensor

pytestmark = pytest.mark.netns

LAYER = DenseLayer([[1, -2, 3, 0], [0, 1, 0, 0], [-1, -1, -1, -1], [2, 2, 2, 2]],
                   bias=[5, 0, -3, 100], mult=[1] * 4, shift=[0] * 4, act=Activation.RELU)
MODEL_ID, VERSION = 4, 1
X = [3, -7, 11, 2]


def metered_layer(rate: float) -> list:
    layer_entries = E.layer_entries(LAYER, model_id=MODEL_ID, version=VERSION, index=0)
    return (E.version_entries(MODEL_ID, [VERSION])
            + [dataclasses.replace(e, meter_config=E.meter_config(rate))
               if e.table_id == E.T_LAYERS else e for e in layer_entries])


def stats(rig) -> dict[str, int]:
    counted = rig.counters(E.C_STATS)
    return {name: counted.get(i, 0) for i, name in enumerate(E.STAT_NAMES)}


def test_a_layer_over_its_meter_rate_is_passed_on_unchanged_and_counted_deferred(rig):
    rate, sent = 5, 60
    rig.write([+e for e in metered_layer(rate)])
    computed_elems = LAYER.forward(X)
    for i in range(sent):                       # far faster than 5 per second
        rig.h1.send(bytes(frame(tensor(request_id=i))))
    got = [Ether(f)[DCIA] for f in rig.h2.receive_count(sent, timeout=30)]
    assert len(got) == sent, "a deferred tensor must still be forwarded"
    computed = [d for d in got if d.next_layer == 1]
    deferred = [d for d in got if d.next_layer == 0]
    assert len(computed) + len(deferred) == sent
    assert all(list(d.elems) == computed_elems for d in computed)
    assert all(list(d.elems) == X and d.net_layers == 0 for d in deferred)
    counted = stats(rig)
    assert (counted["computed"], counted["deferred"]) == (len(computed), len(deferred))
    # the burst (10 ms of the rate, at least 1) and what the rate adds while they pass
    assert 1 <= len(computed) <= 10 and len(deferred) >= sent - 10


def test_an_unmetered_layer_computes_everything(rig):
    rig.write([+e for e in metered_layer(1e6)])
    for i in range(20):
        rig.h1.send(bytes(frame(tensor(request_id=i))))
    got = [Ether(f)[DCIA] for f in rig.h2.receive_count(20, timeout=30)]
    assert [d.next_layer for d in got] == [1] * 20 and stats(rig)["deferred"] == 0


MAC_A, MAC_B = "08:00:00:00:0a:0a", "08:00:00:00:0b:0b"


@pytest.mark.parametrize("weights", [(1, 1), (3, 1)])
def test_steering_spreads_requests_over_next_hops_by_weight(rig, weights):
    # model 9 is not computed here: its tensors are steered by (model, next layer) only
    hops = [E.NextHop(2, MAC_A, HOST2["ip"], weight=weights[0]),
            E.NextHop(2, MAC_B, HOST2["ip"], weight=weights[1])]
    rig.write([+E.steering_entry(model_id=9, layer=0, hops=hops)])
    requests, chunk = 2000, 100
    seen: Counter = Counter()
    for start in range(0, requests, chunk):     # chunks: the switch's queue stays short
        for rid in range(start, start + chunk):
            rig.h1.send(bytes(frame(_model9(rid * 7919))))
        got = rig.h2.receive_count(chunk, timeout=30)
        assert len(got) == chunk
        seen.update(Ether(f).dst for f in got)
    share = seen[MAC_A] / requests
    assert share == pytest.approx(weights[0] / sum(weights), abs=0.05), seen
    # one request, sent again and again (its retries), always takes the same hop
    for _ in range(10):
        rig.h1.send(bytes(frame(_model9(424242))))
    assert len({Ether(f).dst for f in rig.h2.receive_count(10, timeout=30)}) == 1


def _model9(request_id: int):
    t = tensor(request_id=request_id)
    t[DCIA].model_id = 9
    return t
