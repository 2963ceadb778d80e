"""The ``dcia`` command line.

Each subcommand is one :class:`Command`: a function that declares its arguments and one
that runs it. ``COMMANDS`` lists them; adding a subcommand means writing those two
functions and adding a ``Command`` to the tuple.

    dcia plan --topology topologies/linear.toml --model models/digits.onnx
    dcia plan --topology topologies/linear.toml --model layers.toml --forbid s1 --json
    dcia deploy --topology topologies/linear.toml --model models/digits.onnx --calibration digits
    dcia status --topology topologies/linear.toml
    dcia undeploy --topology topologies/linear.toml --model-id 1 --version 1
    dcia routes --topology topologies/linear.toml
    dcia top --topology topologies/linear.toml --once

Exit status, the same for every subcommand: 0 done; 2 an error (a DciaError: bad input,
an unreachable or refusing switch, a rolled-back deployment), printed as one line on
stderr, ``error: ...``, like argparse's usage errors; 1 a command that ran to its end
and reports a failure (``dcia testbed run`` that lost a node, after writing its results;
``dcia shell --command`` whose code raised; ``dcia audit`` that found entries differing
from the signed manifest).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from controller import session
from controller.deployment import Deployment, SwitchAssignment, endpoint_of, from_plan, spread_weights
from controller.entries import DROP_NAMES, STAT_NAMES
from controller.planner import (
    Constraints,
    Forbid,
    Objective,
    Plan,
    Stage,
    evaluate,
    plan,
    read_layer_list,
)
from controller.session import PushPolicy
from controller.pki import add_tls_argument, apply_tls_argument
from controller.topology import Route, Topology, check_tls_files, load_topology
from dcia.capability import NodeKind
from dcia.errors import DciaError, IntegrityError, ModelImportError, PlanError
from dcia.layers import LayerShape
from dcia.wire import MAX_MODEL_ID

log = logging.getLogger(__name__)

EXIT_USER_ERROR = 2


@dataclass(frozen=True)
class Command:
    """A subcommand: ``configure`` adds its arguments, ``run`` does the work and returns the exit status."""

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, Console], int]


# ------------------------------------------------------------------------ plan --


def configure_plan(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--topology", required=True, type=Path, help="topology TOML file (topologies/*.toml)")
    parser.add_argument(
        "--model", required=True, type=Path,
        help="ONNX model (.onnx), saved quantized model (.json), or layer list (.toml/.json "
             "with [[layers]] of kind, n_in, n_out)",
    )
    parser.add_argument("--path", help="path of the topology to plan on (default: its first)")
    parser.add_argument(
        "--objective", choices=[str(o) for o in Objective], default=str(Objective.LATENCY),
        help="minimize the latency of one request, or maximize throughput (default: latency)",
    )
    parser.add_argument(
        "--forbid", action="append", default=[], metavar="WHERE[:LAYERS]",
        help="policy: node name or kind (edge, switch, cloud) that must not run layers, "
             "optionally only LAYERS like 1-3 or 0,2 (repeatable)",
    )
    parser.add_argument("--max-layers-per-switch", type=int, metavar="N", help="at most N layers on each switch")
    parser.add_argument(
        "--edge-layers", type=int, default=1, metavar="N",
        help="the first N layers run on the edge (default 1: the raw input never leaves the edge)",
    )
    parser.add_argument("--model-id", type=_wire_id, help="model id on the wire, 0..65535 "
                        "(default: the model's; the policy rules of that model apply, every "
                        "rule for a layer list)")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")


def run_plan(args: argparse.Namespace, console: Console) -> int:
    topology = load_topology(args.topology)
    name, layers = read_model_shapes(args.model)
    log.info("model %s: %s", name, ", ".join(f"{layer.kind} {layer.n_in}->{layer.n_out}" for layer in layers))
    route = topology.route(args.path)
    constraints = _constraints(args, topology, route, args.model_id, len(layers))
    best = plan(layers, route, constraints)
    baselines = _baselines(layers, route, constraints)
    if args.json:
        body = {"model": name, "layers": len(layers), **best.to_dict(),
                "baselines": {k: (p.to_dict() if p else None) for k, p in baselines.items()},
                "policy": policy_exclusions(constraints)}
        console.file.write(json.dumps(body, indent=2) + "\n")
    else:
        _print_plan(console, name, layers, route, best, baselines, constraints)
    return 0


def _constraints(args: argparse.Namespace, topology: Topology, route: Route,
                 model_id: int | None, n_layers: int) -> Constraints:
    """The command's constraints with the topology's policy for ``route`` added."""
    base = Constraints(
        min_edge_layers=args.edge_layers,
        forbid=tuple(parse_forbid(text, topology, n_layers) for text in args.forbid),
        max_layers_per_switch=args.max_layers_per_switch,
        objective=Objective(args.objective),
    )
    return topology.policy.constraints(base, route, model_id, n_layers)


def policy_exclusions(constraints: Constraints) -> dict[str, dict[str, list[int]]]:
    """Rule -> node -> the layers the topology's policy keeps off that node."""
    out: dict[str, dict[str, list[int]]] = {}
    for f in constraints.forbid:
        if f.rule:
            out.setdefault(f.rule, {})[f.where] = sorted(f.layers) if f.layers is not None else []
    return out


