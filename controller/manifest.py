"""Signed partition manifests: what a deployment puts on each switch, signed with Ed25519
(draft-wang-cats-innetwork-infer-00, security considerations: model integrity).

A manifest names the model (id, version, name), each layer's parameters by digest, the
path and what every switch holds: its layers, and every table entry it must have, each by
table, match and the SHA-256 of the entry as P4Runtime encodes it. ``dcia sign`` makes
one with the operator's private key; ``dcia deploy --manifest`` verifies it against the
keys the topology trusts and rebuilds the deployment from the model, refusing it unless
every layer and every entry is the signed one, before anything is written; ``dcia
audit`` reads every switch back and names each entry that differs from it.

    >>> key = generate_key()
    >>> m = Manifest(1, 1, "digits", "linear", "main", ("h1", "s1"), ("ab" * 32, "cd" * 32),
    ...              {"s1": SwitchPart((1,), ())})
    >>> signed = m.sign(key, "ops")
    >>> verify(signed, {"ops": key.public_key()}).switches["s1"].layers
    (1,)
    >>> verify(signed, {"other": generate_key().public_key()})
    Traceback (most recent call last):
    ...
    dcia.errors.IntegrityError: the manifest is signed by key 'ops', which the topology does not trust (trusted: other)
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import finsy as fy
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from controller.deployment import Deployment, desired_entries
from dcia.errors import IntegrityError
from dcia.layers import Layer
from dcia.model import layer_digest
from dcia.secret_files import write_secret

FORMAT = "dcia-partition-manifest"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class EntryRecord:
    """One table entry a switch must hold: its table (full name), its match as text, and
    the SHA-256 of the whole entry as P4Runtime encodes it (match, action, parameters, meter)."""

    table: str
    match: str
    digest: str

    @property
    def key(self) -> tuple[str, str]:
        return self.table, self.match


@dataclass(frozen=True)
class SwitchPart:
    """What one switch holds of the model: its layers and its entries."""

    layers: tuple[int, ...]
    entries: tuple[EntryRecord, ...]


@dataclass(frozen=True)
class Manifest:
    model_id: int
    version: int
    model: str
    topology: str
    path: str
    assignment: tuple[str, ...]
    """The node that runs each layer (the plan's)."""
    layers: tuple[str, ...]
    """The digest of each layer's parameters (dcia.model.layer_digest), in model order."""
    switches: Mapping[str, SwitchPart]
    key: str | None = None
    """The name of the key that signed it (None: unsigned)."""
    signature: bytes | None = field(default=None, repr=False)

    def body(self) -> dict[str, Any]:
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "model_id": self.model_id,
                "version": self.version, "model": self.model, "topology": self.topology,
                "path": self.path, "assignment": list(self.assignment), "layers": list(self.layers),
                "switches": {name: {"layers": list(part.layers),
                                    "entries": [[e.table, e.match, e.digest] for e in part.entries]}
                             for name, part in sorted(self.switches.items())}}

    def payload(self) -> bytes:
        """The signed bytes: the body as canonical JSON."""
        return json.dumps(self.body(), sort_keys=True, separators=(",", ":")).encode()

    def sign(self, key: Ed25519PrivateKey, key_name: str) -> Manifest:
        return Manifest(**{**self.__dict__, "key": key_name, "signature": key.sign(self.payload())})

    def save(self, path: str | Path) -> Path:
        doc = {"manifest": self.body(),
               "signature": None if self.signature is None else
               {"key": self.key, "ed25519": base64.b64encode(self.signature).decode()}}
        path = Path(path)
        path.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Manifest:
        path = Path(path)
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            raise IntegrityError(f"manifest {path} not found") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise IntegrityError(f"manifest {path}: not a manifest file ({e})") from None
        try:
            body, sig = doc["manifest"], doc.get("signature")
            if body["format"] != FORMAT or body["format_version"] != FORMAT_VERSION:
                raise ValueError(f"format {body['format']!r} version {body['format_version']!r}")
            switches = {name: SwitchPart(tuple(int(i) for i in part["layers"]),
                                         tuple(EntryRecord(str(t), str(m), str(d))
                                               for t, m, d in part["entries"]))
                        for name, part in body["switches"].items()}
            return cls(int(body["model_id"]), int(body["version"]), str(body["model"]),
                       str(body["topology"]), str(body["path"]),
                       tuple(map(str, body["assignment"])), tuple(map(str, body["layers"])),
                       switches, None if not sig else str(sig["key"]),
                       None if not sig else base64.b64decode(sig["ed25519"], validate=True))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise IntegrityError(f"manifest {path}: malformed ({type(e).__name__}: {e})") from None


def verify(manifest: Manifest, trusted: Mapping[str, Ed25519PublicKey]) -> Manifest:
    """``manifest`` if a key of ``trusted`` signed exactly its content; else IntegrityError."""
    if manifest.signature is None or manifest.key is None:
        raise IntegrityError("the manifest is not signed; sign it with `dcia sign --key KEY`")
    key = trusted.get(manifest.key)
    if key is None:
        raise IntegrityError(f"the manifest is signed by key '{manifest.key}', which the topology "
                             f"does not trust (trusted: {', '.join(trusted) or 'none'})")
    try:
        key.verify(manifest.signature, manifest.payload())
    except InvalidSignature:
        raise IntegrityError(f"the manifest's signature by key '{manifest.key}' does not match its "
                             "content: it was changed after signing, or signed by another key") from None
    return manifest


