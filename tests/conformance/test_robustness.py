"""Random, truncated and mutated frames through every compiled program never raise and
never hit an internal error: they are forwarded, dropped or flagged as the P4 says."""
import random

import pytest

from tests.conformance.loader import PROGRAMS, load

NAMES = sorted(p.stem for p in PROGRAMS.glob("*.p4"))


@pytest.mark.parametrize("name", NAMES)
def test_random_frames(name):
    sw = load(name, cpu_port=64)
    rng = random.Random(name)
    seeds = [bytes(12) + bytes.fromhex(t) + bytes(rng.randrange(256) for _ in range(40))
             for t in ("0800", "9000", "9001", "1234", "91ab")]
    for _ in range(300):
        base = rng.choice(seeds)
        frame = bytearray(base[:rng.randrange(len(base) + 1)])
        for _ in range(rng.randrange(4)):
            if frame:
                frame[rng.randrange(len(frame))] = rng.randrange(256)
        sw.process(rng.randrange(512), bytes(frame))
    for _ in range(100):
        sw.process(rng.randrange(512), bytes(rng.randrange(256) for _ in range(rng.randrange(120))))
    if name != "misc":   # misc.p4 asserts on purpose: a failed assert drops the packet
        assert sw.stats["dropped_error"] == 0