def read_model_shapes(path: Path) -> tuple[str, list[LayerShape]]:
    """The model's name and layer shapes from an ONNX file, a saved quantized model or a layer list."""
    if not path.is_file():
        raise ModelImportError(f"model file {path} not found")
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        try:
            from controller.onnx_import import import_onnx
        except ImportError as e:
            raise ModelImportError(
                f"cannot read {path}: ONNX import is unavailable ({e}); give a layer list (.toml or .json)"
            ) from None
        from controller.quantize import prepare

        # the layers as they will be deployed: a scaler too wide for a switch is folded
        # into the next dense layer
        model = prepare(import_onnx(path))
        return model.name, list(model.layers)
    if suffix == ".json" and _is_saved_model(path):
        from dcia.model import QuantizedModel

        model = QuantizedModel.load(path)
        return model.name, list(model.layers)
    if suffix in (".json", ".toml"):
        return path.stem, list(read_layer_list(path))
    raise ModelImportError(f"model file {path}: unknown format {suffix!r} (expected .onnx, .json or .toml)")


def _is_saved_model(path: Path) -> bool:
    """Whether a JSON file is a saved model (it names its format) rather than a layer list."""
    try:
        body = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(body, dict) and "format" in body


def parse_forbid(text: str, topology: Topology, n_layers: int) -> Forbid:
    """``s2``, ``cloud``, ``s2:1-3`` or ``switch:0,2`` as a policy rule, checked against the topology."""
    where, sep, spec = text.partition(":")
    kinds = [str(k) for k in NodeKind]
    if where not in topology.node_names and where not in kinds:
        raise PlanError(
            f"--forbid {text}: {where} is neither a node of topology {topology.name} "
            f"({', '.join(topology.node_names)}) nor a kind ({', '.join(kinds)})"
        )
    if not sep:
        return Forbid(where)
    layers: set[int] = set()
    try:
        for part in spec.split(","):
            low, dash, high = part.partition("-")
            layers.update(range(int(low), int(high if dash else low) + 1))
    except ValueError:
        raise PlanError(f"--forbid {text}: layers must look like 1-3 or 0,2") from None
    outside = sorted(i for i in layers if not 0 <= i < n_layers)
    if outside:
        raise PlanError(f"--forbid {text}: the model has layers 0..{n_layers - 1}, not {outside}")
    return Forbid(where, frozenset(layers))


def _baselines(layers: Sequence[LayerShape], route: Route, constraints: Constraints) -> dict[str, Plan | None]:
    """The edge-only and edge-then-cloud plans, for comparison (None where not allowed)."""
    n, k, cloud = len(layers), constraints.min_edge_layers, len(route.nodes) - 1
    out = {}
    for label, positions in (("edge only", [0] * n), ("edge + cloud", [0] * k + [cloud] * (n - k))):
        try:
            out[label] = evaluate(layers, route, positions, constraints)
        except PlanError:
            out[label] = None
    return out


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f} ms"


def _layer_range(stage: Stage) -> str:
    if not stage.layers:
        return "—"
    first, last = stage.layers[0], stage.layers[-1]
    return str(first) if first == last else f"{first}–{last}"


