"""P4Runtime over TLS, as the topology file asks: real certificates, mutual authentication."""

from __future__ import annotations

import asyncio
import subprocess

import pytest

from controller import deploy
from controller.p4rt import SwitchUnreachable, endpoint_of
from controller.topology import load_topology
from dcia.targets import SwitchConfig, SwitchProcess, find_bmv2, free_tcp_port


def openssl(*args: str, cwd) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def pki(tmp_path):
    """A CA, a server certificate for 127.0.0.1 and a client certificate."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=dcia-test-ca",
            "-keyout", "ca.key", "-out", "ca.pem", cwd=tmp_path)
    for name in ("server", "client"):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=tmp_path)
        (tmp_path / f"{name}.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "1", "-extfile", f"{name}.ext", "-out", f"{name}.pem",
                cwd=tmp_path)
    return tmp_path


def topology_file(tmp_path, addr: str, tls: str) -> str:
    path = tmp_path / "tls.toml"
    text = open("topologies/linear.toml").read()
    text = text.replace('grpc = "127.0.0.1:50001"\ndevice_id = 1',
                        f'grpc = "{addr}"\ndevice_id = 1\n{tls}')
    path.write_text(text)
    return path


def test_deploy_over_mutual_tls_and_refusal_without_a_client_certificate(pki, tmp_path):
    if find_bmv2() is None:
        pytest.skip("TLS is tested against BMv2 simple_switch_grpc, which is not installed here")
    addr = f"127.0.0.1:{free_tcp_port()}"
    config = SwitchConfig(ports={}, grpc_addr=addr, device_id=1, tls_args=(
        "--grpc-server-ssl", "--grpc-server-cacert", str(pki / "ca.pem"),
        "--grpc-server-cert", str(pki / "server.pem"), "--grpc-server-key", str(pki / "server.key"),
        "--grpc-server-with-client-auth"))
    with SwitchProcess("bmv2", config, stdout_path=tmp_path / "s1.out"):
        topo = load_topology(topology_file(
            tmp_path, addr, f'tls = {{ ca = "{pki}/ca.pem", cert = "{pki}/client.pem", '
                            f'key = "{pki}/client.key" }}'))
        layers = {1: deploy_layer()}
        target = deploy.Deployment(1, 1, (deploy.SwitchAssignment(
            endpoint_of(topo.switches["s1"]), layers),))
        (report,) = asyncio.run(deploy.apply(target))
        assert report.inserted == 1 + 4 + 2

        no_cert = load_topology(topology_file(tmp_path, addr, f'tls = {{ ca = "{pki}/ca.pem" }}'))
        target = deploy.Deployment(1, 1, (deploy.SwitchAssignment(
            endpoint_of(no_cert.switches["s1"]), layers),))
        with pytest.raises(SwitchUnreachable, match="switch s1"):
            asyncio.run(deploy.apply(target))


def deploy_layer():
    from dcia.layers import DenseLayer

    return DenseLayer([[1, 2, 3, 4]] * 4, [0] * 4, [1] * 4, [0] * 4)
