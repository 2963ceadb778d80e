"""``dcia eval`` (``make eval``) and ``dcia calibrate``: every strategy in every scenario, on
real packets in the Mininet testbed.

    dcia eval [--scenario scenarios/constrained.toml ...] [--requests 200] [--out results]
              [--model conv]     # another model than the scenario's (the result: <scenario>-conv)
    dcia calibrate --scenario scenarios/constrained.toml [--out results/calibration]

Per scenario (one testbed, one cloud server, the same inputs for every strategy):

1. the network of the scenario (its topology with the link overrides, the edge host in a
   CPU cgroup at ``edge_cpu``) starts, routed, P4Runtime on free local ports;
2. the calibration (evaluation.calibration) is read from ``<out>/calibration/<scenario>.json``
   or, when missing (or ``--recalibrate``), measured in this network and written there;
3. each strategy (evaluation.strategies) is planned on the calibrated topology, deployed
   (switch stages through controller.session, as ``make run`` does), and run: the edge agent
   sends the same ``requests`` test images one at a time (a window of one: latency, not
   queueing, is what the planner predicts); the edge host's interface counters give the
   bytes it sent, the last switch's port counters the bytes that reached the cloud host;
4. the table, ``<out>/eval.json`` and the plots (evaluation.report).

A strategy that has no plan in a scenario (the policy forbids it) is reported and skipped.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from controller.demo_model import DemoModel, load_demo
from controller.planner import Constraints, evaluate
from dcia.errors import DciaError
from dcia.targets import free_tcp_ports
from evaluation import calibration as cal
from evaluation.report import ScenarioResult, StrategyRun, print_report, write
from evaluation.scenario import MODELS, Scenario, load_scenario
from evaluation.strategies import Strategy, plan_for, strategy_of

log = logging.getLogger(__name__)

SCENARIO_DIR = Path(__file__).resolve().parent.parent / "scenarios"


def configure_eval(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scenario", action="append", type=Path, metavar="FILE",
                        help="scenario file (repeatable; default: every scenarios/*.toml)")
    parser.add_argument("--strategy", action="append", choices=[str(s) for s in Strategy],
                        help="only these strategies (repeatable; default: all)")
    parser.add_argument("--requests", type=int, help="requests per strategy (default: the scenario's)")
    parser.add_argument("--target", default="embedded", choices=["auto", "embedded", "bmv2"],
                        help="switch target (default: embedded)")
    parser.add_argument("--out", type=Path, default=Path("results"),
                        help="eval.json, plots, calibration/ and logs/ go here")
    parser.add_argument("--recalibrate", action="store_true",
                        help="measure the calibration again even where its file exists")
    parser.add_argument("--model", choices=MODELS,
                        help="evaluate this model instead of each scenario's (its results and "
                             "calibration are named <scenario>-<model>)")


def configure_calibrate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scenario", required=True, type=Path, metavar="FILE", help="scenario file")
    parser.add_argument("--target", default="embedded", choices=["auto", "embedded", "bmv2"])
    parser.add_argument("--out", type=Path, default=Path("results/calibration"),
                        help="the calibration file goes here, as <scenario>.json")


def run_eval(args: argparse.Namespace, console: Console) -> int:
    files = args.scenario or sorted(SCENARIO_DIR.glob("*.toml"))
    scenarios = [with_model(load_scenario(f), args.model) for f in files]
    strategies = [Strategy(s) for s in args.strategy] if args.strategy else list(Strategy)
    if args.requests is not None and args.requests < 1:
        raise DciaError(f"--requests must be 1 or more, not {args.requests}")
    results = []
    started = time.time()
    with _progress(console) as progress:
        for scenario in scenarios:
            results.append(evaluate_scenario(
                scenario, strategies, args.requests or scenario.requests, args.target, args.out,
                progress, recalibrate=args.recalibrate))
    print_report(console, results)
    files = write(results, args.out, {"target": args.target, "started_at": started,
                                      "seconds": time.time() - started})
    console.print("written: " + ", ".join(str(f) for f in files))
    failed = [f"{r.name}/{run.strategy}" for r in results for run in r.runs
              if run.answered < run.requests]
    if failed:
        console.print(f"[red]unanswered requests in {', '.join(failed)}[/red]")
    return 1 if failed else 0


def run_calibrate(args: argparse.Namespace, console: Console) -> int:
    scenario = load_scenario(args.scenario)
    with _progress(console) as progress:
        calibration = evaluate_scenario(scenario, [], 0, args.target, args.out.parent, progress,
                                        recalibrate=True, calibration_dir=args.out).calibration
    console.print_json(json.dumps({k: calibration[k] for k in ("nodes", "link_delay_ms")}))
    console.print(f"written: {args.out / (scenario.name + '.json')}")
    return 0


def with_model(scenario: Scenario, model: str | None) -> Scenario:
    """``scenario`` evaluating ``model`` (None or its own: unchanged), renamed
    ``<name>-<model>`` so that its results and calibration are its own."""
    if model is None or model == scenario.model:
        return scenario
    return replace(scenario, name=f"{scenario.name}-{model}", model=model)


def load_model(name: str) -> DemoModel:
    """The float and quantized model ``name`` (scenario.MODELS) and the digits split."""
    if name == "conv":
        from evaluation.conv_model import load_conv
        return load_conv()
    return load_demo()


def _progress(console: Console) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[status]}"), TimeElapsedColumn(), console=console)


def evaluate_scenario(scenario: Scenario, strategies: list[Strategy], requests: int, target: str,
                      out: Path, progress: Progress, *, recalibrate: bool = False,
                      calibration_dir: Path | None = None) -> ScenarioResult:
    """Run ``strategies`` in ``scenario``'s network; the calibration is read from
    ``calibration_dir`` (default ``<out>/calibration``) or measured there first."""
    from mininet_topos.p4switch import resolve_target
    from mininet_topos.testbed import Shaping, Testbed

    topology = scenario.topology()
    demo = load_model(scenario.model)
    model = demo.quantized
    n = len(model.layers)
    run_dir = (out / "logs" / scenario.name).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    rows = max(requests, cal.CALIBRATION_REQUESTS)  # the strategies take the first ``requests``
    x = demo.split.x_test[np.arange(rows) % len(demo.split.x_test)]
    labels = demo.split.y_test[np.arange(len(x)) % len(demo.split.y_test)]
    model_file = model.save(run_dir / "model.json")
    inputs_file = run_dir / "inputs.npy"
    np.save(inputs_file, x)
    reference = model.forward_int(model.quantize_input(x))
    calibration_file = (calibration_dir or out / "calibration") / f"{scenario.name}.json"
    calibration = None if recalibrate or not calibration_file.exists() else cal.Calibration.load(calibration_file)
    task = progress.add_task(f"{scenario.name}", total=len(strategies) * requests + (calibration is None),
                             status="starting the network")
    grpc = {name: f"127.0.0.1:{port}" for name, port in
            zip(topology.switches, free_tcp_ports(len(topology.switches)))}
    runs = []
    with Testbed(topology, target=resolve_target(target), run_dir=run_dir, grpc=grpc,
                 shaping=Shaping(edge_cpu=scenario.edge_cpu, cloud_cpu=scenario.cloud_cpu)) as bed:
        bed.pingall()
        route = topology.route()
        edge, cloud = route.nodes[0].name, route.nodes[-1].name
        if scenario.edge_cpu is not None:
            cpu_period(bed.host(edge), scenario.edge_cpu, scenario.edge_cpu_period_ms)
        if scenario.cloud_cpu is not None:
            cpu_period(bed.host(cloud), scenario.cloud_cpu, scenario.cloud_cpu_period_ms)
        bed.start_cloud(model_file, host=cloud)
        if calibration is None:
            progress.update(task, status="calibrating")
            calibration = cal.measure(bed, scenario.name, model, model_file, inputs_file)
            calibration.save(calibration_file)
            progress.update(task, advance=1)
        planned_on = calibration.apply(topology)
        choice = strategy_of(plan_for(None, model.layers, planned_on, model_id=model.model_id), n)
        for strategy in strategies:
            progress.update(task, status=str(strategy))
            try:
                plan_ = plan_for(strategy, model.layers, planned_on, model_id=model.model_id)
            except DciaError as exc:
                log.warning("scenario %s: no plan for %s: %s", scenario.name, strategy, exc)
                progress.update(task, advance=requests)
                continue
            nominal = evaluate(model.layers, topology.route(), [
                next(i for i, node in enumerate(route.nodes) if node.name == name)
                for name in plan_.assignment], Constraints(min_edge_layers=0)).latency_s
            bed.deploy(model, plan_)
            edge_layers = plan_.stages[0].stop
            before = _bytes(bed, edge, cloud)
            results = bed.run_edge(model_file, inputs_file, edge_layers=edge_layers,
                                   requests=requests, window=1,
                                   timeout=1.0, local=edge_layers == n,
                                   on_result=lambda r: progress.update(task, advance=1))
            after = _bytes(bed, edge, cloud)
            ok = [r for r in results if r.ok]
            runs.append(StrategyRun(
                str(strategy), plan_.to_dict(), plan_.latency_s * 1e3, nominal * 1e3,
                [r.latency_s * 1e3 for r in ok], len(results), len(ok),
                int(sum(r.logits == reference[r.index].tolist() for r in ok)),
                int(sum(r.predicted == labels[r.index] for r in ok)),
                (max(r.ended_at for r in ok) - min(r.sent_at for r in ok)) if ok else 0.0,
                after[0] - before[0], after[1] - before[1]))
        link_delay = bed.link_delay_report()
        for proc in bed.clouds:
            proc.stop()
    progress.update(task, status="done")
    return ScenarioResult(scenario.name, scenario.description, runs, choice,
                          asdict(calibration) if calibration else {}, link_delay)


def cpu_period(host, share: float, period_ms: float) -> None:
    """Enforce ``host``'s CPU ``share`` (a Mininet CPULimitedHost) over CFS periods of
    ``period_ms`` (evaluation.scenario: Mininet's 100 ms lets short requests run unthrottled)."""
    host.period_us = int(period_ms * 1000)
    host.setCPUFrac(share)


def _bytes(bed, edge: str, cloud: str) -> tuple[int, int]:
    """Bytes the edge host has sent on its path interface, and the cloud host's switch
    port has sent towards it (interface counters: the edge's in its namespace)."""
    topology = bed.topology
    route = topology.route()
    edge_intf = f"{edge}-eth{topology.port(edge, route.nodes[1].name)}"
    last = route.nodes[-2].name
    cloud_intf = f"{last}-eth{topology.port(last, cloud)}"
    edge_stats = json.loads(bed.host(edge).cmd(f"ip -s -j link show dev {edge_intf}"))
    cloud_stats = json.loads(subprocess.run(["ip", "-s", "-j", "link", "show", "dev", cloud_intf],
                                            capture_output=True, text=True, check=True).stdout)
    return (int(edge_stats[0]["stats64"]["tx"]["bytes"]),
            int(cloud_stats[0]["stats64"]["tx"]["bytes"]))
