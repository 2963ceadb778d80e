"""The testbed's control plane, locked down (issue 13, item 5), on both targets: every
P4Runtime server listens on the loopback only and speaks only mutual TLS with the
certificates the testbed made at start; plain text and a client without the controller's
certificate are refused; `dcia status --tls <run dir>/tls` gets in; the switches' data
ports carry no address, so nothing the root namespace serves (BMv2's Thrift server listens
on every interface) is reachable from the hosts; `--plaintext` is the explicit way back."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(os.geteuid() != 0, reason="the Mininet testbed needs root"),
]

pytest.importorskip("mininet.net", reason="Mininet is not importable (scripts/bootstrap.sh links it)")

from controller import session  # noqa: E402
from controller.deployment import endpoint_of  # noqa: E402
from controller.pki import with_tls  # noqa: E402
from controller.topology import Tls, load_topology  # noqa: E402
from dcia.targets import find_bmv2  # noqa: E402
from mininet_topos import testbed as tb  # noqa: E402
from tests.topology_files import on_free_ports  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def listeners() -> list[str]:
    """Local addresses of every listening TCP socket of the root namespace (an IPv4-mapped
    IPv6 socket, as gRPC may bind, written as its IPv4 address)."""
    out = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True, check=True).stdout
    return [re.sub(r"^\[::ffff:([0-9.]+)\]", r"\1", line.split()[3]) for line in out.splitlines()]


def status(topology_file: Path, *tls: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "controller.cli", "status", "--topology",
                           str(topology_file), *tls], cwd=REPO, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("target", ["embedded", "bmv2"])
def test_p4runtime_is_mutual_tls_on_the_loopback_only(tmp_path, target):
    if target == "bmv2" and find_bmv2() is None:
        pytest.skip("BMv2 simple_switch_grpc is not installed here")
    on_free_ports(REPO / "topologies" / "linear.toml", tmp_path / "linear.toml")
    plain = load_topology(tmp_path / "linear.toml")
    with tb.Testbed(plain, target=target, run_dir=tmp_path / "run") as bed:
        ports = {s.grpc.rsplit(":", 1)[1]: s.grpc for s in plain.switches.values()}
        bound = [a for a in listeners() if a.rsplit(":", 1)[1] in ports]
        assert sorted(bound) == sorted(ports.values()), f"P4Runtime bound to {bound}"
        for name in plain.switches:
            for intf in bed.net.get(name).intfList():
                if intf.name != "lo":
                    addresses = subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", intf.name],
                                               capture_output=True, text=True).stdout
                    assert addresses == "", f"{intf.name} has an address: {addresses}"

        async def refused(topology) -> list[str]:
            """The switches that would not let this topology's controller side in."""
            return [s.name for s in topology.switches.values()
                    if (await session.switch_status(endpoint_of(s))).unreachable]

        ca_only = with_tls(plain, Tls(ca=bed.tls_dir / "ca.pem"))
        assert asyncio.run(refused(plain)) == ["s1", "s2", "s3"], "plain text got in"
        assert asyncio.run(refused(ca_only)) == ["s1", "s2", "s3"], "no client certificate got in"
        assert asyncio.run(refused(bed.topology)) == []
        ok = status(tmp_path / "linear.toml", "--tls", str(bed.tls_dir))
        assert ok.returncode == 0 and "s3" in ok.stdout, ok.stdout + ok.stderr
        no_tls = status(tmp_path / "linear.toml")
        assert no_tls.returncode != 0
    assert not bed.tls_dir.exists(), "the certificates outlived the testbed"


def test_plaintext_is_an_explicit_option(tmp_path):
    on_free_ports(REPO / "topologies" / "linear.toml", tmp_path / "linear.toml")
    plain = load_topology(tmp_path / "linear.toml")
    with tb.Testbed(plain, target="embedded", run_dir=tmp_path / "run", tls=False) as bed:
        assert not bed.tls_dir.exists()
        ok = status(tmp_path / "linear.toml")
        assert ok.returncode == 0, ok.stdout + ok.stderr
