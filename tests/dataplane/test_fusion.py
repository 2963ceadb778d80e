"""In-network fusion on a real switch process: BMv2 and the embedded switch.

A fusion layer joins the tensors of the members of one fusion group (docs/wire-format.md,
"Fusion"): the first members wait in the switch's registers and are dropped, the member
that completes the group carries the fused tensor on; a group still incomplete after its
timeout leaves, fused over the members present, in the packet that next needs its slot or
in a flush packet. Every frame that leaves is compared byte for byte with the frame built
here from the integer reference (dcia.arithmetic.fuse), so the two targets agree with it
and with each other; the counters are compared too.
"""

from __future__ import annotations

import random
import time

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from controller import entries
from dcia.arithmetic import Activation, fuse
from dcia.layers import DenseLayer, FusionLayer
from dcia.wire import DCIA, DCIA_UDP_PORT, FLUSH_MEMBER, Flag, fusion_field
from tests.dataplane.rig import HOST1, HOST2, SWITCH_MAC, assert_forwarded
from tests.dataplane_model import STAT_COMPUTED, STAT_MALFORMED, InstalledModel

pytestmark = pytest.mark.netns

FUSED, TIMED_OUT, DUPLICATE, COLLISION, STORED, LATE, IDLE = range(7)
SLOTS = entries.FUSION_SLOTS
LONG_US = 30_000_000          # groups that must never time out during a test
SHORT_US = 250_000            # the timeout under test
STALE_S = 0.6                 # comfortably past SHORT_US on either target

PAIRS = InstalledModel(21, 1, {0: FusionLayer(16, 2, LONG_US)})
rng0 = random.Random(14)
HEAD = DenseLayer([[rng0.randint(-128, 127) for _ in range(8)] for _ in range(4)],
                  [rng0.randint(-3000, 3000) for _ in range(4)], [40000] * 4, [16] * 4,
                  Activation.RELU)
TRIPLES = InstalledModel(22, 1, {0: FusionLayer(8, 3, LONG_US), 1: HEAD}, more={0: True})
TIMED = InstalledModel(23, 2, {2: FusionLayer(16, 3, SHORT_US)})
MODELS = [PAIRS, TRIPLES, TIMED]


def member(model: InstalledModel, group: int, m: int, elems: list[int], *, layer: int = 0,
           members: int | None = None, reserved: int | None = None, flags: int = Flag.FUSE,
           net_layers: int = 0, ttl: int = 64, n_elems: int | None = None) -> Ether:
    """Member ``m`` of fusion group ``group``: its own source address, UDP port and IPv4 id."""
    size = members if members is not None else model.layers[layer].members
    return (Ether(src=HOST1["mac"], dst=SWITCH_MAC)
            / IP(src=f"10.0.1.{11 + (m & 0xF)}", dst=HOST2["ip"], ttl=ttl,
                 id=(group * 16 + m) & 0xFFFF)
            / UDP(sport=40000 + m, dport=DCIA_UDP_PORT)
            / DCIA(flags=flags, model_id=model.model_id, model_version=model.version,
                   next_layer=layer, net_layers=net_layers, request_id=group,
                   reserved=fusion_field(m, size) if reserved is None else reserved,
                   n_elems=n_elems, elems=elems))


def flush(model: InstalledModel, group: int, *, layer: int = 0, ttl: int = 64) -> Ether:
    """A flush packet: no tensor; releases the timed-out group of ``group``'s slot."""
    return member(model, group, FLUSH_MEMBER, [], layer=layer, reserved=fusion_field(FLUSH_MEMBER, 0),
                  ttl=ttl)


def fused_frame(carrier: Ether, first: Ether, *, bitmap: int, elems: list[int],
                layers: int = 1) -> bytes:
    """What leaves: the carrier's IPv4 header (TTL - 1) with the first member's addresses,
    UDP source port, group, model and net_layers; FUSED, the bitmap, the fused tensor."""
    c, o = Ether(bytes(carrier)), Ether(bytes(first))
    d = o[DCIA]
    return bytes(Ether(src=SWITCH_MAC, dst=HOST2["mac"])
                 / IP(tos=c[IP].tos, id=c[IP].id, flags=c[IP].flags, ttl=c[IP].ttl - 1,
                      src=o[IP].src, dst=o[IP].dst)
                 / UDP(sport=o[UDP].sport, dport=DCIA_UDP_PORT, chksum=0)
                 / DCIA(flags=Flag.FUSED, model_id=d.model_id, model_version=d.model_version,
                        next_layer=d.next_layer + layers, net_layers=d.net_layers + layers,
                        request_id=d.request_id, reserved=bitmap, elems=elems))


def tensor(rng: random.Random, n: int) -> list[int]:
    return [rng.choice([-128, 127]) if rng.random() < 0.1 else rng.randint(-128, 127)
            for _ in range(n)]


def send(rig, frames: list[Ether], gap: float = 0.0) -> None:
    for f in frames:
        rig.h1.send(bytes(f))
        if gap:
            time.sleep(gap)


