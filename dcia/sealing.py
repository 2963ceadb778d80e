"""Sealed tensors: AES-GCM end to end between an edge and a cloud (draft-wang-cats-innetwork-infer-00,
security considerations: data confidentiality).

Where a model's tensors must not be read by the network elements they cross, the edge
seals each request to the cloud with the key of that edge–cloud pair, and the cloud seals
its answer with the same key. A sealed datagram is the 16-byte DCIA header, with the flag
``ENCRYPTED`` set and ``n_elems`` counting the sealed bytes, then::

    nonce (12 bytes, random) | ciphertext (as long as the tensor) | GCM tag (16 bytes)

The ciphertext is the tensor's int8 elements, encrypted; the tag also authenticates the
header fields that say what the tensor is (version, the flags RESULT, ERROR, NO_OFFLOAD and
ENCRYPTED, model id and version, next layer, request id, ``n_elems``), so a sealed request
cannot be turned into an answer, moved to another request id or model, or cut short
without the receiver noticing. ``net_layers``, ``status``, ``reserved`` and the flag
``MALFORMED`` are not covered: they are what a switch may write on a packet it does not
compute. Switches never compute on a packet with ``ENCRYPTED`` (p4src/dcia.p4,
``FLAGS_NO_COMPUTE``): for them the sealed bytes are an opaque tensor of more than 16
elements, forwarded as ordinary traffic. The planner knows it (``[policy] sealed_models``
keeps every switch out of such a model, controller.policy).

The datagram stays well formed (dcia.wire.malformation: ``n_elems`` is the byte count that
follows), 28 bytes longer than the tensor; a tensor of more than
``MAX_SEALED_ELEMS`` elements cannot be sealed. Nonces are random (96 bits): with one key
per pair, the chance that two of 2**32 messages share one is below 2**-32.

    >>> from dcia.wire import DCIA, peek
    >>> key = bytes(range(32))
    >>> plain = bytes(DCIA(model_id=1, model_version=1, request_id=9, next_layer=1, elems=[1, -2, 3]))
    >>> sealed = seal(plain, key)
    >>> Flag(peek(sealed).flags), peek(sealed).n_elems, len(sealed) - len(plain)
    (<Flag.ENCRYPTED: 16>, 31, 28)
    >>> unseal(sealed, key) == plain
    True
    >>> unseal(sealed[:-1] + bytes([sealed[-1] ^ 1]), key)
    Traceback (most recent call last):
    ...
    dcia.sealing.SealError: request 9: the sealed tensor does not authenticate (wrong key, or changed on the way)

The keys of one host (its peers' addresses -> key) are ``TensorKeys``, a JSON file the
testbed writes from the topology's secrets file (controller.secrets).
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from dcia.errors import DciaError
from dcia.secret_files import write_secret
from dcia.wire import HEADER_BYTES, MAX_WIRE_ELEMS, Flag

KEY_BYTES = 32
"""AES-256."""
NONCE_BYTES = 12
TAG_BYTES = 16
OVERHEAD = NONCE_BYTES + TAG_BYTES
"""Bytes a sealed tensor adds to the datagram."""
MAX_SEALED_ELEMS = MAX_WIRE_ELEMS - OVERHEAD
"""The longest tensor that can be sealed: its sealed form is at most MAX_WIRE_ELEMS bytes."""

_HEADER = struct.Struct("!BBHHBBIHBB")
"""ver, flags, model_id, model_version, next_layer, net_layers, request_id, n_elems,
status, reserved (dcia.wire.DCIA)."""
_AUTHENTICATED_FLAGS = Flag.RESULT | Flag.ERROR | Flag.NO_OFFLOAD | Flag.ENCRYPTED


class SealError(DciaError):
    """A tensor that cannot be sealed, or a sealed one that cannot be opened."""


def new_key() -> bytes:
    """A fresh random AES-256 key."""
    return AESGCM.generate_key(bit_length=256)


def is_sealed(payload: bytes) -> bool:
    """Whether a DCIA payload carries the flag ``ENCRYPTED``."""
    return len(payload) > 1 and bool(payload[1] & Flag.ENCRYPTED)


def seal(payload: bytes, key: bytes, *, nonce: bytes | None = None) -> bytes:
    """The sealed form of a well-formed plain DCIA payload (``nonce``: for tests only)."""
    if is_sealed(payload):
        raise SealError("the payload is sealed already")
    if len(payload) < HEADER_BYTES:
        raise SealError(f"a DCIA payload of {len(payload)} bytes has no header to seal")
    fields = list(_HEADER.unpack_from(payload))
    tensor = payload[HEADER_BYTES:]
    if len(tensor) != fields[7]:
        raise SealError(f"request {fields[6]}: the header says {fields[7]} elements, "
                        f"{len(tensor)} follow; only a well-formed tensor can be sealed")
    if len(tensor) > MAX_SEALED_ELEMS:
        raise SealError(f"request {fields[6]}: a tensor of {len(tensor)} elements cannot be "
                        f"sealed (at most {MAX_SEALED_ELEMS}: sealing adds {OVERHEAD} bytes to "
                        f"a limit of {MAX_WIRE_ELEMS})")
    fields[1] |= Flag.ENCRYPTED
    fields[7] = len(tensor) + OVERHEAD
    header = _HEADER.pack(*fields)
    nonce = os.urandom(NONCE_BYTES) if nonce is None else nonce
    return header + nonce + AESGCM(_check_key(key)).encrypt(nonce, tensor, _associated(header))


def unseal(payload: bytes, key: bytes) -> bytes:
    """The plain DCIA payload of a sealed one: the header without ``ENCRYPTED``, ``n_elems``
    the tensor's length, then the tensor. SealError when it is not sealed, is cut short or
    does not authenticate with ``key``."""
    if not is_sealed(payload):
        raise SealError("the payload is not sealed (no ENCRYPTED flag)")
    if len(payload) < HEADER_BYTES + OVERHEAD:
        raise SealError(f"a sealed payload of {len(payload)} bytes is shorter than the header "
                        f"and the {OVERHEAD} bytes of nonce and tag")
    header = payload[:HEADER_BYTES]
    fields = list(_HEADER.unpack(header))
    nonce, sealed = payload[HEADER_BYTES:HEADER_BYTES + NONCE_BYTES], payload[HEADER_BYTES + NONCE_BYTES:]
    try:
        tensor = AESGCM(_check_key(key)).decrypt(nonce, sealed, _associated(header))
    except InvalidTag:
        raise SealError(f"request {fields[6]}: the sealed tensor does not authenticate (wrong "
                        "key, or changed on the way)") from None
    fields[1] &= ~Flag.ENCRYPTED & 0xFF
    fields[7] = len(tensor)
    return _HEADER.pack(*fields) + tensor


def _associated(header: bytes) -> bytes:
    """The header as the tag covers it: what a switch may change on a packet it does not
    compute (``net_layers``, ``status``, ``reserved``, ``MALFORMED``) set to 0."""
    ver, flags, model_id, version, next_layer, _, request_id, n_elems, _, _ = _HEADER.unpack(header)
    return _HEADER.pack(ver, flags & _AUTHENTICATED_FLAGS, model_id, version, next_layer, 0,
                        request_id, n_elems, 0, 0)


def _check_key(key: bytes) -> bytes:
    if len(key) != KEY_BYTES:
        raise SealError(f"a tensor key is {KEY_BYTES} bytes (AES-256), not {len(key)}")
    return key


class TensorKeys:
    """One host's keys: peer address -> AES-256 key (the cloud's addresses on an edge, the
    edge's on a cloud).

    On disk: JSON ``{"10.0.2.2": "<64 hex digits>", ...}``, readable by its owner only.
    """

    def __init__(self, keys: Mapping[str, bytes]):
        self.keys = {peer: _check_key(bytes(k)) for peer, k in keys.items()}

    def __contains__(self, peer: str) -> bool:
        return peer in self.keys

    def __len__(self) -> int:
        return len(self.keys)

    def seal(self, payload: bytes, peer: str) -> bytes:
        return seal(payload, self._key(peer))

    def unseal(self, payload: bytes, peer: str) -> bytes:
        return unseal(payload, self._key(peer))

    def _key(self, peer: str) -> bytes:
        key = self.keys.get(peer)
        if key is None:
            raise SealError(f"no tensor key for {peer} (keys for: {', '.join(sorted(self.keys)) or 'none'})")
        return key

    def save(self, path: str | Path) -> Path:
        """Write the keys (mode 0600, created so: never readable by others on the way)."""
        return write_secret(Path(path), json.dumps(
            {peer: key.hex() for peer, key in sorted(self.keys.items())}, indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> TensorKeys:
        """The keys of a file ``save`` wrote; SealError naming the file and what is wrong."""
        path = Path(path)
        try:
            raw = json.loads(path.read_text())
        except OSError as e:
            raise SealError(f"tensor keys {path}: {e.strerror}") from None
        except json.JSONDecodeError as e:
            raise SealError(f"tensor keys {path}: not JSON ({e})") from None
        if not isinstance(raw, dict) or not raw:
            raise SealError(f"tensor keys {path}: give an object of peer address -> hex key")
        keys = {}
        for peer, text in raw.items():
            try:
                keys[peer] = bytes.fromhex(text)
            except (TypeError, ValueError):
                raise SealError(f"tensor keys {path}: the key of {peer} is not hex") from None
            if len(keys[peer]) != KEY_BYTES:
                raise SealError(f"tensor keys {path}: the key of {peer} is {len(keys[peer])} "
                                f"bytes; give {KEY_BYTES} (64 hex digits)")
        return cls(keys)
