"""The embedding-bag on a real switch process, BMv2 and the embedded switch alike.

Random bags of token ids (padding anywhere, duplicates, ids without a vector, only
padding, the extreme ids 1 and 255), pooled by mean and by saturating sum, alone and
followed by a dense layer on the same switch (recirculation): every frame that comes out
equals what tests/dataplane_model.py derives from the integer reference
(dcia.arithmetic.embedding_bag), and, since both targets are held to the same frames,
the targets agree byte for byte.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest
from scapy.layers.inet import UDP
from scapy.layers.l2 import Ether

from controller import entries
from dcia.arithmetic import BAG_PAD, Activation, BagMode, token_elements
from dcia.layers import DenseLayer, EmbeddingBagLayer
from dcia.wire import DCIA, DCIA_UDP_PORT, Flag
from tests.dataplane.rig import assert_forwarded, frame
from tests.dataplane_model import InstalledModel, SwitchState, expect

pytestmark = pytest.mark.netns

PACKETS = 400


def bag_models(rng: random.Random) -> list[InstalledModel]:
    def table(n, dim, extreme=False):
        ids = rng.sample(range(2, 255), n - 2) + [1, 255]
        pick = (lambda: rng.choice([-128, 127, 126, -127])) if extreme else (
            lambda: rng.randint(-128, 127))
        return {i: [pick() for _ in range(dim)] for i in ids}

    dense = DenseLayer([[rng.randint(-128, 127) for _ in range(16)] for _ in range(8)],
                       [rng.randint(-3000, 3000) for _ in range(8)],
                       [rng.randint(1 << 14, (1 << 16) - 1) for _ in range(8)], [18] * 8,
                       Activation.RELU)
    return [
        InstalledModel(5, 1, {0: EmbeddingBagLayer(table(60, 16), 16, 16, BagMode.MEAN),
                              1: dense}, more={0: True}),
        InstalledModel(6, 2, {0: EmbeddingBagLayer(table(40, 12, extreme=True), 12, 10,
                                                   BagMode.SUM)}),
        InstalledModel(7, 1, {3: EmbeddingBagLayer(table(20, 4), 4, 16, BagMode.MEAN)}),
    ]


def random_bag(rng: random.Random, layer: EmbeddingBagLayer) -> tuple[list[int], str]:
    known = list(layer.table)
    unknown = [i for i in range(1, 256) if i not in layer.table]
    r = rng.random()
    n = layer.n_in
    if r < 0.05:
        return [BAG_PAD] * n, "only padding"
    if r < 0.15:
        ids = [rng.choice(known)] * rng.randint(1, n)
        return ids + [BAG_PAD] * (n - len(ids)), "one token repeated"
    if r < 0.30:
        ids = [rng.choice(known) if rng.random() < 0.7 else rng.choice(unknown) for _ in range(n)]
        ids[rng.randrange(n)] = rng.choice(unknown)
        return ids, "an unknown id"
    if r < 0.45:
        return [rng.choice(known) for _ in range(n)], "full"
    # padding anywhere, not only at the end
    return [rng.choice(known) if rng.random() < 0.6 else BAG_PAD for _ in range(n)], "padded"


def test_random_bags_match_the_integer_reference(rig):
    rng = random.Random(1414)
    models = bag_models(rng)
    rig.install(models)
    state = SwitchState(models)
    kinds, shapes = Counter(), Counter()
    for batch in range(0, PACKETS, 40):
        sent = {}
        for i in range(batch, min(batch + 40, PACKETS)):
            m = rng.choice(models)
            index, layer = next(iter(m.layers.items()))
            ids, shape = random_bag(rng, layer)
            elems = token_elements(ids)
            if rng.random() < 0.04:
                elems, shape = elems[:-1], "wrong number of tokens"
            shapes[shape] += 1
            dcia = DCIA(model_id=m.model_id, model_version=m.version, next_layer=index,
                        request_id=i, elems=elems)
            raw = bytes(frame(UDP(sport=DCIA_UDP_PORT, dport=DCIA_UDP_PORT) / dcia))
            want = expect(state, ver=1, flags=0, model_id=m.model_id, version=m.version,
                          next_layer=index, n_elems=len(elems), elems=elems,
                          udp_len=Ether(raw)[UDP].len)
            sent[i] = (Ether(raw), want)
            rig.h1.send(raw)
        got = [Ether(b) for b in rig.h2.receive_count(len(sent), timeout=30)]
        assert len(got) == len(sent), f"{len(sent) - len(got)} packets of batch {batch} lost"
        for g in got:
            s, want = sent.pop(g[DCIA].request_id)
            kinds[want.kind] += 1
            assert_forwarded(s, g)
            d = g[DCIA]
            context = f"request {d.request_id} ({want.kind}): {s[DCIA].elems}"
            assert (d.next_layer, d.net_layers, int(d.flags)) == (
                want.next_layer, want.net_layers, want.flags), context
            assert d.elems == want.elems, context
            if want.kind == "computed":
                assert g[UDP].len == 8 + 16 + len(want.elems), context
            elif want.kind == "passthrough":
                assert bytes(d) == bytes(s[DCIA]), context
    assert all(kinds[k] > 20 for k in ("computed", "passthrough")), kinds
    assert kinds["malformed"] > 3 and shapes["only padding"] > 5, (kinds, shapes)
    stats = rig.counters("dcia_stats")
    assert [stats.get(i, 0) for i in range(4)] == [state.counters[i] for i in range(4)]


def test_mean_and_saturating_sum_at_their_edges(rig):
    """Ties of the mean round up (toward +infinity); sums saturate at both ends."""
    mean = EmbeddingBagLayer({1: [1, -1, 127, -128], 2: [2, -2, 127, -128], 3: [0, 0, 0, 0]},
                             4, 4, BagMode.MEAN)
    total = EmbeddingBagLayer({1: [100, -100, 1, 0], 2: [100, -100, -1, 0]}, 4, 4, BagMode.SUM)
    rig.install([InstalledModel(8, 1, {0: mean}), InstalledModel(9, 1, {0: total})])
    cases = [(8, [1, 2, 0, 0], [2, -1, 127, -128]),     # 1.5 -> 2, -1.5 -> -1
             (8, [1, 3, 0, 3], [0, 0, 42, -43]),        # 1/3 -> 0, 127/3 -> 42, -128/3 -> -43
             (8, [0, 0, 0, 0], [0, 0, 0, 0]),
             (9, [1, 2, 1, 2], [127, -128, 0, 0]),
             (9, [1, 0, 0, 0], [100, -100, 1, 0])]
    for rid, (model, ids, want) in enumerate(cases, start=1):
        assert {8: mean, 9: total}[model].forward(token_elements(ids)) == want
        rig.h1.send(bytes(frame(UDP(sport=DCIA_UDP_PORT, dport=DCIA_UDP_PORT) / DCIA(
            model_id=model, model_version=1, request_id=rid, elems=token_elements(ids)))))
    got = {Ether(b)[DCIA].request_id: Ether(b)[DCIA]
           for b in rig.h2.receive_count(len(cases), timeout=10)}
    for rid, (_, _, want) in enumerate(cases, start=1):
        assert got[rid].elems == want and got[rid].next_layer == 1
        assert not got[rid].flags & Flag.MALFORMED


def test_entries_per_position(rig):
    """The vectors are installed in each position's table up to the layer's width."""
    layer = EmbeddingBagLayer({5: [1, 2], 9: [3, 4]}, 2, 3, BagMode.SUM)
    built = entries.embedding_bag_entries(layer, model_id=1, version=1, index=0)
    assert sorted({e.table_id for e in built[1:]}) == [entries.bag_table(i) for i in range(3)]
    assert len(built) == 1 + 3 * 2
