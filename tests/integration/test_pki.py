"""The testbed's PKI (controller.pki) on both targets: switches started with its server
certificates accept the controller's certificate and refuse plain text and a client
without a certificate; ``--tls DIR`` gives a command the controller's side."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import grpc
import pytest
from cryptography import x509

from controller import session
from controller.deployment import Deployment, SwitchAssignment, endpoint_of
from controller.pki import add_tls_argument, apply_tls_argument, controller_tls, make_pki, server_args, with_tls
from controller.session import SwitchUnreachable
from controller.topology import load_topology
from dcia.errors import TopologyError
from dcia.targets import SwitchConfig, SwitchProcess, find_bmv2, free_tcp_port
from tests.integration.test_tls import deploy_layer
from tests.topology_files import on_free_ports

ROOT = Path(__file__).resolve().parents[2]


def test_the_certificates_chain_to_the_ca_and_name_the_switch_address(tmp_path):
    pki = make_pki(tmp_path, {"s1": "127.0.0.1:50001", "s2": "10.9.0.2:50002"})
    ca = x509.load_pem_x509_certificate((pki / "ca.pem").read_bytes())
    for name, want in (("s1", "127.0.0.1"), ("s2", "10.9.0.2")):
        cert = x509.load_pem_x509_certificate((pki / f"{name}.pem").read_bytes())
        cert.verify_directly_issued_by(ca)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert want in [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)]
    assert not (pki / "ca.key").exists(), "the CA's key is never written"
    assert all((pki / f).stat().st_mode & 0o077 == 0 for f in ("s1.key", "controller.key"))


def test_tls_dir_replaces_every_switch_tls_and_says_what_is_missing(tmp_path):
    topology = load_topology(ROOT / "topologies" / "linear.toml")
    parser = argparse.ArgumentParser()
    add_tls_argument(parser)
    with pytest.raises(TopologyError, match="ca.pem.* missing"):
        apply_tls_argument(topology, parser.parse_args(["--tls", str(tmp_path)]).tls)
    make_pki(tmp_path, {n: s.grpc for n, s in topology.switches.items()})
    applied = apply_tls_argument(topology, parser.parse_args(["--tls", str(tmp_path)]).tls)
    assert {s.tls for s in applied.switches.values()} == {controller_tls(tmp_path)}


@pytest.mark.parametrize("target", ["embedded", "bmv2"])
def test_only_the_controllers_certificate_gets_in(tmp_path, target):
    if target == "bmv2" and find_bmv2() is None:
        pytest.skip("BMv2 simple_switch_grpc is not installed here")
    on_free_ports(ROOT / "topologies" / "linear.toml", tmp_path / "t.toml")
    topology = load_topology(tmp_path / "t.toml")
    s1 = topology.switches["s1"]
    pki = make_pki(tmp_path / "tls", {"s1": s1.grpc})
    config = SwitchConfig(ports={}, grpc_addr=s1.grpc, device_id=s1.device_id,
                          tls_args=server_args(pki, "s1"))
    with SwitchProcess(target, config, stdout_path=tmp_path / "s1.out"):
        mutual = with_tls(topology, controller_tls(pki))
        deployment = Deployment(1, 1, (SwitchAssignment(endpoint_of(mutual.switches["s1"]),
                                                        {1: deploy_layer()}),))
        (report,) = asyncio.run(session.apply(deployment))
        assert report.inserted > 0
        for refused in (topology, with_tls(topology, controller_tls(pki).__class__(ca=pki / "ca.pem"))):
            plain = Deployment(1, 1, (SwitchAssignment(endpoint_of(refused.switches["s1"]), {}),))
            with pytest.raises(SwitchUnreachable, match="switch s1"):
                asyncio.run(session.apply(plain))
