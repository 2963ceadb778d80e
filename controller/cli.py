"""The ``dcia`` command line.

Each subcommand is one :class:`Command`: a function that declares its arguments and one
that runs it. ``COMMANDS`` lists them; adding a subcommand (deploy, status, undeploy)
means writing those two functions and adding a ``Command`` to the tuple.

    dcia plan --topology topologies/linear.toml --model models/digits.onnx
    dcia plan --topology topologies/linear.toml --model layers.toml --forbid s1 --json

Errors a user can cause (DciaError) print one line on stderr, ``error: ...``, and exit
with status 2, like argparse's usage errors.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

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
from controller.topology import Route, Topology, load_topology
from dcia.capability import LayerShape, NodeKind
from dcia.errors import DciaError, ModelImportError, PlanError

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
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")


def run_plan(args: argparse.Namespace, console: Console) -> int:
    topology = load_topology(args.topology)
    name, layers = read_model_shapes(args.model)
    log.info("model %s: %s", name, ", ".join(f"{layer.kind} {layer.n_in}->{layer.n_out}" for layer in layers))
    route = topology.route(args.path)
    constraints = Constraints(
        min_edge_layers=args.edge_layers,
        forbid=tuple(parse_forbid(text, topology, len(layers)) for text in args.forbid),
        max_layers_per_switch=args.max_layers_per_switch,
        objective=Objective(args.objective),
    )
    best = plan(layers, route, constraints)
    baselines = _baselines(layers, route, constraints)
    if args.json:
        body = {"model": name, "layers": len(layers), **best.to_dict(),
                "baselines": {k: (p.to_dict() if p else None) for k, p in baselines.items()}}
        console.file.write(json.dumps(body, indent=2) + "\n")
    else:
        _print_plan(console, name, layers, route, best, baselines)
    return 0


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
        model = import_onnx(path)
        return model.name, list(model.layers)
    if suffix == ".json" and _is_saved_model(path):
        from controller.model import QuantizedModel

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
    baselines: dict[str, Plan | None],
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
    compared = ", ".join(
        f"{label} {_ms(p.latency_s) if p else 'not allowed'}" for label, p in baselines.items()
    )
    console.print(f"Compared with: {compared}.")


# --------------------------------------------------------------------- parser --

COMMANDS: tuple[Command, ...] = (
    Command("plan", "split a model into stages along a path, from files alone", configure_plan, run_plan),
)


def build_parser(commands: Sequence[Command] = COMMANDS) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dcia", description="Distributed Collaborative Inference Acceleration toolkit"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in commands:
        p = sub.add_parser(command.name, help=command.help, description=command.help)
        command.configure(p)
        p.set_defaults(run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dcia`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    try:
        return args.run(args, Console())
    except DciaError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
