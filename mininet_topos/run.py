"""`dcia testbed run` (`make run`): the testbed demo, end to end, and `dcia testbed cli`
(`make cli`): the same network at Mininet's prompt.

    dcia testbed run --topology topologies/linear.toml --target embedded --requests 100

1. quantizes the demo model (models/digits.onnx, calibrated on its training images) and
   plans its split along the topology's path (controller.planner);
2. starts the Mininet network of the topology with one P4 switch process per switch
   (``--target``: bmv2, embedded, or auto: BMv2 where installed), installs IPv4 routes,
   pings between the hosts and deploys the switches' layers (controller.session.apply);
3. starts the cloud server and the edge agent and sends every held-out test image (or
   ``--requests`` of them, repeated when there are more requests than images; ``--rate``
   paces them) through edge, switches and cloud;
4. prints accuracy (float model, integer reference, in-network path), latency
   percentiles, where each stage ran and what each switch counted, and saves it all as
   JSON in the run directory;
5. stops everything, also on failure, Ctrl-C or SIGTERM.

With several paths from the edge host (topologies/redundant.toml) every path gets its
plan and a cloud server, and the edge agent gets every path's cloud, ``--path`` (default:
the first) preferred, and fails over between them. ``--fail`` injects faults
(mininet_topos.faults: ``h2@3s``, ``s1@3s-6s``, ``link:s1-s2@3s-6s``) timed from the start of
the inference; the summary adds lost, retried and redirected requests, the answers per
cloud, and per fault the failover time (fault to the first answer on the surviving path)
and the recovery time (the node back to its first answer again).

    dcia testbed run --topology topologies/redundant.toml --cloud-layers 1 \
        --requests 800 --rate 100 --fail s1@3s-5s

A node that dies during the run unasked (a switch process, the cloud server, the edge
agent; not a ``--fail``) does not cost the answers already received: the run finishes, reports the node as lost
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
from controller.deployment import spread, spread_weights
from controller.planner import Constraints, Forbid, Objective, Plan, plan
from controller.topology import Topology, load_topology
from dcia.artifacts import Pipeline
from dcia.capability import NodeKind
from dcia.errors import PlanError
from dcia.model import QuantizedModel
from dcia.targets import free_tcp_ports
from hosts.edge_agent import FailoverPolicy, RequestResult
from mininet_topos.faults import Fault, FaultError, Schedule, check_all, measure
from mininet_topos.p4switch import resolve_target
from mininet_topos.testbed import (NodeLost, Shaping, SwitchCounters, Testbed, TestbedError,
                                   failover_paths, terminate_on_signals)
from mininet_topos.topos import LINK_DELAYS

log = logging.getLogger(__name__)


def stage_text(plan_: Plan) -> list[tuple[str, str]]:
    return [(s.node, f"{s.start}..{s.stop - 1}" if s.stop > s.start else "-") for s in plan_.stages]


def summary(model: QuantizedModel, plans: dict[str, Plan], topology: Topology, labels: np.ndarray,
            float_pred: np.ndarray, int_logits: np.ndarray, results: list[RequestResult],
            counters: dict[str, SwitchCounters], clouds: dict[str, dict], target: str,
            lost_nodes: dict[str, str], faults: list[dict] | None = None,
            spread: dict[str, int] | None = None, link_delay: dict | None = None) -> dict:
    """Everything the table shows, as plain values (also saved as JSON). ``plans`` by path,
    the preferred (the edge's first cloud) first. A lost switch has ``{"lost": true,
    "error": ...}`` instead of counters (``"lost": false`` for one a fault took down on
    purpose), a lost cloud the same instead of its counters;
    ``unanswered`` counts the other requests by status; ``answers_by_cloud`` the answers
    taken from each cloud (by its host); ``faults`` what each injected fault cost
    (mininet_topos.faults.measure); ``spread`` each spread path's cloud host, weight and
    share of the answers; ``link_delay`` what gave the links their delay and loss
    (Testbed.link_delay_report)."""
    ok = [r for r in results if r.ok]
    latencies = np.array([r.latency_s for r in ok]) * 1e3
    net_pred = np.array([r.predicted for r in results])
    exact = sum(r.ok and r.logits == int_logits[r.index].tolist() for r in results)
    cloud_hosts = {topology.host_address(hops[-1], name): hops[-1]
                   for name, hops in topology.paths.items()}
    by_cloud = Counter(cloud_hosts.get(r.answered_by, r.answered_by) for r in ok)
    return {
        "target": target,
        "requests": len(results),
        "answered": len(ok),
        "lost": len(results) - len(ok),
        "unanswered": dict(sorted(Counter(r.status for r in results if not r.ok).items())),
        "retried": sum(r.retried for r in results),
        "redirected": sum(r.redirected for r in results),
        "answers_by_cloud": dict(sorted(by_cloud.items())),
        "answered_by_switches": sum(r.cloud_from == len(model.layers) for r in ok),
        "lost_nodes": lost_nodes,
        "link_delay": link_delay or {},
        "faults": faults or [],
        "spread": {name: {"cloud": topology.paths[name][-1], "weight": w,
                          "expected": w / sum(spread.values()),
                          "share": by_cloud[topology.paths[name][-1]] / len(ok) if ok else None}
                   for name, w in (spread or {}).items()},
        "accuracy": {
            "float": float(np.mean(float_pred == labels)),
            "integer_reference": float(np.mean(int_logits.argmax(axis=1) == labels)),
            "in_network": float(np.mean(net_pred == labels)),
        },
        "identical_to_reference": exact,
        "latency_ms": {f"p{q}": float(np.percentile(latencies, q)) if len(ok) else None
                       for q in (50, 95, 99)},
        "plans": {name: p.to_dict() for name, p in plans.items()},
        "paths": {name: [n.name for n in topology.route(name).nodes] for name in plans},
        "network_layers": {str(k): v for k, v in sorted(Counter(r.net_layers for r in ok).items())},
        "switches": {name: {"lost": name in lost_nodes, "error": c.error} if c.lost
                     else {"stats": c.stats, "layers": c.layers} for name, c in counters.items()},
        "clouds": clouds,
        "model": {"name": model.name, "id": model.model_id, "version": model.version,
                  "layers": [f"{layer.kind} {layer.n_in}->{layer.n_out}" for layer in model.layers]},
    }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1e3:.1f} ms"


def link_delay_text(report: dict) -> str:
    """How the links got their delay and loss, in a line of the summary.

    >>> link_delay_text({"requested": "auto", "netem_available": False,
    ...                  "links": {"h1-s1": "delay-line", "s1-h2": "delay-line", "s1-s2": "none"}})
    'delay line (userspace relay) on 2 links, none needed on 1 (--link-delay auto; kernel without netem)'
    """
    names = {"netem": "netem", "delay-line": "delay line (userspace relay)",
             "none": "none needed", "dropped": "[yellow]none: delay and loss DROPPED[/yellow]"}
    counts = Counter(report.get("links", {}).values())
    parts = [f"{names[how]} on {n} link{'s' * (n != 1)}" if i == 0 else f"{names[how]} on {n}"
             for i, (how, n) in enumerate(counts.most_common())]
    kernel = "kernel with netem" if report.get("netem_available") else "kernel without netem"
    return f"{', '.join(parts) or 'no links'} (--link-delay {report.get('requested', 'auto')}; {kernel})"


def print_summary(console: Console, s: dict) -> None:
    acc = s["accuracy"]
    head = Table(title=f"DCIA testbed: {s['requests']} requests, {s['target']} switches", show_header=False)
    head.add_row("accuracy, float model", f"{acc['float']:.2%}")
    head.add_row("accuracy, integer reference", f"{acc['integer_reference']:.2%}")
    head.add_row("accuracy, in-network path", f"{acc['in_network']:.2%}")
    head.add_row("answers identical to the integer reference",
                 f"{s['identical_to_reference']} / {s['requests']}")
    lost = f"[red]{s['lost']}[/red]" if s["lost"] else "0"
    head.add_row("answered / lost / retried / redirected",
                 f"{s['answered']} / {lost} / {s['retried']} / {s['redirected']}")
    if s["unanswered"]:
        head.add_row("[red]unanswered[/red]", ", ".join(f"{v} {k}" for k, v in s["unanswered"].items()))
    for node, reason in s["lost_nodes"].items():
        head.add_row(f"[red]LOST: {node}[/red]", reason)
    head.add_row("answers per cloud (its server or the switch answering on its path)",
                 ", ".join(f"{host} {n}" for host, n in s["answers_by_cloud"].items()) or "none")
    for name, sp in s["spread"].items():
        share = "-" if sp["share"] is None else f"{sp['share']:.1%}"
        head.add_row(f"spread: path {name} ({sp['cloud']}), weight {sp['weight']}",
                     f"{share} of the answers (weight share {sp['expected']:.1%})")
    head.add_row("answered by the last computing switch / by a cloud server",
                 f"{s['answered_by_switches']} / {s['answered'] - s['answered_by_switches']}")
    if s["link_delay"]:
        head.add_row("link delay and loss", link_delay_text(s["link_delay"]))
    sealed = sum(c.get("sealed", 0) for c in s["clouds"].values())
    if sealed:
        head.add_row("tensors sealed end to end (AES-256-GCM)",
                     f"{sealed} requests came sealed and were opened by the cloud")
    lat = s["latency_ms"]
    head.add_row("latency p50 / p95 / p99",
                 " / ".join("-" if v is None else f"{v:.2f} ms" for v in lat.values()))
    console.print(head)

    if s["faults"]:
        faults = Table(title="faults (times from the start of the inference)")
        for col in ("fault", "failed at", "failover: fault → first answer on another path",
                    "back at (restart took)", "recovery: back → first answer from it"):
            faults.add_column(col)
        for f in s["faults"]:
            failed = "not reached" if f["failed_at_s"] is None else f"{f['failed_at_s']:.3f} s"
            failover = _ms(f["failover_s"]) if f["in_use"] else "- (carried no traffic)"
            back = ("-" if f["restored_at_s"] is None
                    else f"{f['restored_at_s']:.3f} s ({f['restore_took_s']:.2f} s)")
            faults.add_row(f["fault"], failed, failover, back, _ms(f["recovery_s"]))
        console.print(faults)

    stages = Table(title="where each stage ran (plan and counters)")
    for col in ("path", "node", "planned layers", "layers computed (counter: packets)",
                "pass-through", "malformed"):
        stages.add_column(col)
    for name, path in s["paths"].items():
        planned = {st["node"]: st for st in s["plans"][name]["stages"]}

        def layers_text(node: str) -> str:
            layers = planned[node]["layers"] if node in planned else []
            return f"{layers[0]}..{layers[-1]}" if layers else "-"

        for node in path:
            if node in s["lost_nodes"]:
                stages.add_row(name, node, layers_text(node),
                               "[red]LOST[/red]: " + s["lost_nodes"][node], "", "")
            elif node in s["switches"] and "error" in s["switches"][node]:
                stages.add_row(name, node, layers_text(node), s["switches"][node]["error"], "", "")
            elif node in s["switches"]:
                c = s["switches"][node]
                computed = ", ".join(f"layer {k}: {v}" for k, v in c["layers"].items()) or "none"
                stages.add_row(name, node, layers_text(node), computed,
                               str(c["stats"]["pass-through"]), str(c["stats"]["malformed"]))
            elif node == path[0]:
                stages.add_row(name, f"{node} (edge)", layers_text(node) + ", arg max",
                               f"{layers_text(node)} for each request it sent this way", "", "")
            else:
                cloud = s["clouds"].get(node, {})
                if cloud.get("lost") or cloud.get("killed"):
                    why = cloud.get("error") or "killed by --fail, not restarted: no counters"
                    stages.add_row(name, f"{node} (cloud)", layers_text(node), why, "", "")
                    continue
                arrivals = ", ".join(f"{v} from layer {k}" for k, v in cloud["arrivals"].items())
                since = " (since its restart)" if cloud.get("restarted") else ""
                stages.add_row(name, f"{node} (cloud)", layers_text(node),
                               f"{cloud['layers_computed']} layers for {cloud['requests']} "
                               f"requests{since}" + (f" ({arrivals})" if arrivals else ""), "",
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
    parser.add_argument("--requests", type=int,
                        help="N requests: the first N test images, repeated when N is larger "
                             "(default: each image once)")
    parser.add_argument("--rate", type=float, help="start at most N requests per second")
    parser.add_argument("--objective", default="latency", choices=[o.value for o in Objective])
    parser.add_argument("--max-layers-per-switch", type=int,
                        help="spread the in-network layers (1: one layer per switch)")
    parser.add_argument("--window", type=int, default=8, help="requests in flight at once")
    parser.add_argument("--spread", type=spread_weights, metavar="PATH=W,PATH=W[,...]",
                        help="spread the requests over these paths' clouds by weight, at the "
                             "switch where the paths part (topologies/balanced.toml: "
                             "cloud-a=3,cloud-b=1); the first path is the planned one")
    parser.add_argument("--cloud-layers", type=int, default=0,
                        help="the model's last N layers run on the cloud servers and only "
                             "there, the others on the edge and the switches: every request "
                             "crosses every node of its path")
    parser.add_argument("--timeout", type=float,
                        help="edge's first wait for an answer, s: the failure detection "
                             "interval (default 1, with --fail 0.05)")
    parser.add_argument("--down-after", type=int, default=FailoverPolicy.down_after,
                        help="edge: attempts in a row without an answer that mark a cloud down")
    parser.add_argument("--hold-down", type=float, default=FailoverPolicy.hold_down,
                        help="edge: seconds between probes of a down cloud")
    parser.add_argument("--fail", action="append", default=[], metavar="FAULT",
                        help="inject a fault, timed from the start of the inference: h2@3s "
                             "(the cloud server of h2 killed), s1@3s-6s (switch process "
                             "killed at 3 s, back at 6 s), link:s1-s2@3s-6s; repeatable; "
                             "needs --rate")
    parser.add_argument("--bw", type=float, help="every link's bandwidth, Mbit/s")
    parser.add_argument("--delay", type=float, help="every link's one-way delay, ms")
    parser.add_argument("--loss", type=float, help="every link's loss, percent")
    parser.add_argument("--link-delay", default="auto", choices=LINK_DELAYS,
                        help="how links get their delay and loss: netem, a userspace delay "
                             "line (mininet_topos.delay_line), or auto: netem where the "
                             "kernel has it (default)")
    parser.add_argument("--edge-cpu", type=float, help="the edge host's CPU share (0..1)")
    parser.add_argument("--run-dir", type=Path, default=Path("logs/run"),
                        help="logs, pcaps, the model and results go here")
    parser.add_argument("--pcap", action="store_true", help="switches capture every port")
    parser.add_argument("--p4-build", type=Path, default=Pipeline.default().bmv2_json.parent,
                        help="directory of the compiled program (dcia.json, dcia.p4info.txtpb)")
    parser.add_argument("--free-ports", action="store_true",
                        help="P4Runtime on free local ports instead of the topology's")
    parser.add_argument("--plaintext", action="store_true",
                        help="P4Runtime in plain text (default: mutual TLS, with certificates "
                             "made at start in <run dir>/tls)")
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


def cloud_only(n_layers: int, cloud_layers: int) -> tuple[Forbid, ...]:
    """The policy that runs the last ``cloud_layers`` layers on the cloud servers and only
    there, the others on the edge and the switches: every request crosses every node."""
    if not 0 <= cloud_layers < n_layers:
        raise PlanError(f"--cloud-layers must be in 0..{n_layers - 1} (the edge keeps the "
                         f"first layer), not {cloud_layers}")
    if not cloud_layers:
        return ()
    last = frozenset(range(n_layers - cloud_layers, n_layers))
    return (Forbid(NodeKind.SWITCH, last), Forbid(NodeKind.EDGE, last),
            Forbid(NodeKind.CLOUD, frozenset(range(n_layers)) - last))


def repeated(rows: np.ndarray, n: int) -> np.ndarray:
    """``n`` rows: ``rows`` from the start, again and again."""
    return rows[np.arange(n) % len(rows)]


def run(args: argparse.Namespace, console: Console) -> int:
    topology = load_topology(args.topology)
    if topology.security.require_signed:
        raise TestbedError(f"topology {topology.name} requires signed deployments ([security] "
                           "require_signed); the testbed plans and deploys at run time without "
                           "manifests: use a topology without require_signed")
    target = resolve_target(args.target)
    faults = [Fault.parse(spec) for spec in args.fail]
    if faults and not args.rate:
        raise FaultError("--fail needs --rate: a fault lands at a time into the run, and "
                         "without pacing the run's length is unknown")
    demo = load_demo()
    model, split = demo.quantized, demo.split
    n = args.requests if args.requests is not None else len(split.x_test)
    if n < 1:
        raise TestbedError(f"--requests must be 1 or more, not {n}")
    check_all(faults, topology, n / args.rate if args.rate else None)
    constraints = Constraints(objective=Objective(args.objective),
                              max_layers_per_switch=args.max_layers_per_switch,
                              forbid=cloud_only(len(model.layers), args.cloud_layers))
    if args.spread and faults:
        raise TestbedError("--spread and --fail together are not supported: a fault's "
                           "failover is measured between the edge's clouds, and a spread's "
                           "clouds are chosen by the switch")
    paths = list(args.spread) if args.spread else failover_paths(topology, args.path)
    if args.spread and args.path:
        if args.path not in args.spread:
            raise TestbedError(f"--path {args.path} is not one of the --spread paths "
                               f"({', '.join(args.spread)})")
        paths = [args.path] + [p for p in paths if p != args.path]
    if args.spread:  # the paths must part at a switch and end at clouds: say so now
        spread(topology, args.spread, model_id=model.model_id, layers=range(0))
    planned = paths[:1] if args.spread else paths
    plans = {p: plan(model.layers, topology.route(p), topology.policy.constraints(
        constraints, topology.route(p), model.model_id, len(model.layers))) for p in planned}
    preferred = plans[paths[0]]
    edge_layers = preferred.stages[0].stop
    console.print(f"model {model.name}: {', '.join(f'{l.kind} {l.n_in}->{l.n_out}' for l in model.layers)}")
    for name, plan_ in plans.items():
        console.print(f"plan on {topology.route(name)}: "
                      + "; ".join(f"{node} layers {layers}" for node, layers in stage_text(plan_))
                      + f" (predicted {plan_.latency_s * 1e3:.2f} ms)")
        if plan_.stages[0].stop != edge_layers:
            log.warning("path %s's plan gives the edge %d layers, the preferred path's %d: "
                        "the edge computes %d; that path's switches compute what they hold of "
                        "the rest, its cloud the remainder", name, plan_.stages[0].stop,
                        edge_layers, edge_layers)
    for fault in faults:
        for name in fault.cut_paths(topology):
            if fault.kind(topology) == "cloud" and name in plans and fault.target not in {
                    st.node for st in plans[name].stages if st.layers}:
                console.print(f"[yellow]warning: --fail {fault}: the switches on path {name} "
                              f"compute every layer and answer, so {fault.target}'s server "
                              "sees no request; --cloud-layers 1 sends every request to it[/yellow]")
    x, labels = repeated(split.x_test, n), repeated(split.y_test, n)
    args.run_dir.mkdir(parents=True, exist_ok=True)
    model_file = model.save(args.run_dir / "model.json")
    inputs_file = args.run_dir / "inputs.npy"
    np.save(inputs_file, x)
    shaping = Shaping(args.bw, args.delay, args.loss, args.edge_cpu, args.link_delay)
    timeout = args.timeout if args.timeout is not None else (0.05 if faults else 1.0)

    pipeline = Pipeline(args.p4_build / "dcia.json", args.p4_build / "dcia.p4info.txtpb",
                        args.p4_build / "stamp.json")
    grpc = ({name: f"127.0.0.1:{port}" for name, port in
             zip(topology.switches, free_tcp_ports(len(topology.switches)))}
            if args.free_ports else None)
    with Testbed(topology, target=target, run_dir=args.run_dir, pcap=args.pcap, shaping=shaping,
                 pipeline=pipeline, grpc=grpc, clean_all=args.clean_all,
                 tls=not args.plaintext) as bed:
        console.print(f"network {topology.name} up: {len(topology.switches)} {target} switches, "
                      f"logs in {args.run_dir}")
        console.print("P4Runtime: " + (f"mutual TLS on {', '.join(s.grpc for s in bed.topology.switches.values())}; "
                                       f"dcia commands connect with --tls {bed.tls_dir}"
                                       if bed.tls else "plain text (--plaintext)"))
        console.print(f"link delay and loss: {link_delay_text(bed.link_delay_report())}")
        loss = bed.pingall()
        if loss:
            console.print(f"[yellow]warning: {loss:.0f}% of pings between the hosts were lost[/yellow]")
        for plan_ in plans.values():
            bed.deploy(model, plan_, args.spread)
        console.print("model deployed: " + ", ".join(
            f"{s.node} {list(s.layers)}" for p in plans.values() for s in p.stages
            if s.node in topology.switches))
        bed.start_clouds(model_file, paths)
        clouds = [bed.address(bed.cloud_host(p), p) for p in paths]
        answerers = clouds[1:] if args.spread else []
        if args.spread:  # the edge sends to the planned path's cloud; s2 steers by weight
            clouds = clouds[:1]
        if args.action == "cli":
            return open_cli(bed, console, model_file, inputs_file, preferred, paths, clouds,
                            args.topology)
        before = bed.counters()
        schedule = Schedule(faults)
        with Progress(TextColumn("inference"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.fields[status]}"), TimeRemainingColumn(),
                      console=console) as progress:
            task = progress.add_task("inference", total=len(x), status="")
            failed = [0]

            def advance(result: RequestResult) -> None:
                failed[0] += not result.ok
                progress.update(task, advance=1, status=f"{failed[0]} failed" if failed[0] else "")

            results = bed.run_edge(model_file, inputs_file, edge_layers=edge_layers,
                                   path=paths[0], clouds=clouds, answerers=answerers,
                                   window=args.window,
                                   timeout=timeout, rate=args.rate,
                                   failover=FailoverPolicy(args.down_after, args.hold_down),
                                   schedule=schedule, on_result=advance)
        after = bed.counters()
        cloud_stats = {}
        for cloud in bed.clouds:  # in start order: the last process of each host wins
            try:
                stats = cloud.stop()
            except NodeLost as exc:
                stats = {"lost": True, "error": exc.reason}
            if cloud.host in cloud_stats:
                stats["restarted"] = True
            cloud_stats[cloud.host] = stats
        lost = bed.lost_nodes()
        restarted = set(bed.restarted)
        link_delay = bed.link_delay_report()
    if schedule.pending:
        console.print("[yellow]the run ended before: " + "; ".join(schedule.pending) + "[/yellow]")
    counters = {name: after[name] if name in restarted else after[name] - before[name]
                for name in after}
    cut = {str(f): [topology.host_address(topology.paths[p][-1], p) for p in f.cut_paths(topology)]
           for f in faults}
    fault_reports = [dict(measure(record, cut[str(record.fault)], results, schedule.start),
                          kind=record.fault.kind(topology),
                          cut_paths=record.fault.cut_paths(topology))
                     for record in schedule.injected]
    int_logits = model.forward_int(model.quantize_input(x))
    s = summary(model, plans, topology, labels, model.float_model.predict(x), int_logits,
                results, counters, cloud_stats, target, lost, fault_reports, args.spread,
                link_delay)
    s["p4runtime"] = "plaintext" if args.plaintext else "mutual TLS"
    print_summary(console, s)
    (args.run_dir / "results.json").write_text(json.dumps(
        {"summary": s, "started_at": schedule.start, "requests": [asdict(r) for r in results]},
        indent=1) + "\n")
    console.print(f"results saved to {args.run_dir / 'results.json'}")
    if lost:
        console.print(f"[red]the network failed: {', '.join(lost)} lost during the run[/red]")
    return 0 if s["answered"] == s["requests"] and not lost else 1


def open_cli(bed: Testbed, console: Console, model_file: Path, inputs_file: Path, plan_: Plan,
             paths: list[str], clouds: list[str], topology_file: Path) -> int:
    from mininet.cli import CLI
    from mininet.log import setLogLevel

    py = sys.executable
    edge, cloud = bed.edge_host(paths[0]), bed.cloud_host(paths[0])
    cloud_ip = clouds[0]
    cloud_args = " ".join(f"--cloud {c}" for c in clouds)
    console.print(
        "\nEverything is deployed and the cloud servers run in "
        f"{', '.join(dict.fromkeys(bed.cloud_host(p) for p in paths))}. Try:\n"
        f"  pingall\n"
        f"  {edge} {py} tools/dcia_send.py --dst {cloud_ip} --model {model_file} "
        f"--inputs {inputs_file} --index 3 --edge-layers {plan_.stages[0].stop}\n"
        f"  {edge} {py} -m hosts.edge_agent --model {model_file} {cloud_args} "
        f"--edge-layers {plan_.stages[0].stop} --inputs {inputs_file} --requests 20\n"
        f"  {edge} {py} -m hosts.edge_agent ... --requests 300 > /tmp/edge.jsonl &   (then:)\n"
        f"  s2 {py} tools/dcia_sniff.py -i s2-eth1 --timeout 3\n"
        f"and, in another terminal: dcia status --topology {topology_file}"
        + (f" --tls {bed.tls_dir}" if bed.tls else "") + " (or make shell SWITCH=s1)\n"
        "`exit` stops everything.\n")
    setLogLevel("output")  # what the CLI's commands print
    CLI(bed.net)
    return 0
