"""P4Runtime over TLS, as the topology file asks: real certificates, mutual authentication.

The same deployment runs over mutual TLS against BMv2 and the embedded switch, both
started with simple_switch_grpc's TLS options; a raw gRPC client then checks what the
embedded switch accepts and refuses, with and without client authentication.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from finsy.proto import p4r

from controller import session
from controller.deployment import Deployment, SwitchAssignment, endpoint_of
from controller.session import SwitchUnreachable
from controller.topology import load_topology
from dcia.targets import SwitchConfig, SwitchProcess, find_bmv2, free_tcp_port
from tests.p4rt_client import Client, rpc_error

PROGRAM = Path(__file__).resolve().parents[1] / "unit" / "p4runtime" / "programs"
P4INFO = PROGRAM / "p4rt_features.p4info.txtpb"
BMV2_JSON = PROGRAM / "p4rt_features.json"


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


def tls_args(pki, *, client_auth: bool) -> tuple[str, ...]:
    """simple_switch_grpc's TLS options for the test PKI's server certificate."""
    args = ("--grpc-server-ssl", "--grpc-server-cert", str(pki / "server.pem"),
            "--grpc-server-key", str(pki / "server.key"))
    if client_auth:
        args += ("--grpc-server-cacert", str(pki / "ca.pem"), "--grpc-server-with-client-auth")
    return args


@pytest.mark.parametrize("target", ["bmv2", "embedded"])
def test_deploy_over_mutual_tls_and_refusal_without_a_client_certificate(pki, tmp_path, target):
    if target == "bmv2" and find_bmv2() is None:
        pytest.skip("BMv2 simple_switch_grpc is not installed here")
    addr = f"127.0.0.1:{free_tcp_port()}"
    config = SwitchConfig(ports={}, grpc_addr=addr, device_id=1,
                          tls_args=tls_args(pki, client_auth=True))
    with SwitchProcess(target, config, stdout_path=tmp_path / "s1.out"):
        topo = load_topology(topology_file(
            tmp_path, addr, f'tls = {{ ca = "{pki}/ca.pem", cert = "{pki}/client.pem", '
                            f'key = "{pki}/client.key" }}'))
        layers = {1: deploy_layer()}
        target = Deployment(1, 1, (SwitchAssignment(
            endpoint_of(topo.switches["s1"]), layers),))
        (report,) = asyncio.run(session.apply(target))
        assert report.inserted == 1 + 4 + 2

        no_cert = load_topology(topology_file(tmp_path, addr, f'tls = {{ ca = "{pki}/ca.pem" }}'))
        target = Deployment(1, 1, (SwitchAssignment(
            endpoint_of(no_cert.switches["s1"]), layers),))
        with pytest.raises(SwitchUnreachable, match="switch s1"):
            asyncio.run(session.apply(target))


def deploy_layer():
    from dcia.layers import DenseLayer

    return DenseLayer([[1, 2, 3, 4]] * 4, [0] * 4, [1] * 4, [0] * 4)


def credentials(pki, *, client_certificate: bool) -> grpc.ChannelCredentials:
    """A client trusting the test CA, presenting the client certificate or none."""
    ca = (pki / "ca.pem").read_bytes()
    if not client_certificate:
        return grpc.ssl_channel_credentials(root_certificates=ca)
    return grpc.ssl_channel_credentials(
        root_certificates=ca,
        private_key=(pki / "client.key").read_bytes(),
        certificate_chain=(pki / "client.pem").read_bytes(),
    )


def embedded_switch(pki, tmp_path, *, client_auth: bool) -> SwitchProcess:
    """dcia-switch over TLS on a free loopback port (a context manager)."""
    config = SwitchConfig(ports={}, grpc_addr=f"127.0.0.1:{free_tcp_port()}", device_id=1,
                          tls_args=tls_args(pki, client_auth=client_auth))
    return SwitchProcess("embedded", config, stdout_path=tmp_path / "s1.out")


def port_of(switch: SwitchProcess) -> int:
    return int(switch.config.grpc_addr.rsplit(":", 1)[1])


def controller_session(client: Client) -> None:
    """Arbitrate, push the pipeline, write and read back: the whole P4Runtime surface."""
    assert client.connect(election_id=1).status() == 0
    client.set_pipeline()
    client.write(p4r.Update(type=p4r.Update.MODIFY, entity=p4r.Entity(
        counter_entry=p4r.CounterEntry(
            counter_id=client.schema.counters["port_counter"].id,
            index=p4r.Index(index=1), data=p4r.CounterData(packet_count=5)))))
    [cell] = client.read_raw(p4r.Entity(counter_entry=p4r.CounterEntry(
        counter_id=client.schema.counters["port_counter"].id, index=p4r.Index(index=1))))
    assert cell.counter_entry.data.packet_count == 5


def test_the_embedded_switch_serves_tls_and_refuses_plaintext(pki, tmp_path):
    with embedded_switch(pki, tmp_path, client_auth=False) as switch:
        port = port_of(switch)
        tls = Client(port, P4INFO, BMV2_JSON, timeout=10,
                     credentials=credentials(pki, client_certificate=False))
        plain = Client(port, P4INFO, BMV2_JSON, timeout=5)
        try:
            controller_session(tls)
            error = rpc_error(plain.stub.Capabilities, p4r.CapabilitiesRequest(), timeout=5)
            assert error.code() == grpc.StatusCode.UNAVAILABLE
        finally:
            tls.close()
            plain.close()


def test_the_embedded_switch_with_client_auth_requires_a_certificate_from_its_ca(pki, tmp_path):
    with embedded_switch(pki, tmp_path, client_auth=True) as switch:
        port = port_of(switch)
        mutual = Client(port, P4INFO, BMV2_JSON, timeout=10,
                        credentials=credentials(pki, client_certificate=True))
        anonymous = Client(port, P4INFO, BMV2_JSON, timeout=5,
                           credentials=credentials(pki, client_certificate=False))
        try:
            controller_session(mutual)
            error = rpc_error(anonymous.stub.Capabilities, p4r.CapabilitiesRequest(), timeout=5)
            assert error.code() == grpc.StatusCode.UNAVAILABLE
        finally:
            mutual.close()
            anonymous.close()


def test_the_embedded_switch_refuses_a_client_certificate_from_another_ca(pki, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=other-ca",
            "-keyout", "client.key", "-out", "client.pem", cwd=other)
    with embedded_switch(pki, tmp_path, client_auth=True) as switch:
        stranger = Client(port_of(switch), P4INFO, BMV2_JSON, timeout=5,
                          credentials=grpc.ssl_channel_credentials(
                              root_certificates=(pki / "ca.pem").read_bytes(),
                              private_key=(other / "client.key").read_bytes(),
                              certificate_chain=(other / "client.pem").read_bytes()))
        try:
            error = rpc_error(stranger.stub.Capabilities, p4r.CapabilitiesRequest(), timeout=5)
            assert error.code() == grpc.StatusCode.UNAVAILABLE
        finally:
            stranger.close()


def listening_addresses(port: int) -> set[str]:
    """The local addresses of listening TCP sockets on `port` (from /proc/net/tcp*)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


#: 127.0.0.1, ::ffff:127.0.0.1 (gRPC's dual-stack socket) and ::1, as /proc/net/tcp* write them.
LOOPBACK = {"0100007F", "0000000000000000FFFF00000100007F", "00000000000000000000000001000000"}


def test_the_embedded_switch_listens_on_loopback_only_by_default(tmp_path):
    """Without --grpc-server-addr, dcia-switch binds 127.0.0.1:9559, not every address."""
    if listening_addresses(9559):
        pytest.skip("something else listens on port 9559, the default")
    proc = subprocess.Popen([sys.executable, "-m", "embedded_switch.cli", "--no-p4"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        ready = proc.stdout.readline()  # "dcia-switch ready", or why it could not start
        assert "ready" in ready, ready
        addresses = listening_addresses(9559)
        assert addresses and addresses <= LOOPBACK, addresses
    finally:
        proc.terminate()
        proc.wait(timeout=10)