def receive(rig, count: int, *, quiet: float = 0.5) -> list[bytes]:
    """``count`` frames from host 2, then nothing more for ``quiet`` seconds."""
    got = rig.h2.receive_count(count, timeout=20)
    assert len(got) == count, f"{count} frames expected, {len(got)} arrived"
    extra = rig.h2.receive(quiet)
    assert extra == [], f"{len(extra)} unexpected frames: {[Ether(e).summary() for e in extra]}"
    return got


def fusion_stats(rig) -> list[int]:
    stats = rig.counters(entries.C_FUSION_STATS)
    return [stats.get(i, 0) for i in range(len(entries.FUSION_STAT_NAMES))]


def counts(**named: int) -> list[int]:
    out = [0] * len(entries.FUSION_STAT_NAMES)
    for name, value in named.items():
        out[globals()[name.upper()]] = value
    return out


# ------------------------------------------------------------------------------ tests --


def test_complete_groups_of_two_and_three_are_fused_by_the_completing_member(rig):
    rig.install(MODELS)
    rng = random.Random(1)
    for round_ in range(3):
        pair = [member(PAIRS, 100 + round_, m, tensor(rng, 16), ttl=60 - m) for m in (1, 0)]
        send(rig, pair)
        [got] = receive(rig, 1, quiet=0.2)
        xs = [p[DCIA].elems for p in pair]
        assert got == fused_frame(pair[1], pair[0], bitmap=0b11, elems=fuse(xs))

        # three members, then the next layer (dense) on the same switch by recirculation
        triple = [member(TRIPLES, 200 + round_, m, tensor(rng, 8), net_layers=1, ttl=50 + m)
                  for m in rng.sample(range(3), 3)]
        send(rig, triple)
        [got] = receive(rig, 1, quiet=0.2)
        fused = fuse([p[DCIA].elems for p in triple])
        assert got == fused_frame(triple[2], triple[0], bitmap=0b111,
                                  elems=HEAD.forward(fused), layers=2)
    assert fusion_stats(rig) == counts(fused=6, stored=3 * 1 + 3 * 2)
    stats = rig.counters("dcia_stats")
    assert stats.get(STAT_COMPUTED) == 3 + 3 * 2
    assert {k: v for k, v in rig.counters("layer_stats").items() if v} == {0: 6, 1: 3}


def test_a_group_left_incomplete_leaves_after_its_timeout_fused_over_the_members_present(rig):
    rig.install(MODELS)
    rng = random.Random(2)
    a = [member(TIMED, 7, m, tensor(rng, 16), layer=2, net_layers=2) for m in (0, 2)]
    send(rig, a + [flush(TIMED, 7, layer=2)])        # before the timeout: nothing to release
    assert rig.h2.receive(0.3) == []
    time.sleep(STALE_S)
    release = flush(TIMED, 7, layer=2, ttl=33)
    send(rig, [release])
    [got] = receive(rig, 1)
    assert got == fused_frame(release, a[0], bitmap=0b101, elems=fuse([p[DCIA].elems for p in a]))

    # a member of that group arriving now went too late: it goes on unfused, counted
    late = member(TIMED, 7, 1, tensor(rng, 16), layer=2, net_layers=2)
    send(rig, [late])
    [got] = receive(rig, 1)
    assert_forwarded(late, Ether(got))
    assert bytes(Ether(got)[IP].payload) == bytes(late[IP].payload)

    # a stale group is released by the next group that needs its slot, in that packet; the
    # newcomer waits in the slot and completes later
    b = member(TIMED, 9, 1, tensor(rng, 16), layer=2)
    send(rig, [b])
    time.sleep(STALE_S)
    newcomer = [member(TIMED, 9 + SLOTS, m, tensor(rng, 16), layer=2) for m in range(3)]
    send(rig, newcomer[:1])
    [got] = receive(rig, 1)
    assert got == fused_frame(newcomer[0], b, bitmap=0b010, elems=b[DCIA].elems)
    send(rig, newcomer[1:])
    [got] = receive(rig, 1)
    assert got == fused_frame(newcomer[2], newcomer[0], bitmap=0b111,
                              elems=fuse([p[DCIA].elems for p in newcomer]))

    # a flush of a slot nobody uses, or of a group already gone, releases nothing
    send(rig, [flush(TIMED, 12345, layer=2), flush(TIMED, 7, layer=2)])
    assert rig.h2.receive(0.3) == []
    assert fusion_stats(rig) == counts(fused=1, timed_out=2, stored=2 + 1 + 2, late=1, idle=3)
    assert rig.counters("layer_stats").get(2) == 3