# ------------------------------------------------------------------- entries --

def entry_record(entry: fy.P4TableEntry, schema: fy.P4Schema) -> EntryRecord:
    """``entry`` as the manifest names it, the same whether built by the controller or
    read back from a switch (both go through one P4Runtime encoding)."""
    canonical = fy.P4TableEntry.decode(entry.encode(schema), schema)
    message = canonical.encode(schema)
    table_entry = message.table_entry
    ordered = sorted(table_entry.match, key=lambda m: m.field_id)
    del table_entry.match[:]
    table_entry.match.extend(ordered)
    table = schema.tables[table_entry.table_id].name
    match = " ".join(f"{k}={_text(v)}" for k, v in sorted((canonical.match or {}).items()))
    if table_entry.priority:
        match += f" priority={table_entry.priority}"
    digest = hashlib.sha256(message.SerializeToString(deterministic=True)).hexdigest()
    return EntryRecord(table, match, digest)


def _text(value: Any) -> str:
    if isinstance(value, tuple):
        return "/".join(map(str, value))
    return str(value)


@dataclass(frozen=True)
class Finding:
    """One difference between a switch and the signed manifest."""

    switch: str
    table: str
    match: str
    what: str
    """``changed`` (same table and match, other content), ``extra`` or ``missing``."""

    def __str__(self) -> str:
        return f"switch {self.switch}: table {self.table}, entry {self.match}: {self.what}"


def compare(switch: str, signed: Iterable[EntryRecord], held: Iterable[EntryRecord]) -> list[Finding]:
    """Every entry of ``held`` (read back) that differs from ``signed``, and every signed
    entry the switch lacks."""
    want = {e.key: e for e in signed}
    have = {e.key: e for e in held}
    out = [Finding(switch, *k, "changed" if k in want else "extra")
           for k, e in have.items() if k not in want or want[k].digest != e.digest]
    out += [Finding(switch, *k, "missing") for k in want if k not in have]
    return sorted(out, key=lambda f: (f.table, f.match, f.what))


def manifest_of(deployment: Deployment, layers: Sequence[Layer], *, model: str,
                topology: str, path: str, assignment: Sequence[str],
                schema: fy.P4Schema) -> Manifest:
    """The (unsigned) manifest of ``deployment``: every switch's layers and entries."""
    parts = {a.endpoint.name: SwitchPart(
        tuple(sorted(a.layers)),
        tuple(sorted((entry_record(e, schema) for e in desired_entries(
            deployment.model_id, deployment.version, a)), key=lambda r: r.key)))
        for a in deployment.switches}
    return Manifest(deployment.model_id, deployment.version, model, topology, path,
                    tuple(assignment), tuple(layer_digest(layer) for layer in layers), parts)


def check_matches(signed: Manifest, built: Manifest) -> None:
    """Raise IntegrityError naming the first way ``built`` (from the model and topology
    at hand) differs from ``signed``: nothing may be deployed that was not signed."""
    for what in ("model_id", "version", "topology", "path", "assignment"):
        if getattr(signed, what) != getattr(built, what):
            raise IntegrityError(f"the manifest is for {what} {getattr(signed, what)!r}, this "
                                 f"deployment's is {getattr(built, what)!r}")
    if len(signed.layers) != len(built.layers):
        raise IntegrityError(f"the manifest names {len(signed.layers)} layers, the model has "
                             f"{len(built.layers)}")
    for i, (a, b) in enumerate(zip(signed.layers, built.layers)):
        if a != b:
            raise IntegrityError(f"layer {i} of the model differs from the signed one "
                                 f"(sha256 {b[:12]}…, signed {a[:12]}…)")
    if set(signed.switches) != set(built.switches):
        raise IntegrityError(f"the manifest covers switches {', '.join(sorted(signed.switches))}, "
                             f"this deployment {', '.join(sorted(built.switches))}")
    for name, part in signed.switches.items():
        findings = compare(name, part.entries, built.switches[name].entries)
        if findings:
            raise IntegrityError(f"{findings[0]} (against the signed manifest; "
                                 f"{len(findings)} difference(s))")


# ---------------------------------------------------------------------- keys --

def generate_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def write_key_pair(key: Ed25519PrivateKey, stem: str | Path) -> tuple[Path, Path]:
    """``stem.key`` (PEM PKCS#8, readable by its owner only) and ``stem.pub`` (PEM)."""
    stem = Path(stem)
    private, public = stem.with_suffix(".key"), stem.with_suffix(".pub")
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    write_secret(private, pem)
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    key = _load(path, serialization.load_pem_private_key, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise IntegrityError(f"key {path} is not an Ed25519 private key")
    return key


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    key = _load(path, serialization.load_pem_public_key)
    if not isinstance(key, Ed25519PublicKey):
        raise IntegrityError(f"key {path} is not an Ed25519 public key")
    return key


def _load(path: str | Path, loader, **kw):
    try:
        return loader(Path(path).read_bytes(), **kw)
    except FileNotFoundError:
        raise IntegrityError(f"key file {path} not found (make a pair with `dcia keygen`)") from None
    except (OSError, ValueError, TypeError) as e:
        raise IntegrityError(f"key file {path}: not a PEM key ({e})") from None
