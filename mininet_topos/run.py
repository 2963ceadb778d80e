"""`dcia testbed run` (`make run`): the testbed demo, end to end, and `dcia testbed cli`
(`make cli`): the same network at Mininet's prompt.

    dcia testbed run --topology topologies/linear.toml --target embedded --requests 100

1. quantizes the demo model (models/digits.onnx, calibrated on its training images) and
   plans its split along the topology's path (controller.planner);
2. starts the Mininet network of the topology with one P4 switch process per switch
   (``--target``: bmv2, embedded, or auto: BMv2 where installed), installs IPv4 routes,
   pings between the hosts and deploys the switches' layers (controller.session.apply);
3. starts the cloud server and the edge agent and sends every held-out test image (or
   the first ``--requests``) through edge, switches and cloud;
4. prints accuracy (float model, integer reference, in-network path), latency
   percentiles, where each stage ran and what each switch counted, and saves it all as
   JSON in the run directory;
5. stops everything, also on failure, Ctrl-C or SIGTERM.

A node that dies during the run (a switch process, the cloud server, the edge agent)
does not cost the answers already received: the run finishes, reports the node as lost
and the requests that went unanswered by status, saves the results and exits with
status 1 (the network failed; also when any request went unanswered). 2: a wrong option
or any other error, in one line (dcia's convention).

``dcia testbed cli`` stops after step 2 with the cloud server running and leaves you at the Mininet
prompt; ``exit`` tears everything down.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from controller.demo_model import load_demo
from controller.planner import Constraints, Objective, Plan, plan
from controller.topology import load_topology
from dcia.artifacts import Pipeline
from dcia.model import QuantizedModel
from dcia.targets import free_tcp_port
from hosts.edge_agent import RequestResult
from mininet_topos.p4switch import resolve_target
from mininet_topos.testbed import NodeLost, Shaping, SwitchCounters, Testbed, terminate_on_signals

log = logging.getLogger(__name__)


def stage_text(plan_: Plan) -> list[tuple[str, str]]:
    return [(s.node, f"{s.start}..{s.stop - 1}" if s.stop > s.start else "-") for s in plan_.stages]


def summary(model: QuantizedModel, plan_: Plan, path: list[str], labels: np.ndarray, float_pred: np.ndarray,
            int_logits: np.ndarray, results: list[RequestResult],
            counters: dict[str, SwitchCounters], cloud: dict, target: str,
            lost_nodes: dict[str, str]) -> dict:
    """Everything the table shows, as plain values (also saved as JSON). A lost switch
    has ``{"lost": true, "error": ...}`` instead of counters, a lost cloud the same
    instead of its counters; ``unanswered`` counts the other requests by status."""
    ok = [r for r in results if r.ok]
    latencies = np.array([r.latency_s for r in ok]) * 1e3
    net_pred = np.array([r.predicted for r in results])
    exact = sum(r.ok and r.logits == int_logits[r.index].tolist() for r in results)
    return {
        "target": target,
        "requests": len(results),
        "answered": len(ok),
        "unanswered": dict(sorted(Counter(r.status for r in results if not r.ok).items())),
        "retried": sum(r.attempts > 1 for r in results),
        "lost_nodes": lost_nodes,
        "accuracy": {
            "float": float(np.mean(float_pred == labels)),
            "integer_reference": float(np.mean(int_logits.argmax(axis=1) == labels)),
            "in_network": float(np.mean(net_pred == labels)),
        },
        "identical_to_reference": exact,
        "latency_ms": {f"p{q}": float(np.percentile(latencies, q)) if len(ok) else None
                       for q in (50, 95, 99)},
        "plan": plan_.to_dict(),
        "path": path,
        "network_layers": {str(k): v for k, v in sorted(Counter(r.net_layers for r in ok).items())},
        "switches": {name: {"lost": True, "error": c.error} if c.lost
                     else {"stats": c.stats, "layers": c.layers} for name, c in counters.items()},
        "cloud": cloud,
        "model": {"name": model.name, "id": model.model_id, "version": model.version,
                  "layers": [f"{layer.kind} {layer.n_in}->{layer.n_out}" for layer in model.layers]},
    }


def print_summary(console: Console, s: dict) -> None:
    acc = s["accuracy"]
    head = Table(title=f"DCIA testbed: {s['requests']} requests, {s['target']} switches", show_header=False)
    head.add_row("accuracy, float model", f"{acc['float']:.2%}")
    head.add_row("accuracy, integer reference", f"{acc['integer_reference']:.2%}")
    head.add_row("accuracy, in-network path", f"{acc['in_network']:.2%}")
    head.add_row("answers identical to the integer reference",
                 f"{s['identical_to_reference']} / {s['requests']}")
    head.add_row("answered / retried", f"{s['answered']} / {s['retried']}")
    if s["unanswered"]:
        head.add_row("[red]unanswered[/red]", ", ".join(f"{v} {k}" for k, v in s["unanswered"].items()))
    for node, reason in s["lost_nodes"].items():
        head.add_row(f"[red]LOST: {node}[/red]", reason)
    if not s["cloud"].get("lost"):
        head.add_row("answered by the last computing switch / by the cloud",
                     f"{s['answered'] - s['cloud']['answered']} / {s['cloud']['answered']}")
    lat = s["latency_ms"]
    head.add_row("latency p50 / p95 / p99",
                 " / ".join("-" if v is None else f"{v:.2f} ms" for v in lat.values()))
    console.print(head)

    stages = Table(title="where each stage ran (plan and counters)")
    for col in ("node", "planned layers", "layers computed (counter: packets)", "pass-through",
                "malformed"):
        stages.add_column(col)
    cloud = s["cloud"]
    planned = {st["node"]: st for st in s["plan"]["stages"]}
    path = s["path"]

    def layers_text(node: str) -> str:
        layers = planned[node]["layers"] if node in planned else []
        return f"{layers[0]}..{layers[-1]}" if layers else "-"

    for node in path:
        if node in s["lost_nodes"]:
            stages.add_row(node, layers_text(node), "[red]LOST[/red]: " + s["lost_nodes"][node], "", "")
        elif node in s["switches"]:
            c = s["switches"][node]
            computed = ", ".join(f"layer {k}: {v}" for k, v in c["layers"].items()) or "none"
            stages.add_row(node, layers_text(node), computed, str(c["stats"]["pass-through"]),
                           str(c["stats"]["malformed"]))
        elif node == path[0]:
            stages.add_row(f"{node} (edge)", layers_text(node) + ", arg max",
                           f"{layers_text(node)} for each of {s['requests']} requests", "", "")
        else:
            arrivals = ", ".join(f"{v} from layer {k}" for k, v in cloud["arrivals"].items())
            stages.add_row(f"{node} (cloud)", layers_text(node),
                           f"{cloud['layers_computed']} layers for {cloud['requests']} requests"
                           + (f" ({arrivals})" if arrivals else ""), "",
                           str(cloud["errors_by_status"].get("1", 0)))
    console.print(stages)
    console.print("layers computed in the network per answered request: "
                  + ", ".join(f"{k}: {v}" for k, v in s["network_layers"].items()))


def configure(parser: argparse.ArgumentParser) -> None:
    """The options of ``dcia testbed run`` and ``dcia testbed cli``."""
    parser.add_argument("action", choices=("run", "cli"),
                        help="run: the demo end to end; cli: deploy, then open the Mininet CLI")
    parser.add_argument("--topology", type=Path, default=Path("topologies/linear.toml"))
    parser.add_argument("--path", help="which path of the topology (default: the first)")
    parser.add_argument("--target", default="auto", choices=["auto", "embedded", "bmv2"])
    parser.add_argument("--requests", type=int, help="only the first N test images (default: all)")
    parser.add_argument("--objective", default="latency", choices=[o.value for o in Objective])
    parser.add_argument("--max-layers-per-switch", type=int,
                        help="spread the in-network layers (1: one layer per switch)")
    parser.add_argument("--window", type=int, default=8, help="requests in flight at once")
    parser.add_argument("--timeout", type=float, default=1.0, help="edge's first wait for an answer, s")
    parser.add_argument("--bw", type=float, help="every link's bandwidth, Mbit/s")
    parser.add_argument("--delay", type=float, help="every link's one-way delay, ms")
    parser.add_argument("--loss", type=float, help="every link's loss, percent")
    parser.add_argument("--edge-cpu", type=float, help="the edge host's CPU share (0..1)")
    parser.add_argument("--run-dir", type=Path, default=Path("logs/run"),
                        help="logs, pcaps, the model and results go here")
    parser.add_argument("--pcap", action="store_true", help="switches capture every port")
    parser.add_argument("--p4-build", type=Path, default=Pipeline.default().bmv2_json.parent,
                        help="directory of the compiled program (dcia.json, dcia.p4info.txtpb)")
    parser.add_argument("--free-ports", action="store_true",
                        help="P4Runtime on free local ports instead of the topology's")
    parser.add_argument("--clean-all", action="store_true",
                        help="first run Mininet's `mn -c` (kills every Mininet on this machine)")


def run_testbed(args: argparse.Namespace, console: Console) -> int:
    """``dcia testbed run|cli``: 0 when every request was answered, 1 when the run lost a
    node or a request (after writing its results); errors (DciaError) propagate."""
    try:
        with terminate_on_signals():
            return run(args, console)
    except (KeyboardInterrupt, SystemExit) as exc:  # Ctrl-C, or SIGTERM/SIGHUP (terminate_on_signals)
        console.print(f"interrupted ({type(exc).__name__}); everything was stopped")
        return 130 if isinstance(exc, KeyboardInterrupt) else int(exc.code or 1)


def run(args: argparse.Namespace, console: Console) -> int:
    topology = load_topology(args.topology)
    target = resolve_target(args.target)
    demo = load_demo()
    model, split = demo.quantized, demo.split
    constraints = Constraints(objective=Objective(args.objective),
                              max_layers_per_switch=args.max_layers_per_switch)
    plan_ = plan(model.layers, topology.route(args.path), constraints)
    console.print(f"model {model.name}: {', '.join(f'{l.kind} {l.n_in}->{l.n_out}' for l in model.layers)}")
    console.print(f"plan on {topology.route(args.path)}: "
                  + "; ".join(f"{node} layers {layers}" for node, layers in stage_text(plan_))
                  + f" (predicted {plan_.latency_s * 1e3:.2f} ms)")
    x = split.x_test[: args.requests]
    labels = split.y_test[: args.requests]
    args.run_dir.mkdir(parents=True, exist_ok=True)
    model_file = model.save(args.run_dir / "model.json")
    inputs_file = args.run_dir / "inputs.npy"
    np.save(inputs_file, x)
    shaping = Shaping(args.bw, args.delay, args.loss, args.edge_cpu)

    pipeline = Pipeline(args.p4_build / "dcia.json", args.p4_build / "dcia.p4info.txtpb",
                        args.p4_build / "stamp.json")
    grpc = {name: f"127.0.0.1:{free_tcp_port()}" for name in topology.switches} if args.free_ports else None
    with Testbed(topology, target=target, run_dir=args.run_dir, pcap=args.pcap, shaping=shaping,
                 pipeline=pipeline, grpc=grpc, clean_all=args.clean_all) as bed:
        console.print(f"network {topology.name} up: {len(topology.switches)} {target} switches, "
                      f"logs in {args.run_dir}")
        loss = bed.pingall()
        if loss:
            console.print(f"[yellow]warning: {loss:.0f}% of pings between the hosts were lost[/yellow]")
        bed.deploy(model, plan_)
        console.print("model deployed: " + ", ".join(
            f"{s.node} {list(s.layers)}" for s in plan_.stages if s.node in topology.switches))
        cloud = bed.start_cloud(model_file, path=args.path)
        if args.action == "cli":
            return open_cli(bed, console, model_file, inputs_file, plan_, args.path)
        before = bed.counters()
        with Progress(TextColumn("inference"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.fields[status]}"), TimeRemainingColumn(),
                      console=console) as progress:
            task = progress.add_task("inference", total=len(x), status="")
            failed = [0]

            def advance(result: RequestResult) -> None:
                failed[0] += not result.ok
                progress.update(task, advance=1, status=f"{failed[0]} failed" if failed[0] else "")

            results = bed.run_edge(model_file, inputs_file, edge_layers=plan_.stages[0].stop,
                                   path=args.path, window=args.window, timeout=args.timeout,
                                   on_result=advance)
        after = bed.counters()
        try:
            cloud_stats = cloud.stop()
        except NodeLost as exc:
            cloud_stats = {"lost": True, "error": exc.reason}
        lost = bed.lost_nodes()
    counters = {name: after[name] - before[name] for name in after}
    int_logits = model.forward_int(model.quantize_input(x))
    path = [n.name for n in topology.route(args.path).nodes]
    s = summary(model, plan_, path, labels, model.float_model.predict(x), int_logits, results,
                counters, cloud_stats, target, lost)
    print_summary(console, s)
    (args.run_dir / "results.json").write_text(json.dumps(
        {"summary": s, "requests": [asdict(r) for r in results]}, indent=1) + "\n")
    console.print(f"results saved to {args.run_dir / 'results.json'}")
    if lost:
        console.print(f"[red]the network failed: {', '.join(lost)} lost during the run[/red]")
    return 0 if s["answered"] == s["requests"] and not lost else 1


def open_cli(bed: Testbed, console: Console, model_file: Path, inputs_file: Path, plan_: Plan,
             path: str | None) -> int:
    from mininet.cli import CLI
    from mininet.log import setLogLevel

    py = sys.executable
    edge, cloud = bed.edge_host(path), bed.cloud_host(path)
    cloud_ip = bed.address(cloud, path)
    console.print(
        "\nEverything is deployed and the cloud server runs in "
        f"{cloud}. Try:\n"
        f"  pingall\n"
        f"  {edge} {py} tools/dcia_send.py --dst {cloud_ip} --model {model_file} "
        f"--inputs {inputs_file} --index 3 --edge-layers {plan_.stages[0].stop}\n"
        f"  {edge} {py} -m hosts.edge_agent --model {model_file} --cloud {cloud_ip} "
        f"--edge-layers {plan_.stages[0].stop} --inputs {inputs_file} --requests 20\n"
        f"  {edge} {py} -m hosts.edge_agent ... --requests 300 > /tmp/edge.jsonl &   (then:)\n"
        f"  s2 {py} tools/dcia_sniff.py -i s2-eth1 --timeout 3\n"
        "`exit` stops everything.\n")
    setLogLevel("output")  # what the CLI's commands print
    CLI(bed.net)
    return 0