def test_interleaved_groups_are_fused_apart(rig):
    rig.install(MODELS)
    rng = random.Random(3)
    groups = {g: [member(TRIPLES, g, m, tensor(rng, 8)) for m in range(3)]
              for g in (300, 301, 302, 303, 304)}
    order = [p for ms in groups.values() for p in ms]
    rng.shuffle(order)
    send(rig, order)
    got = receive(rig, len(groups))
    by_group = {Ether(g)[DCIA].request_id: g for g in got}
    assert sorted(by_group) == sorted(groups)
    for g, ms in groups.items():
        arrived = [p for p in order if p[DCIA].request_id == g]
        want = fused_frame(arrived[-1], arrived[0], bitmap=0b111,
                           elems=HEAD.forward(fuse([p[DCIA].elems for p in ms])), layers=2)
        assert by_group[g] == want, f"group {g}"
    assert fusion_stats(rig) == counts(fused=5, stored=10)


def test_duplicate_members_are_counted_and_fused_once(rig):
    rig.install(MODELS)
    rng = random.Random(4)
    ms = [member(TRIPLES, 400, m, tensor(rng, 8)) for m in range(3)]
    # a retransmission carries other bytes: fusing it would change the answer
    again = [member(TRIPLES, 400, m, tensor(rng, 8)) for m in range(3)]
    send(rig, [ms[0], again[0], ms[1], again[0], again[1], ms[2]])
    [got] = receive(rig, 1)
    assert got == fused_frame(ms[2], ms[0], bitmap=0b111,
                              elems=HEAD.forward(fuse([p[DCIA].elems for p in ms])), layers=2)
    send(rig, [again[2]])                                  # after the group has left
    assert rig.h2.receive(0.3) == []
    assert fusion_stats(rig) == counts(fused=1, stored=2, duplicate=4)


def test_malformed_group_ids_and_member_indexes_are_flagged_never_fused(rig):
    rig.install(MODELS)
    rng = random.Random(5)
    x = tensor(rng, 16)
    bad = [
        member(PAIRS, 0, 0, x),                                   # group id 0
        member(PAIRS, 500, 2, x, reserved=0x22),                  # member 2 of 2
        member(PAIRS, 500, 0, x, reserved=0x03),                  # group of 3 at a layer of 2
        member(PAIRS, 500, 0, x, reserved=0x00),                  # group of 0
        member(PAIRS, 500, 9, x, reserved=0x9F),                  # member 9 of 15
        member(PAIRS, 500, 0, x, flags=0, reserved=0),            # not a member at all
        member(PAIRS, 500, 0, x, flags=Flag.FUSE | Flag.FUSED),   # fused already
        member(PAIRS, 500, 0, x, flags=Flag.FUSED),
        member(PAIRS, 500, 0, tensor(rng, 8)),                    # 8 elements, layer takes 16
        member(PAIRS, 500, 0, x, reserved=fusion_field(FLUSH_MEMBER, 2)),  # a flush with a tensor
    ]
    send(rig, bad)
    got = [Ether(g) for g in receive(rig, len(bad), quiet=0.2)]
    for s, g in zip(bad, got):
        assert_forwarded(s, g)
        assert int(g[DCIA].flags) == int(s[DCIA].flags) | Flag.MALFORMED, s[DCIA].summary()
        assert bytes(g[DCIA])[2:] == bytes(s[DCIA])[2:], s[DCIA].summary()
        assert g[UDP].chksum == 0
    # nothing of them entered the group's slot
    good = [member(PAIRS, 500, m, tensor(rng, 16)) for m in range(2)]
    send(rig, good)
    [got] = receive(rig, 1)
    assert got == fused_frame(good[1], good[0], bitmap=0b11,
                              elems=fuse([p[DCIA].elems for p in good]))
    assert rig.counters("dcia_stats").get(STAT_MALFORMED) == len(bad)
    assert fusion_stats(rig) == counts(fused=1, stored=1)


def test_a_slot_collision_sends_the_newcomer_on_unfused_and_loses_no_member(rig):
    rig.install(MODELS)
    rng = random.Random(6)
    a = [member(PAIRS, 600, m, tensor(rng, 16)) for m in range(2)]
    b = [member(TIMED, 600 + SLOTS, m, tensor(rng, 16), layer=2) for m in range(2)]  # same slot
    c = member(PAIRS, 600 + 2 * SLOTS, 0, tensor(rng, 16))                          # same slot
    send(rig, [a[0], b[0], c])
    got = [Ether(g) for g in receive(rig, 2)]
    for s, g in zip([b[0], c], got):                  # on to the next node, unfused
        assert_forwarded(s, g)
        assert bytes(g[IP].payload) == bytes(s[IP].payload)
    send(rig, [a[1]])
    [got] = receive(rig, 1)
    assert got == fused_frame(a[1], a[0], bitmap=0b11, elems=fuse([p[DCIA].elems for p in a]))
    send(rig, [b[1]])                                  # the slot is free again: b[1] waits
    assert rig.h2.receive(0.3) == []
    time.sleep(STALE_S)
    release = flush(TIMED, 600 + SLOTS, layer=2)
    send(rig, [release])
    [got] = receive(rig, 1)
    assert got == fused_frame(release, b[1], bitmap=0b10, elems=b[1][DCIA].elems)
    assert fusion_stats(rig) == counts(fused=1, timed_out=1, stored=2, collision=2)