def _print_plan(
    console: Console, name: str, layers: Sequence[LayerShape], route: Route, best: Plan,
    baselines: dict[str, Plan | None], constraints: Constraints,
) -> None:
    console.print(
        f"[bold]{name}[/] ({len(layers)} layers) on path [bold]{route.name}[/] ({route}), "
        f"objective {best.objective}"
    )
    table = Table(show_edge=True)
    for column, justify in (("stage", "right"), ("node", "left"), ("layers", "left"), ("sizes", "left"),
                            ("compute", "right"), ("hop to next", "right")):
        table.add_column(column, justify=justify)
    for k, stage in enumerate(best.stages):
        sizes = "→".join(str(n) for n in [layers[stage.start].n_in, *(layers[i].n_out for i in stage.layers)]) \
            if stage.layers else "forwards"
        hop = best.hops[k] if k < len(best.hops) else None
        table.add_row(
            str(k + 1), f"{stage.node} ({stage.kind})", _layer_range(stage), sizes, _ms(stage.compute_s),
            f"{_ms(hop.seconds)} ({hop.nbytes} B)" if hop else "—",
        )
    if best.answer:
        table.add_row(
            "", f"{best.answer[0].src} → {best.answer[-1].dst}", "answer", f"{best.answer[0].elems} elements",
            "", f"{_ms(sum(h.seconds for h in best.answer))} ({best.answer[0].nbytes} B)",
        )
    console.print(table)
    unused = [n.name for n in route.nodes[len(best.stages):]]
    if unused:
        console.print(f"Not visited: {', '.join(unused)} ({best.stages[-1].node} computes the last layer and answers).")
    console.print(
        f"Predicted latency [bold]{_ms(best.latency_s)}[/]; bottleneck {_ms(best.bottleneck_s)} "
        f"(≈ {1 / best.bottleneck_s:,.0f} requests/s)."
    )
    for rule, nodes in policy_exclusions(constraints).items():
        kept = "; ".join(f"{node} from layers {', '.join(map(str, ls))}" if ls else f"{node} from every layer"
                         for node, ls in nodes.items())
        console.print(f"Policy rule '{rule}' keeps {kept}.")
    if baselines:
        compared = ", ".join(
            f"{label} {_ms(p.latency_s) if p else 'not allowed'}" for label, p in baselines.items()
        )
        console.print(f"Compared with: {compared}.")


# ------------------------------------------------------- deploy, undeploy, status --


def configure_deploy(parser: argparse.ArgumentParser) -> None:
    configure_plan(parser)
    parser.add_argument(
        "--calibration", metavar="SAMPLES",
        help="with an .onnx model: float input samples to calibrate on, a .npy file of shape "
             "(n, inputs), or 'digits' for the demo model's training set",
    )
    parser.add_argument("--version", type=_wire_id, help="model version, 0..65535 "
                        "(default: the model's)")
    parser.add_argument(
        "--spread", type=spread_weights, metavar="PATH=W,PATH=W[,...]",
        help="spread what leaves the network over these paths' clouds by weight, like "
             "cloud-a=3,cloud-b=1 (the paths must part at a switch; --path is one of them)",
    )
    parser.add_argument(
        "--push-pipeline", choices=[p.value for p in PushPolicy], default=PushPolicy.IF_MISSING.value,
        help="load the DCIA P4 program onto switches: if-missing (default), always, never",
    )
    parser.add_argument(
        "--manifest", type=Path, metavar="FILE",
        help="deploy exactly what this signed manifest covers (dcia sign): its path and "
             "assignment, verified against the topology's trusted keys before anything is "
             "written (required where the topology says require_signed)",
    )
    add_tls_argument(parser)


def load_quantized(path: Path, calibration: str | None):
    """A QuantizedModel from a saved .json, or an .onnx model calibrated on samples."""
    from dcia.model import QuantizedModel

    if not path.is_file():
        raise ModelImportError(f"model file {path} not found")
    if path.suffix.lower() == ".json":
        return QuantizedModel.load(path)
    if path.suffix.lower() != ".onnx":
        raise ModelImportError(f"model file {path}: deploy takes an .onnx or a saved quantized .json")
    if calibration is None:
        raise ModelImportError(f"{path} is a float model: give --calibration SAMPLES.npy (or "
                               "'digits' for the demo model) to quantize it")
    from controller.onnx_import import import_onnx
    from controller.quantize import load_calibration, quantize

    if calibration == "digits":
        from controller.demo_model import load_demo

        return load_demo(path).quantized
    return quantize(import_onnx(path), load_calibration(calibration))


