"""The confidential topology end to end in Mininet: every tensor of the sealed model crosses
the switches sealed (captured on every switch port), no switch computes it, and every
answer equals the integer reference (dcia.sealing, [policy] sealed_models)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from scapy.utils import rdpcap

from dcia.sealing import OVERHEAD
from dcia.targets import find_bmv2
from dcia.wire import DCIA, HEADER_BYTES, Flag
from tests.system.testbed_cli import dcia_testbed_run

REPO = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(os.geteuid() != 0, reason="the Mininet testbed needs root"),
]


@pytest.mark.parametrize("target", ["embedded", "bmv2"])
def test_sealed_tensors_cross_the_switches_unreadable_and_come_back_right(tmp_path, target):
    if target == "bmv2" and find_bmv2() is None:
        pytest.skip("BMv2 simple_switch_grpc is not installed here")
    topology = tmp_path / "confidential.toml"  # its secrets file is made beside it
    shutil.copy(REPO / "topologies" / "confidential.toml", topology)
    code, out, report = dcia_testbed_run(tmp_path / "run", "--topology", str(topology),
                                          "--target", target, "--requests", "20", "--pcap")
    assert code == 0, out
    results = report["summary"]
    assert results["answered"] == 20 and results["identical_to_reference"] == 20, out
    assert results["clouds"]["h2"]["sealed"] == 20
    assert all(not s["layers"] for s in results["switches"].values())
    assert (tmp_path / "keys" / "confidential.tensors.toml").stat().st_mode & 0o077 == 0
    frames = [f for p in sorted((tmp_path / "run" / "pcap").glob("*.pcap")) for f in rdpcap(str(p))
              if DCIA in f and f[DCIA].next_layer < 4]  # requests (next layer 1) and answers (4)
    tensors = [f for f in frames if not int(f[DCIA].flags) & Flag.RESULT]
    answers = [f for f in frames if int(f[DCIA].flags) & Flag.RESULT]
    assert tensors, "the capture holds no request"
    for f in tensors:
        assert int(f[DCIA].flags) == Flag.ENCRYPTED, f.summary()
        assert f[DCIA].n_elems == 16 + OVERHEAD and len(bytes(f[DCIA])) == HEADER_BYTES + 16 + OVERHEAD
    for f in answers:
        assert int(f[DCIA].flags) & Flag.ENCRYPTED, f.summary()
