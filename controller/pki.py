"""Certificates for P4Runtime over mutual TLS, and the controller commands' ``--tls DIR``.

The testbed locks its control plane down by default (draft-wang-cats-innetwork-infer-00,
security considerations): every switch's P4Runtime server listens on the loopback and
speaks only mutual TLS. At start it makes a throw-away PKI in ``<run dir>/tls``
(``make_pki``): a CA whose private key is never written (nothing can be signed by it
after the testbed started), a server certificate per switch for its P4Runtime address,
and the controller's client certificate::

    tls/ca.pem                          the CA certificate both sides trust
    tls/s1.pem, tls/s1.key, ...         each switch's server certificate and key (0600)
    tls/controller.pem, controller.key  the controller's client certificate and key (0600)

The switches get simple_switch_grpc's TLS options (``server_args``), with client
authentication; the controller, the testbed's own and any ``dcia`` command given
``--tls <run dir>/tls``, presents ``controller.pem``. A client without that certificate,
or in plain text, is refused by every switch.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     out = make_pki(Path(d), {"s1": "127.0.0.1:50001"})
    ...     sorted(p.name for p in out.iterdir())
    ['ca.pem', 'controller.key', 'controller.pem', 's1.key', 's1.pem']
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from controller.topology import Tls, Topology
from dcia.errors import TopologyError
from dcia.secret_files import write_secret

CA_FILE = "ca.pem"
CONTROLLER = "controller"
VALID_DAYS = 30


def make_pki(out: Path, switches: Mapping[str, str], *, days: int = VALID_DAYS) -> Path:
    """Write a new CA certificate, a server certificate for each switch (name -> its
    P4Runtime address ``host:port``) and the controller's client certificate into ``out``;
    returns ``out``. Files from an earlier run are replaced."""
    out.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "DCIA testbed CA")])
    ca = (_builder(ca_name, ca_name, ca_key.public_key(), now, days)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, key_cert_sign=True, crl_sign=True,
                                       encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    (out / CA_FILE).write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for name, address in switches.items():
        _leaf(out, name, ca, ca_key, now, days, ExtendedKeyUsageOID.SERVER_AUTH, _names(address))
    _leaf(out, CONTROLLER, ca, ca_key, now, days, ExtendedKeyUsageOID.CLIENT_AUTH,
          [x509.DNSName(CONTROLLER)])
    return out


def server_args(pki: Path, switch: str) -> tuple[str, ...]:
    """simple_switch_grpc's options (after ``--``) for ``switch``'s server certificate, with
    client authentication: both BMv2 and the embedded switch take them."""
    return ("--grpc-server-ssl", "--grpc-server-cert", str(pki / f"{switch}.pem"),
            "--grpc-server-key", str(pki / f"{switch}.key"),
            "--grpc-server-cacert", str(pki / CA_FILE), "--grpc-server-with-client-auth")


def controller_tls(pki: Path) -> Tls:
    """The controller's side: trust the CA, present the controller's certificate."""
    return Tls(ca=pki / CA_FILE, cert=pki / f"{CONTROLLER}.pem", key=pki / f"{CONTROLLER}.key")


def with_tls(topology: Topology, tls: Tls) -> Topology:
    """``topology`` with ``tls`` as the controller's side of every switch."""
    return replace(topology, switches={n: replace(s, tls=tls) for n, s in topology.switches.items()})


def add_tls_argument(parser: argparse.ArgumentParser) -> None:
    """``--tls DIR`` for a command that connects to the switches."""
    parser.add_argument("--tls", type=Path, metavar="DIR",
                        help="connect over mutual TLS with DIR/ca.pem, DIR/controller.pem and "
                             "DIR/controller.key (a testbed makes them in <run dir>/tls), in place "
                             "of the topology's tls")


def apply_tls_argument(topology: Topology, tls_dir: Path | None) -> Topology:
    """The topology a command connects with: ``--tls DIR`` replaces every switch's TLS."""
    if tls_dir is None:
        return topology
    tls = controller_tls(tls_dir)
    missing = [str(p) for p in (tls.ca, tls.cert, tls.key) if not p.is_file()]
    if missing:
        raise TopologyError(f"--tls {tls_dir}: {', '.join(missing)} missing (is a testbed with "
                            "mutual TLS running, and is DIR its <run dir>/tls?)")
    return with_tls(topology, tls)


def _names(address: str) -> list[x509.GeneralName]:
    """Subject alternative names for a P4Runtime address: its IP or host name (and, for
    the loopback, every way of writing it)."""
    host = address.rpartition(":")[0].strip("[]")
    try:
        ip = ipaddress.ip_address(host)
        names: list[x509.GeneralName] = [x509.IPAddress(ip)]
    except ValueError:
        names = [x509.DNSName(host)]
    if host in ("127.0.0.1", "::1", "localhost"):
        names = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                 x509.IPAddress(ipaddress.ip_address("::1")), x509.DNSName("localhost")]
    return names


def _builder(subject: x509.Name, issuer: x509.Name, public_key, now: datetime.datetime,
             days: int) -> x509.CertificateBuilder:
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
            .public_key(public_key).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days)))


def _leaf(out: Path, name: str, ca: x509.Certificate, ca_key, now: datetime.datetime, days: int,
          usage, names: list[x509.GeneralName]) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (_builder(subject, ca.subject, key.public_key(), now, days)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .sign(ca_key, hashes.SHA256()))
    (out / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    write_secret(out / f"{name}.key", key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
