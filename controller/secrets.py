"""The secrets file of a topology: one AES-256 key per edge–cloud pair, sealing the tensors
of the policy's ``sealed_models`` end to end (dcia.sealing).

The topology names it (``[security] tensor_keys = "keys/tensors.toml"``, relative to the
topology file); it is TOML, readable by its owner only (a file others may read is refused,
as ssh refuses such a private key)::

    # AES-256-GCM keys sealing tensors between an edge and a cloud (dcia.sealing).
    [pairs]
    "h1-h2" = "<64 hex digits>"

``dcia keygen --tensor-keys FILE --topology T`` makes it, with a fresh key for every
edge–cloud pair of the topology's paths; the testbed makes it the same way when it is
missing. Each host gets only its own keys (``host_keys``: the peer's addresses -> key),
which the testbed writes into the run directory for the edge agent and the cloud server
(``--tensor-keys``).
"""

from __future__ import annotations

import stat
import tomllib
from collections.abc import Mapping
from pathlib import Path

from controller.topology import Topology
from dcia.capability import NodeKind
from dcia.errors import TopologyError
from dcia.sealing import KEY_BYTES, TensorKeys, new_key
from dcia.secret_files import write_secret

Pair = tuple[str, str]
"""(edge host, cloud host)."""


def pairs(topology: Topology) -> list[Pair]:
    """Every (edge, cloud) pair at the two ends of one of the topology's paths."""
    out = []
    for nodes in topology.paths.values():
        pair = (nodes[0], nodes[-1])
        if pair not in out:
            out.append(pair)
    return out


def make_secrets(topology: Topology, path: Path) -> dict[Pair, bytes]:
    """Write a new secrets file for ``topology`` at ``path`` (mode 0600; refuses to replace
    one that exists) and return its keys."""
    keys = {pair: new_key() for pair in pairs(topology)}
    path.parent.mkdir(parents=True, exist_ok=True)
    text = (f"# AES-256-GCM keys sealing tensors between an edge and a cloud (dcia.sealing),\n"
            f"# one per edge-cloud pair of topology {topology.name}. Secret: keep it 0600.\n"
            "[pairs]\n" + "".join(f'"{edge}-{cloud}" = "{key.hex()}"\n'
                                  for (edge, cloud), key in keys.items()))
    try:
        write_secret(path, text, exclusive=True)
    except FileExistsError:
        raise TopologyError(f"{path} exists: remove it first to make new tensor keys (every "
                            "edge and cloud then needs the new ones)") from None
    return keys


def load_secrets(topology: Topology, path: Path | None = None) -> dict[Pair, bytes]:
    """The keys of the topology's secrets file (``path``: another one); TopologyError saying
    what is wrong: missing, readable by others, a pair the topology does not have, a key
    that is not 32 bytes of hex, a pair of the topology without a key."""
    path = path or topology.security.tensor_keys
    if path is None:
        raise TopologyError(f"topology {topology.name} names no secrets file "
                            "([security] tensor_keys)")
    where = f"tensor keys {path}"
    try:
        mode = path.stat().st_mode
        text = path.read_text()
    except FileNotFoundError:
        raise TopologyError(f"{where}: no such file; make it with dcia keygen --tensor-keys {path} "
                            f"--topology <topology file>") from None
    except OSError as e:
        raise TopologyError(f"{where}: {e.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise TopologyError(f"{where}: others may read it (mode {stat.S_IMODE(mode):04o}); "
                            f"chmod 600 {path}")
    try:
        table = tomllib.loads(text).get("pairs")
    except tomllib.TOMLDecodeError as e:
        raise TopologyError(f"{where}: not TOML ({e})") from None
    if not isinstance(table, Mapping):
        raise TopologyError(f"{where}: give a [pairs] table of \"edge-cloud\" = \"hex key\"")
    known = {f"{e}-{c}": (e, c) for e, c in pairs(topology)}
    keys: dict[Pair, bytes] = {}
    for name, value in table.items():
        if name not in known:
            raise TopologyError(f"{where}: pair {name!r} is not an edge and a cloud of one path of "
                                f"topology {topology.name} (pairs: {', '.join(known)})")
        try:
            key = bytes.fromhex(value)
        except (TypeError, ValueError):
            raise TopologyError(f"{where}: the key of {name} is not hex") from None
        if len(key) != KEY_BYTES:
            raise TopologyError(f"{where}: the key of {name} is {len(key)} bytes; give {KEY_BYTES} "
                                f"({2 * KEY_BYTES} hex digits)")
        keys[known[name]] = key
    missing = [name for name, pair in known.items() if pair not in keys]
    if missing:
        raise TopologyError(f"{where}: no key for {', '.join(missing)}")
    return keys


def host_keys(topology: Topology, keys: Mapping[Pair, bytes], host: str) -> TensorKeys:
    """What ``host`` needs: for an edge, each of its clouds' addresses -> the pair's key; for
    a cloud, each of its edges' addresses."""
    kind = topology.hosts[host].capability.kind
    out: dict[str, bytes] = {}
    for (edge, cloud), key in keys.items():
        peer = cloud if kind is NodeKind.EDGE and edge == host else (
            edge if kind is NodeKind.CLOUD and cloud == host else None)
        if peer is not None:
            out.update((i.ip.split("/")[0], key) for i in topology.hosts[peer].interfaces)
    return TensorKeys(out)
