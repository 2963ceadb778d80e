"""The compiled DCIA program on a real switch process: BMv2 and the embedded switch.

Each test starts the switch on veth pairs whose host ends are in a namespace the test
creates, pushes the committed pipeline over P4Runtime (finsy), installs layers and sends
real frames. Every frame that comes out is compared with tests/dataplane_model.py, which
runs the integer reference. BMv2 runs are the parity tests: they skip, saying why, where
simple_switch_grpc is not installed.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from controller import entries
from dcia.arithmetic import MULT_MAX, Activation, id_elements
from dcia.layers import DenseLayer, ElementwiseLayer, EmbeddingLayer
from dcia.wire import DCIA, DCIA_UDP_PORT, MAX_NET_ELEMS, MAX_PASSES, Flag
from tests.dataplane.rig import HOST1, HOST2, SWITCH_MAC, assert_forwarded, frame
from tests.dataplane_model import InstalledModel, SwitchState, expect

pytestmark = pytest.mark.netns

VECTORS = 1200


def test_ordinary_ipv4_traffic_is_forwarded(rig):
    sent = [frame(ICMP(id=7, seq=1) / b"ping"), frame(UDP(sport=1, dport=2) / b"hello", ttl=9)]
    for f in sent:
        rig.h1.send(bytes(f))
    got = [Ether(b) for b in rig.h2.receive_count(2, timeout=10)]
    assert len(got) == 2
    for s, g in zip(sent, got):
        assert_forwarded(s, g)
        assert bytes(g[IP].payload) == bytes(s[IP].payload)
    # an unknown destination is dropped by the default action
    rig.h1.send(bytes(Ether(src=HOST1["mac"], dst=SWITCH_MAC) / IP(src=HOST1["ip"], dst="10.9.9.9") / ICMP()))
    assert rig.h2.receive(0.5) == []


def test_ping_between_hosts_crosses_the_switch(rig):
    rig.lab.configure_host(1, ip="10.0.1.1/24", mac=HOST1["mac"], peers={HOST2["ip"]: SWITCH_MAC})
    rig.lab.configure_host(2, ip="10.0.2.2/24", mac=HOST2["mac"], peers={HOST1["ip"]: SWITCH_MAC})
    result = rig.lab.run_in_host(1, "ping", "-c", "3", "-i", "0.2", "-W", "5", HOST2["ip"],
                                 timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 received" in result.stdout


# ----------------------------------------------------------------- layers under test --


def random_dense(rng: random.Random, n_in: int, n_out: int, act: Activation, *,
                 extreme: bool = False) -> DenseLayer:
    if extreme:
        weights = [[rng.choice([-128, 127, 0]) for _ in range(n_in)] for _ in range(n_out)]
        bias = [rng.choice([-(2**31), 2**31 - 1, 0, -1]) for _ in range(n_out)]
        mult = [rng.choice([0, 1, MULT_MAX]) for _ in range(n_out)]
        shift = [rng.choice([0, 1, 16, 47]) for _ in range(n_out)]
    else:
        weights = [[rng.randint(-128, 127) for _ in range(n_in)] for _ in range(n_out)]
        bias = [rng.randint(-30000, 30000) for _ in range(n_out)]
        mult = [rng.randint(1 << 14, MULT_MAX) for _ in range(n_out)]
        shift = [rng.randint(19, 25) for _ in range(n_out)]
    return DenseLayer(weights, bias, mult, shift, act)


def build_models(rng: random.Random) -> list[InstalledModel]:
    ew = ElementwiseLayer(scales=[rng.randint(-128, 127) for _ in range(12)],
                          offsets=[rng.randint(-32768, 32767) for _ in range(12)],
                          mult=rng.randint(1 << 14, MULT_MAX), shift=22, act=Activation.RELU)
    vocab = {i: [rng.randint(-128, 127) for _ in range(12)] for i in rng.sample(range(65536), 40)}
    vocab[0] = [-128] * 12
    vocab[0xFFFF] = [127] * 12
    return [
        InstalledModel(1, 1, {
            0: random_dense(rng, 16, 16, Activation.RELU),
            1: random_dense(rng, 16, 12, Activation.IDENTITY),
            2: ew,
            3: random_dense(rng, 12, 10, Activation.IDENTITY, extreme=True),
        }, more={0: True, 1: True}),
        InstalledModel(2, 3, {
            0: EmbeddingLayer(vocab, dim=12),
            1: random_dense(rng, 12, 8, Activation.RELU),
        }, more={0: True}),
        InstalledModel(4, 1, {i: random_dense(rng, 4, 4, Activation.IDENTITY)
                              for i in range(MAX_PASSES + 2)},
                       more={i: True for i in range(MAX_PASSES + 2)}),
    ]


def random_int8s(rng: random.Random, n: int) -> list[int]:
    style = rng.random()
    if style < 0.05:
        return [-128] * n
    if style < 0.10:
        return [127] * n
    if style < 0.13:
        return [0] * n
    return [rng.randint(-128, 127) for _ in range(n)]


def random_case(rng: random.Random, models: list[InstalledModel]) -> dict:
    """A DCIA header + tensor: valid work, wrong versions, unknown models, malformed ones."""
    r = rng.random()
    case = dict(ver=1, flags=0, model_id=1, version=1, next_layer=0, elems=None, n_elems=None,
                trailer=b"")
    if r < 0.35:
        case["elems"] = random_int8s(rng, 16)
    elif r < 0.45:
        case.update(next_layer=1, elems=random_int8s(rng, 16))
    elif r < 0.52:
        case.update(next_layer=3, elems=random_int8s(rng, 12))
    elif r < 0.62:
        vocab = list(models[1].layers[0].table)
        ident = rng.choice(vocab) if rng.random() < 0.8 else rng.randint(0, 65535)
        case.update(model_id=2, version=3, elems=id_elements(ident))
    elif r < 0.67:
        case.update(model_id=4, next_layer=rng.randint(0, 3), elems=random_int8s(rng, 4))
    elif r < 0.72:
        case.update(version=rng.choice([0, 2, 7]), elems=random_int8s(rng, 16))
    elif r < 0.76:
        case.update(model_id=rng.choice([3, 9, 0xFFFF]), elems=random_int8s(rng, 16))
    elif r < 0.80:
        case.update(flags=rng.choice([Flag.RESULT, Flag.ERROR, Flag.NO_OFFLOAD]),
                    elems=random_int8s(rng, 16))
    elif r < 0.84:
        case.update(elems=random_int8s(rng, rng.choice([17, 64, 300])))   # too big to compute
    elif r < 0.87:
        case.update(ver=rng.choice([0, 2, 255]), elems=random_int8s(rng, 16))
    elif r < 0.90:
        case.update(elems=[], n_elems=rng.choice([1025, 2000, 0xFFFF]))
    elif r < 0.93:
        n = rng.randint(1, MAX_NET_ELEMS)
        case.update(elems=random_int8s(rng, rng.randint(0, n - 1)), n_elems=n)  # truncated
    elif r < 0.96:
        case.update(elems=random_int8s(rng, 16), trailer=b"\x01\x02")  # bytes after the tensor
    else:
        case.update(elems=random_int8s(rng, rng.choice([12, 15])))  # wrong shape for layer 0
    return case


def test_random_tensors_match_the_integer_reference(rig):
    rng = random.Random(20261129)
    models = build_models(rng)
    rig.install(models)
    state = SwitchState(models)
    kinds = Counter()
    for batch in range(0, VECTORS, 40):
        sent = {}
        for i in range(batch, min(batch + 40, VECTORS)):
            c = random_case(rng, models)
            dcia = DCIA(ver=c["ver"], flags=c["flags"], model_id=c["model_id"],
                        model_version=c["version"], next_layer=c["next_layer"],
                        request_id=i, n_elems=c["n_elems"], elems=c["elems"])
            f = frame(UDP(sport=DCIA_UDP_PORT, dport=DCIA_UDP_PORT) / dcia / Raw(c["trailer"]))
            raw = bytes(f)
            want = expect(state, ver=c["ver"], flags=int(c["flags"]), model_id=c["model_id"],
                          version=c["version"], next_layer=c["next_layer"],
                          n_elems=len(c["elems"]) if c["n_elems"] is None else c["n_elems"],
                          elems=c["elems"], udp_len=Ether(raw)[UDP].len)
            sent[i] = (Ether(raw), want)
            rig.h1.send(raw)
        got = [Ether(b) for b in rig.h2.receive_count(len(sent), timeout=30)]
        assert len(got) == len(sent), f"{len(sent) - len(got)} packets of batch {batch} lost"
        for g in got:
            assert DCIA in g, f"not a DCIA packet: {g!r}"
            s, want = sent.pop(g[DCIA].request_id)
            kinds[want.kind] += 1
            assert_forwarded(s, g)
            d = g[DCIA]
            context = f"request {d.request_id} ({want.kind}): {s[DCIA].summary()}"
            assert d.next_layer == want.next_layer, context
            assert d.net_layers == want.net_layers, context
            assert int(d.flags) == want.flags, context
            if want.kind == "computed":
                assert d.elems == want.elems, context
                assert d.n_elems == len(want.elems), context
                assert g[UDP].chksum == 0, context
                assert g[UDP].len == 8 + 16 + len(want.elems), context
            elif want.kind == "malformed":
                assert bytes(d)[2:] == bytes(s[DCIA])[2:], context     # only flags changed
                assert g[UDP].chksum == 0, context
            else:
                assert bytes(d) == bytes(s[DCIA]), context             # untouched
                assert g[UDP].chksum == s[UDP].chksum, context
    assert all(kinds[k] > 20 for k in ("computed", "passthrough", "mismatch", "malformed",
                                       "ordinary")), kinds

    stats = rig.counters("dcia_stats")
    assert [stats.get(i, 0) for i in range(len(entries.STAT_NAMES))] == [
        state.counters[i] for i in range(len(entries.STAT_NAMES))]
    per_layer = rig.counters("layer_stats")
    assert {k: v for k, v in per_layer.items() if v} == dict(state.layer_counters)


def test_steering_sends_tensors_by_model_and_layer_and_answers_the_edge(rig):
    rng = random.Random(5)
    models = build_models(rng)
    rig.install(models)
    rig.write([
        # model 1 after layer 2 (next layer 3): back out of port 1 to another node
        +entries.steering_entry(model_id=1, layer=3, hops=[
            entries.NextHop(1, "08:00:00:00:01:99", "10.0.1.9")]),
        # model 2 is done after its two layers: this switch answers the edge
        +entries.steering_entry(model_id=2, layer=2, hops=[
            entries.NextHop(1, HOST1["mac"], HOST1["ip"], answer=True)]),
    ])
    x = random_int8s(rng, 16)
    ident = next(iter(models[1].layers[0].table))
    rig.h1.send(bytes(frame(UDP(sport=DCIA_UDP_PORT, dport=DCIA_UDP_PORT)
                            / DCIA(model_id=1, model_version=1, request_id=1, elems=x))))
    rig.h1.send(bytes(frame(UDP(sport=DCIA_UDP_PORT, dport=DCIA_UDP_PORT)
                            / DCIA(model_id=2, model_version=3, request_id=2,
                                   elems=id_elements(ident)))))
    back = {Ether(b)[DCIA].request_id: Ether(b) for b in rig.h1.receive_count(2, timeout=10)}
    assert rig.h2.receive(0.3) == []

    redirected = back[1]
    assert redirected[Ether].dst == "08:00:00:00:01:99" and redirected[IP].dst == "10.0.1.9"
    assert redirected[DCIA].next_layer == 3 and redirected[DCIA].flags == 0
    m1 = models[0].layers
    assert redirected[DCIA].elems == m1[2].forward(m1[1].forward(m1[0].forward(x)))

    answer = back[2]
    assert answer[IP].src == HOST2["ip"] and answer[IP].dst == HOST1["ip"]
    assert answer[Ether].dst == HOST1["mac"]
    assert int(answer[DCIA].flags) == Flag.RESULT and answer[DCIA].next_layer == 2
    m2 = models[1].layers
    assert answer[DCIA].elems == m2[1].forward(m2[0].forward(id_elements(ident)))
