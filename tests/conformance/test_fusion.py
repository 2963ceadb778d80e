"""Fusion in the DCIA program (p4src/build/dcia.json) in process: many groups of random
sizes, their members interleaved, retransmitted and colliding in slots, against a model
of the slot rules of docs/wire-format.md ("Fusion") that fuses with dcia.arithmetic.fuse.

Timeouts need time to pass and are tested on real switch processes (tests/dataplane/
test_fusion.py); here no group is ever stale.
"""

import random
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from controller.entries import FUSION_SLOTS, FUSION_STAT_NAMES
from dcia.arithmetic import fuse
from dcia.wire import DCIA, DCIA_UDP_PORT, Flag, fusion_field
from embedded_switch.match import Exact, Lpm
from embedded_switch.switch import Switch

DCIA_JSON = Path(__file__).resolve().parents[2] / "p4src/build/dcia.json"
I = "DciaIngress."
N = 16
LAYER = 3


@pytest.fixture
def sw():
    s = Switch()
    s.load_pipeline(DCIA_JSON.read_bytes())
    s.table_add(I + "ipv4_lpm", [Lpm(0x0A000200, 24)], I + "ipv4_forward", [0x080000000222, 2])
    return s


def install(sw: Switch, model: int, members: int) -> None:
    sw.table_add(I + "layers", [Exact(model), Exact(1), Exact(LAYER)], I + "fusion_layer",
                 [N, members, 60_000_000, 0])


@dataclass
class Slot:
    group: int
    model: int
    members: int
    vec: list[int]
    first: bytes
    released: bool = False


@dataclass
class SlotModel:
    """The switch's slots as docs/wire-format.md describes them, no group ever stale."""

    sizes: dict[int, int]                     # model id -> group size
    slots: dict[int, Slot] = field(default_factory=dict)
    stats: list[int] = field(default_factory=lambda: [0] * len(FUSION_STAT_NAMES))

    def member(self, frame: bytes) -> tuple[str, Slot | None]:
        d = Ether(frame)[DCIA]
        m, bit = d.reserved >> 4, 1 << (d.reserved >> 4)
        s = self.slots.get(d.request_id % FUSION_SLOTS)
        mine = s is not None and (s.group, s.model) == (d.request_id, d.model_id)
        if mine and s.members & bit:
            self.stats[2] += 1
            return "dropped", None
        if mine and s.released:
            self.stats[5] += 1
            return "unfused", None
        if mine:
            s.vec, s.members = fuse([s.vec, d.elems]), s.members | bit
            if s.members == (1 << self.sizes[d.model_id]) - 1:
                s.released = True
                self.stats[0] += 1
                return "fused", s
            self.stats[4] += 1
            return "dropped", None
        if s is None or s.released:
            self.slots[d.request_id % FUSION_SLOTS] = Slot(d.request_id, d.model_id, bit,
                                                            list(d.elems), frame)
            self.stats[4] += 1
            return "dropped", None
        self.stats[3] += 1
        return "unfused", None


def member(model: int, group: int, m: int, k: int, elems: list[int]) -> bytes:
    return bytes(Ether(src="08:00:00:00:01:11", dst="08:00:00:00:01:00")
                 / IP(src=f"10.0.1.{20 + m}", dst="10.0.2.2", id=group & 0xFFFF)
                 / UDP(sport=41000 + m, dport=DCIA_UDP_PORT)
                 / DCIA(flags=Flag.FUSE, model_id=model, model_version=1, next_layer=LAYER,
                        net_layers=2, request_id=group, reserved=fusion_field(m, k), elems=elems))


def test_random_interleaved_groups_with_retransmissions_and_collisions(sw):
    rng = random.Random(1414)
    sizes = {1: 2, 2: 3, 3: 5, 4: 8}
    for model, k in sizes.items():
        install(sw, model, k)
    ref = SlotModel(sizes)
    frames = []
    for _ in range(300):
        model = rng.choice(list(sizes))
        # group ids from a small range: many slots are shared, some groups collide
        group = rng.randint(1, 3 * FUSION_SLOTS)
        present = [m for m in range(sizes[model]) if rng.random() < 0.9]
        for m in present:
            x = [rng.choice([-128, 127, rng.randint(-128, 127)]) for _ in range(N)]
            frames.append(member(model, group, m, sizes[model], x))
            if rng.random() < 0.1:                        # a retransmission, other bytes
                frames.append(member(model, group, m, sizes[model], [0] * N))
    # members of several groups interleave, each group's members roughly in order
    order = sorted(range(len(frames)), key=lambda i: i + rng.randint(0, 40))
    outcomes = {}
    for i in order:
        outcome, slot = ref.member(frames[i])
        out = sw.process(1, frames[i])
        if outcome == "dropped":
            assert out == [], f"frame {i} should be dropped"
            continue
        [(port, data)] = out
        assert port == 2
        got, sent = Ether(data), Ether(frames[i])
        if outcome == "unfused":
            assert bytes(got[IP].payload) == bytes(sent[IP].payload)
            continue
        first = Ether(slot.first)
        assert (got[IP].src, got[IP].dst, got[UDP].sport) == (
            first[IP].src, first[IP].dst, first[UDP].sport)
        assert got[IP].id == sent[IP].id and got[IP].ttl == sent[IP].ttl - 1
        d = got[DCIA]
        assert (int(d.flags), d.reserved, d.request_id, d.model_id) == (
            Flag.FUSED, slot.members, slot.group, slot.model)
        assert (d.next_layer, d.net_layers, d.elems) == (LAYER + 1, 3, slot.vec)
        assert got[UDP].chksum == 0 and got[UDP].len == 8 + 16 + N
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    assert outcomes.get("fused", 0) > 100
    assert ref.stats[2] > 10 and ref.stats[3] > 5, ref.stats   # duplicates, collisions
    stats = [sw.counter_read(I + "fusion_stats", i)[0] for i in range(len(FUSION_STAT_NAMES))]
    assert stats == ref.stats