def _model_for(args: argparse.Namespace):
    """The model to deploy and its id and version on the wire."""
    model = load_quantized(args.model, args.calibration)
    model_id = args.model_id if args.model_id is not None else model.model_id
    version = args.version if args.version is not None else model.version
    for what, value in (("model id", model_id), ("version", version)):
        if not 0 <= value <= MAX_MODEL_ID:
            raise ModelImportError(f"{args.model}: {what} {value} does not fit the DCIA header "
                                   f"(0..{MAX_MODEL_ID}); give --model-id/--version")
    return model, model_id, version


def _planned(args: argparse.Namespace, console: Console, topology: Topology, model,
             model_id: int) -> Plan:
    """The plan of ``dcia deploy`` and ``dcia sign``, printed (or as JSON)."""
    route = topology.route(args.path)
    constraints = _constraints(args, topology, route, model_id, len(model.layers))
    best = plan(model.layers, route, constraints)
    if args.json:
        console.file.write(json.dumps({"model": model.name, **best.to_dict(),
                                       "policy": policy_exclusions(constraints)}, indent=2) + "\n")
    else:
        _print_plan(console, model.name, model.layers, route, best, {}, constraints)
    return best


def run_deploy(args: argparse.Namespace, console: Console) -> int:
    from controller import integrity

    topology = _topology_to_connect(args)
    if args.manifest is None and topology.security.require_signed:
        raise IntegrityError(f"topology {topology.name} requires signed deployments "
                             "([security] require_signed): give --manifest FILE (dcia sign)")
    signed = integrity.signed_manifest(args.manifest, topology) if args.manifest else None
    model, model_id, version = _model_for(args)
    if signed is None:
        best = _planned(args, console, topology, model, model_id)
    else:
        if args.path not in (None, signed.path):
            raise IntegrityError(f"the manifest was signed for path {signed.path}, not {args.path}")
        best = integrity.manifest_plan(signed, model.layers, topology)
    target = from_plan(best, model.layers, topology, model_id=model_id, version=version,
                       spread_over=args.spread)
    if signed is not None:
        integrity.check_deployment(signed, target, model.layers, model=model.name,
                                   topology=topology, plan=best)
        console.print(f"manifest {args.manifest}: signed by '{signed.key}', matches the model "
                      "and the deployment")
    reports = asyncio.run(session.apply(target, push=PushPolicy(args.push_pipeline)))
    table = Table(title=f"Deployed {model.name} as model {model_id} v{version}")
    for column in ("switch", "layers", "inserted", "modified", "deleted"):
        table.add_column(column, justify="left" if column in ("switch", "layers") else "right")
    for a, r in zip(target.switches, reports):
        table.add_row(r.name, _indices(a.layers), str(r.inserted), str(r.modified), str(r.deleted))
    console.print(table)
    return 0


def configure_sign(parser: argparse.ArgumentParser) -> None:
    configure_plan(parser)
    parser.add_argument("--calibration", metavar="SAMPLES",
                        help="with an .onnx model: samples to calibrate on (as for dcia deploy)")
    parser.add_argument("--version", type=_wire_id, help="model version, 0..65535 (default: the model's)")
    parser.add_argument("--spread", type=spread_weights, metavar="PATH=W,PATH=W[,...]",
                        help="as for dcia deploy: the manifest covers the spread's steering")
    parser.add_argument("--key", required=True, type=Path, help="Ed25519 private key (dcia keygen)")
    parser.add_argument("--key-name", help="the name the topology trusts the key under "
                        "(default: the key file's stem)")
    parser.add_argument("--out", required=True, type=Path, help="write the signed manifest here")


