"""``dcia keygen``, ``dcia sign``, ``dcia audit`` and the manifest check of ``dcia deploy``:
partition integrity with signed manifests (controller.manifest).

    dcia keygen --out keys/ops                       # keys/ops.key (private), keys/ops.pub
    dcia keygen --tensor-keys keys/tensors.toml --topology T   # AES keys sealing tensors
    dcia sign --topology T --model M --calibration digits --key keys/ops.key --out run/digits.manifest.json
    dcia deploy --topology T --model M --calibration digits --manifest run/digits.manifest.json
    dcia audit --topology T --manifest run/digits.manifest.json

The topology names the keys it trusts (``[security] trusted_keys``, controller.topology);
with ``require_signed = true`` no deployment goes in without a manifest one of them
signed. ``dcia deploy --manifest`` deploys the manifest's path and assignment: it rebuilds
the deployment from the model (the policy checked as always) and writes nothing unless
every layer and every entry is the signed one. ``dcia audit`` reads every switch of the
topology and names each entry of the model that differs from the manifest; it exits 1
when it found any.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from pathlib import Path

import finsy as fy
from rich.console import Console
from rich.table import Table

from controller import session
from controller.deployment import Deployment, endpoint_of
from controller.manifest import (
    Finding,
    Manifest,
    check_matches,
    compare,
    generate_key,
    load_private_key,
    load_public_key,
    manifest_of,
    verify,
    write_key_pair,
)
from controller.planner import Constraints, Plan, evaluate
from controller.secrets import make_secrets
from controller.topology import Topology, load_topology
from dcia.artifacts import Pipeline
from dcia.errors import DciaError, IntegrityError
from dcia.layers import Layer


def trusted_keys(topology: Topology) -> dict:
    """The public keys the topology trusts, loaded from their files."""
    return {name: load_public_key(path) for name, path in topology.security.trusted_keys.items()}


def signed_manifest(path: Path, topology: Topology) -> Manifest:
    """The manifest at ``path``, verified against the topology's trusted keys."""
    if not topology.security.trusted_keys:
        raise IntegrityError(f"topology {topology.name} trusts no key ([security] trusted_keys): "
                             "no manifest can be verified")
    return verify(Manifest.load(path), trusted_keys(topology))


def manifest_plan(manifest: Manifest, layers: list[Layer], topology: Topology) -> Plan:
    """The plan a manifest was signed for: its assignment on its path."""
    route = topology.route(manifest.path)
    index = {node.name: i for i, node in enumerate(route.nodes)}
    missing = [n for n in manifest.assignment if n not in index]
    if len(manifest.assignment) != len(layers) or missing:
        raise IntegrityError(f"the manifest's assignment {list(manifest.assignment)} does not fit "
                             f"the model's {len(layers)} layers on path {route.name} ({route})")
    edge_layers = next((i for i, n in enumerate(manifest.assignment) if n != route.nodes[0].name),
                       len(layers))
    return evaluate(layers, route, [index[n] for n in manifest.assignment],
                    Constraints(min_edge_layers=min(1, edge_layers)))


def check_deployment(signed: Manifest, deployment: Deployment, layers: list[Layer], *,
                     model: str, topology: Topology, plan: Plan) -> None:
    """Raise IntegrityError unless ``deployment`` is exactly what ``signed`` covers."""
    built = manifest_of(deployment, layers, model=model, topology=topology.name, path=plan.route,
                        assignment=plan.assignment, schema=fy.P4Schema(Pipeline.default().p4info))
    check_matches(signed, built)


def sign(deployment: Deployment, layers: list[Layer], *, model: str, topology: Topology,
         plan: Plan, key_file: Path, key_name: str | None, out: Path) -> Manifest:
    manifest = manifest_of(deployment, layers, model=model, topology=topology.name,
                           path=plan.route, assignment=plan.assignment,
                           schema=fy.P4Schema(Pipeline.default().p4info))
    signed = manifest.sign(load_private_key(key_file), key_name or Path(key_file).stem)
    signed.save(out)
    return signed


async def audit(manifest: Manifest, topology: Topology) -> tuple[list[Finding], list[str]]:
    """Every difference between the switches and ``manifest``, and the switches that could
    not be read. Switches the manifest does not cover must hold nothing of the model."""
    names = list(topology.switches)

    async def read(name: str):
        try:
            return await session.held_entries(endpoint_of(topology.switches[name]),
                                              manifest.model_id, manifest.version)
        except DciaError as exc:  # unreachable, no pipeline, refused: one line in the report
            return exc

    results = await asyncio.gather(*(read(n) for n in names))
    findings, unreadable = [], []
    for name, held in zip(names, results):
        if isinstance(held, DciaError):
            unreadable.append(f"{name}: {held}")
            continue
        part = manifest.switches.get(name)
        findings += compare(name, part.entries if part else (), held)
    return findings, unreadable


# -------------------------------------------------------------------- commands --

def configure_keygen(parser: argparse.ArgumentParser) -> None:
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--out", type=Path, metavar="STEM",
                      help="an Ed25519 key pair for manifests: STEM.key (private, mode 0600) and STEM.pub")
    what.add_argument("--tensor-keys", type=Path, metavar="FILE",
                      help="a secrets file (mode 0600) with a new AES-256 key for every edge-cloud "
                           "pair of --topology, sealing the tensors of its sealed_models")
    parser.add_argument("--topology", type=Path, help="topology TOML file (with --tensor-keys)")


def run_keygen(args: argparse.Namespace, console: Console) -> int:
    if args.tensor_keys is not None:
        if args.topology is None:
            raise IntegrityError("--tensor-keys needs --topology: the keys are one per edge-cloud "
                                 "pair of its paths")
        topology = load_topology(args.topology)
        keys = make_secrets(topology, args.tensor_keys)
        console.print(f"wrote {args.tensor_keys} (keep it secret): keys for "
                      f"{', '.join(f'{e}-{c}' for e, c in keys)}; name it in the topology's "
                      "[security] tensor_keys", markup=False)
        return 0
    if args.out.with_suffix(".key").exists():
        raise IntegrityError(f"{args.out.with_suffix('.key')} exists; not overwriting a key")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    private, public = write_key_pair(generate_key(), args.out)
    console.print(f"wrote {private} (keep it secret) and {public} (name it in the topology's "
                  "[security] trusted_keys)", markup=False)
    return 0


def print_audit(console: Console, manifest: Manifest, findings: list[Finding],
                unreadable: list[str], topology_switches: Sequence[str]) -> None:
    title = (f"Audit of model {manifest.model_id} v{manifest.version} ({manifest.model}) "
             f"against the manifest signed by '{manifest.key}'")
    table = Table(title=title)
    for column in ("switch", "table", "entry", "finding"):
        table.add_column(column)
    for f in findings:
        table.add_row(f.switch, f.table, f.match, f.what)
    for line in unreadable:
        table.add_row(line.split(":", 1)[0], "", "", "unreadable:" + line.split(":", 1)[1])
    if findings or unreadable:
        console.print(table)
    checked = sum(len(p.entries) for p in manifest.switches.values())
    console.print(f"{checked} signed entries on {len(manifest.switches)} switches: "
                  f"{len(findings)} differ; {len(unreadable)} of {len(topology_switches)} "
                  "switches unreadable")
