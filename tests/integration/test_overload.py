"""Overload splitting end to end: a switch offered three times the rate its layer meters
allow computes about that rate, and the cloud finishes the rest; no request is lost and
every answer equals the integer reference, whoever computed it.

The scenario is the steering benchmark's (bench/steering_bench.py: ``overload``): the demo
model's three in-network layers on one switch process on veth pairs, the edge agent and
the cloud server in namespaces of their own, real packets.
"""

from __future__ import annotations

import os

import pytest

from bench.steering_bench import overload
from dcia.targets import find_bmv2

pytestmark = [pytest.mark.netns,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces and veth pairs")]

LAYERS_PER_S = 60.0
"""The switch's advertised rate: 20 requests/s through its three layers."""
OFFERED = 60.0
"""Requests per second the edge starts: three times what the switch computes in full."""
REQUESTS = 300


@pytest.mark.parametrize("target", ["embedded", "bmv2"])
def test_a_switch_offered_three_times_its_rate_loses_nothing(tmp_path, target):
    if target == "bmv2" and find_bmv2() is None:
        pytest.skip("BMv2 simple_switch_grpc is not installed here")
    r = overload(target, LAYERS_PER_S, REQUESTS, window=64, tmp=tmp_path, offered=OFFERED)
    print(f"\n{target}: {r}")
    assert r["lost"] == 0 and r["answered"] == REQUESTS
    assert r["wrong"] == 0, "every answer equals forward_int, whoever computed it"
    assert r["deferred"] > 0 and r["cloud_computed_all"] + r["switch_computed_part"] > 0
    # the meters let the rate through, plus a burst of 10 ms of it per layer
    assert 0.5 * LAYERS_PER_S <= r["computed_per_s"] <= 1.3 * LAYERS_PER_S, r["computed_per_s"]