def run_sign(args: argparse.Namespace, console: Console) -> int:
    from controller import integrity

    topology = load_topology(args.topology)
    model, model_id, version = _model_for(args)
    best = _planned(args, console, topology, model, model_id)
    target = from_plan(best, model.layers, topology, model_id=model_id, version=version,
                       spread_over=args.spread)
    signed = integrity.sign(target, model.layers, model=model.name, topology=topology, plan=best,
                            key_file=args.key, key_name=args.key_name, out=args.out)
    entries = sum(len(p.entries) for p in signed.switches.values())
    console.print(f"signed manifest of model {model_id} v{version} ({entries} entries on "
                  f"{len(signed.switches)} switches) with key '{signed.key}': {args.out}")
    return 0


def configure_audit(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--topology", required=True, type=Path, help="topology TOML file")
    add_tls_argument(parser)
    parser.add_argument("--manifest", required=True, type=Path, help="the signed manifest (dcia sign)")


def run_audit(args: argparse.Namespace, console: Console) -> int:
    from controller import integrity

    topology = _topology_to_connect(args)
    manifest = integrity.signed_manifest(args.manifest, topology)
    findings, unreadable = asyncio.run(integrity.audit(manifest, topology))
    integrity.print_audit(console, manifest, findings, unreadable, list(topology.switches))
    return 1 if findings or unreadable else 0


def configure_keygen(parser: argparse.ArgumentParser) -> None:
    from controller import integrity

    integrity.configure_keygen(parser)


def run_keygen(args: argparse.Namespace, console: Console) -> int:
    from controller import integrity

    return integrity.run_keygen(args, console)


def configure_undeploy(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--topology", required=True, type=Path, help="topology TOML file")
    add_tls_argument(parser)
    parser.add_argument("--model-id", required=True, type=_wire_id, help="0..65535")
    parser.add_argument("--version", required=True, type=_wire_id, help="0..65535")


def run_undeploy(args: argparse.Namespace, console: Console) -> int:
    topology = _topology_to_connect(args)
    target = Deployment(args.model_id, args.version, tuple(
        SwitchAssignment(endpoint_of(sw)) for sw in topology.switches.values()))
    reports = asyncio.run(session.apply(target, push=PushPolicy.NEVER))
    if not any(r.deleted for r in reports):
        raise DciaError(f"model {args.model_id} v{args.version} is not deployed on any switch of "
                        f"{topology.name}; nothing was removed (`dcia status` shows what is)")
    removed = ", ".join(f"{r.name}: {r.deleted}" for r in reports)
    console.print(f"model {args.model_id} v{args.version} removed (entries deleted: {removed})")
    return 0


def _topology_to_connect(args: argparse.Namespace) -> Topology:
    """The topology of a command that talks to its switches (``--topology``, with ``--tls``
    replacing its TLS, controller.pki): its TLS files must be there."""
    topology = apply_tls_argument(load_topology(args.topology), args.tls)
    check_tls_files(topology)
    return topology


def _wire_id(text: str) -> int:
    """An argparse type: a model id or version, which the DCIA header carries in 16 bits."""
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not 0 <= value <= MAX_MODEL_ID:
        raise argparse.ArgumentTypeError(f"{value} is out of range: the DCIA header carries "
                                         f"0..{MAX_MODEL_ID}")
    return value


def configure_routes(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--topology", required=True, type=Path, help="topology TOML file")
    add_tls_argument(parser)
    parser.add_argument(
        "--push-pipeline", choices=[p.value for p in PushPolicy], default=PushPolicy.IF_MISSING.value,
        help="load the DCIA P4 program onto switches: if-missing (default), always, never",
    )


def run_routes(args: argparse.Namespace, console: Console) -> int:
    topology = _topology_to_connect(args)
    written = asyncio.run(session.install_routes(topology, push=PushPolicy(args.push_pipeline)))
    console.print("IPv4 routes installed: " + ", ".join(f"{name}: {n}" for name, n in written.items()))
    return 0


def configure_status(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--topology", required=True, type=Path, help="topology TOML file")
    add_tls_argument(parser)


def run_status(args: argparse.Namespace, console: Console) -> int:
    topology = _topology_to_connect(args)

    async def read_all():
        return await asyncio.gather(*(session.switch_status(endpoint_of(sw))
                                      for sw in topology.switches.values()))

    table = Table(title=f"Switches of {topology.name}")
    for column in ("switch", "address", "models (id v version: layers)", *STAT_NAMES,
                   "layers computed", "IPv4 dropped (" + " / ".join(DROP_NAMES) + ")"):
        table.add_column(column)
    unreadable = []
    for sw, st in zip(topology.switches.values(), asyncio.run(read_all())):
        if st.error:
            unreadable.append(st.error)
            table.add_row(sw.name, sw.grpc, "[red]unreadable[/]")
            continue
        models = "; ".join(f"{m} v{v}: {_indices(dict.fromkeys(ls))}"
                           for (m, v), ls in sorted(st.models.items())) or "none"
        per_layer = ", ".join(f"L{i}: {n}" for i, n in sorted(st.layers_computed.items()))
        drops = " / ".join(str(st.drops.get(k, 0)) for k in DROP_NAMES)
        table.add_row(sw.name, sw.grpc, models, *(str(st.stats.get(k, 0)) for k in STAT_NAMES),
                      per_layer or "-", drops)
    console.print(table)
    if unreadable:
        raise DciaError(f"{len(unreadable)} of {len(topology.switches)} switches could not be "
                        f"read: {'; '.join(unreadable)}")
    return 0


def _indices(layers) -> str:
    return ", ".join(str(i) for i in sorted(layers)) or "-"


# ---------------------------------------------------- accuracy, demo model, p4 --


def configure_accuracy(parser: argparse.ArgumentParser) -> None:
    from controller.demo_model import MODEL_PATH

    parser.add_argument("--model", type=Path, default=MODEL_PATH,
                        help="ONNX model of the 64 digit features (default: the demo model)")
    parser.add_argument("--calibration", choices=("max", "percentile"), default="max",
                        help="how activation scales are chosen (default: max)")
    parser.add_argument("--edge", type=int, metavar="A", help="the edge runs layers [0,A)")
    parser.add_argument("--cloud", type=int, metavar="B", help="the cloud runs layers [B,n)")


def run_accuracy(args: argparse.Namespace, console: Console) -> int:
    from controller.accuracy import digits_report, render

    report = digits_report(args.model, method=args.calibration, edge_stop=args.edge,
                           cloud_start=args.cloud)
    console.print(render(report))
    return 0


def configure_demo_model(parser: argparse.ArgumentParser) -> None:
    from controller.demo_model import MODEL_PATH

    parser.add_argument("--out", type=Path, default=MODEL_PATH,
                        help="where to write the ONNX file (default: models/digits.onnx)")


def run_demo_model(args: argparse.Namespace, console: Console) -> int:
    from controller.demo_model import write_demo

    path, imported, sklearn = write_demo(args.out)
    console.print(f"wrote {path} ({path.stat().st_size} bytes)")
    console.print(f"test accuracy: {imported:.2%} as imported, {sklearn:.2%} in scikit-learn")
    return 0


def configure_p4(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("compile", "check"),
                        help="compile: run p4c on p4src/dcia.p4 into p4src/build/; check: "
                             "that p4src/build/ matches the P4 sources")


def run_p4(args: argparse.Namespace, console: Console) -> int:
    from dcia.artifacts import check_fresh, compile_program

    stamp = check_fresh() if args.action == "check" else compile_program()
    console.print(f"p4src/build/ is up to date ({stamp['p4c']}, sources "
                  f"{stamp['sources_sha256'][:12]})", highlight=False, soft_wrap=True)
    return 0


def configure_testbed(parser: argparse.ArgumentParser) -> None:
    from mininet_topos.run import configure

    configure(parser)


def run_testbed(args: argparse.Namespace, console: Console) -> int:
    from mininet_topos.run import run_testbed as run

    return run(args, console)


def configure_top(parser: argparse.ArgumentParser) -> None:
    from controller import top

    top.configure(parser)


def run_top(args: argparse.Namespace, console: Console) -> int:
    from controller import top

    return top.run(args, console)


def configure_steer(parser: argparse.ArgumentParser) -> None:
    from controller import steer

    steer.configure(parser)


def run_steer(args: argparse.Namespace, console: Console) -> int:
    from controller import steer

    return steer.run(args, console)


def configure_shell(parser: argparse.ArgumentParser) -> None:
    from controller import shell

    shell.configure(parser)


def run_shell(args: argparse.Namespace, console: Console) -> int:
    from controller import shell

    return shell.run(args, console)


def configure_eval(parser: argparse.ArgumentParser) -> None:
    from evaluation import runner

    runner.configure_eval(parser)


def run_eval(args: argparse.Namespace, console: Console) -> int:
    from evaluation import runner

    return runner.run_eval(args, console)


def configure_calibrate(parser: argparse.ArgumentParser) -> None:
    from evaluation import runner

    runner.configure_calibrate(parser)


def run_calibrate(args: argparse.Namespace, console: Console) -> int:
    from evaluation import runner

    return runner.run_calibrate(args, console)


# --------------------------------------------------------------------- parser --

COMMANDS: tuple[Command, ...] = (
    Command("plan", "split a model into stages along a path, from files alone", configure_plan, run_plan),
    Command("deploy", "plan, then install the switch stages on every switch, all or nothing",
            configure_deploy, run_deploy),
    Command("sign", "plan as deploy does, and sign the deployment's manifest (Ed25519)",
            configure_sign, run_sign),
    Command("audit", "read every switch back and name each entry that differs from a signed manifest",
            configure_audit, run_audit),
    Command("keygen", "make an Ed25519 key pair for signing manifests", configure_keygen, run_keygen),
    Command("undeploy", "remove one model version from every switch of a topology",
            configure_undeploy, run_undeploy),
    Command("routes", "install every switch's IPv4 routes, derived from the topology",
            configure_routes, run_routes),
    Command("status", "what each switch holds and what it counted", configure_status, run_status),
    Command("accuracy", "test accuracy of the float, int8 and split model (digit features)",
            configure_accuracy, run_accuracy),
    Command("p4", "compile the P4 program with p4c, or check the compiled artifacts",
            configure_p4, run_p4),
    Command("demo-model", "train the demo model and write it as ONNX",
            configure_demo_model, run_demo_model),
    Command("testbed", "the Mininet testbed: run the demo end to end, or open its CLI (root)",
            configure_testbed, run_testbed),
    Command("top", "live view: per switch and agent, what is computed and counted per second",
            configure_top, run_top),
    Command("steer", "path selector: steer on live metrics, re-plan with hysteresis, fail over",
            configure_steer, run_steer),
    Command("shell", "p4runtime-shell connected to one switch (its own virtual environment)",
            configure_shell, run_shell),
    Command("eval", "the evaluation: every strategy in every scenario, in the testbed (root)",
            configure_eval, run_eval),
    Command("calibrate", "measure what the planner needs in a scenario's testbed (root)",
            configure_calibrate, run_calibrate),
)


def build_parser(commands: Sequence[Command] = COMMANDS,
                 selected: str | None = None) -> argparse.ArgumentParser:
    """The parser of ``dcia``; with ``selected``, only that subcommand's arguments are
    declared (the testbed's pull in Mininet: other commands need not import it)."""
    parser = argparse.ArgumentParser(
        prog="dcia", description="Distributed Collaborative Inference Acceleration toolkit"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in commands:
        p = sub.add_parser(command.name, help=command.help, description=command.help)
        if selected is None or command.name == selected:
            command.configure(p)
        p.set_defaults(run=command.run)
    return parser


PIPED_WIDTH = 160
"""Columns of the tables when the output is not a terminal and COLUMNS is unset (rich's
default there, 80, folds the status table's cells into unreadable, ungreppable lines)."""


def _console() -> Console:
    if sys.stdout.isatty() or "COLUMNS" in os.environ:
        return Console()
    return Console(width=PIPED_WIDTH)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dcia`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    selected = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(selected=selected).parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    # finsy warns about every switch without gNMI (BMv2 has none) and logs a traceback for
    # each failed session; every such failure reaches the user as the one-line error of
    # controller.session, so without -v finsy's records go to no console.
    logging.getLogger("finsy").setLevel(logging.INFO if args.verbose else logging.ERROR)
    logging.getLogger("finsy").propagate = args.verbose
    if not args.verbose:
        logging.getLogger("finsy").addHandler(logging.NullHandler())
    try:
        return args.run(args, _console())
    except DciaError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
