"""The video analytics demo: smart cameras extract features, switches transform, the
cloud classifies; overload splitting keeps every frame answered.

    python -m demos.video [--target embedded|bmv2] [--cameras 4] [--fps 8] [--frames 60]

On ``topologies/video.toml`` (cam1..cam4 — agg1 — metro1 — dc1) in the Mininet
testbed. The frames are scikit-learn's handwritten digits, the held-out images of the
demo model (controller.demo_model: 64 -> 16 -> 16 -> 16 -> 10, trained on the others):
each camera streams its own seeded order of them at ``--fps``, the cameras' phases
spread over a frame interval (demos.video.frames). The model is planned with its first
layer on the camera (the features), its middle layers on the aggregation switch (the
first switch of a camera's path) and its last layer on the cloud only (as ``dcia testbed
run --cloud-layers 1``); every later switch on the path holds the middle layers too, as a
backup (Testbed.deploy ``backups``).

The switches' ``layers_per_s`` become per-layer meters (controller.entries.meter_config):
when the cameras together offer more frames than the aggregation switch may compute, it
passes the over-rate frames on uncomputed (counted ``deferred``) and the next switch
computes them, or, over its own meter, the cloud. The summary: frames per second
sustained per camera and in total, latency percentiles, frames dropped and late (answered
after the camera's next frame was due), accuracy (float, integer reference, deployed),
and what each node computed from the switches' counters; ``results.json`` in the run
directory holds it all.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from controller.demo_model import DemoModel, load_demo
from controller.planner import Constraints, Plan, plan
from controller.policy import Forbid
from controller.topology import Topology, load_topology
from dcia.capability import NodeKind
from dcia.model import QuantizedModel
from demos.common import (START_DELAY_S, EdgeJob, add_testbed_arguments, demo_testbed, ms_text,
                          percent_text, percentiles, run_edge_agents, save_results,
                          stages_text, testbed_options)
from demos.video.frames import Clock, outcome, rate, streams
from hosts.edge_agent import RequestResult
from mininet_topos.run import cloud_only, link_delay_text

log = logging.getLogger(__name__)

TOPOLOGY = Path(__file__).resolve().parents[2] / "topologies" / "video.toml"


@dataclass(frozen=True)
class Options:
    """What ``python -m demos.video`` takes (its ``--help`` says each)."""

    target: str = "embedded"
    cameras: int = 4
    fps: float = 8.0
    frames: int = 60
    seed: int = 14
    timeout_s: float = 0.5
    topology: Path = TOPOLOGY
    run_dir: Path = Path("logs/video")
    link_delay: str = "auto"
    tls: bool = True


@dataclass(frozen=True)
class VideoPlan:
    """The split on one camera's path: the plan, the aggregation switch that holds the
    middle layers, and the later switches holding them as its backups."""

    plan: Plan
    aggregation: str
    backups: dict[str, list[int]]

    @property
    def edge_layers(self) -> int:
        return self.plan.stages[0].stop


def video_plan(model: QuantizedModel, topology: Topology, path: str) -> VideoPlan:
    """Features (what the planner leaves there) on the camera, the middle layers on the
    path's first switch, the last layer on the cloud; later switches back the first up."""
    route = topology.route(path)
    switches = [n.name for n in route.nodes if n.kind == NodeKind.SWITCH]
    if not switches:
        raise SystemExit(f"path {path} of {topology.name} has no switch")
    n = len(model.layers)
    middle = frozenset(range(1, n - 1))
    forbid = cloud_only(n, 1) + tuple(Forbid(s, middle) for s in switches[1:])
    the_plan = plan(model.layers, route, Constraints(forbid=forbid))
    mine = [i for i, node in enumerate(the_plan.assignment) if node == switches[0]]
    return VideoPlan(the_plan, switches[0], {s: mine for s in switches[1:]} if mine else {})


def run(opts: Options, console: Console) -> dict:
    """Run the demo; returns the summary (also written to ``results.json``)."""
    topology = load_topology(opts.topology)
    paths = list(topology.paths)[: opts.cameras]
    if len(paths) < opts.cameras:
        raise SystemExit(f"{opts.topology} has {len(paths)} camera paths, not {opts.cameras}")
    demo = load_demo()
    qm = demo.quantized
    plans = {p: video_plan(qm, topology, p) for p in paths}
    run_dir = opts.run_dir.resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    model_file = qm.save(run_dir / "model.json")
    clock = Clock(opts.fps, len(paths))
    images = streams(len(demo.split.x_test), len(paths), opts.frames, opts.seed)
    cameras = [topology.route(p).nodes[0].name for p in paths]
    first = plans[paths[0]]
    console.print(f"[bold]video demo[/bold]: {len(paths)} cameras ({', '.join(cameras)}) at "
                  f"{opts.fps:g} frames/s each, {clock.offered_fps():g} in total, "
                  f"{opts.frames} frames each; plan "
                  + stages_text(first.plan)
                  + "".join(f"; {b} backs {first.aggregation} up" for b in first.backups))
    with demo_testbed(topology, opts, run_dir) as bed:
        deployed = set()
        for p, vp in plans.items():  # one deployment per distinct chain of switches
            chain = tuple(vp.plan.assignment) + tuple(topology.paths[p][1:-1])
            if chain not in deployed:
                bed.deploy(qm, vp.plan, backups=vp.backups)
                deployed.add(chain)
        cloud = bed.start_cloud(model_file, path=paths[0])
        before = bed.counters()
        start = time.time() + START_DELAY_S
        jobs = []
        for k, (p, host) in enumerate(zip(paths, cameras)):
            inputs_file = run_dir / f"{host}-inputs.npy"
            np.save(inputs_file, demo.split.x_test[images[k]])
            jobs.append(EdgeJob(host, [
                "--model", str(model_file), "--cloud", bed.address(bed.cloud_host(p), p),
                "--edge-layers", str(plans[p].edge_layers), "--inputs", str(inputs_file),
                "--rate", str(opts.fps), "--start-at", repr(start + clock.phase(k)),
                "--timeout", str(opts.timeout_s), "--attempts", "3", "--window", "32",
                "--give-up-after", "0"]))
        results = run_edge_agents(bed, jobs)
        time.sleep(0.2)
        after = bed.counters()
        cloud_stats = cloud.stop()
        link_delay = bed.link_delay_report()
    counters = {name: after[name] - before[name] for name in after}
    s = summary(demo, plans, topology, cameras, paths, images, results, start, clock,
                counters, cloud_stats)
    s.update(target=opts.target, topology=str(opts.topology), fps=opts.fps, seed=opts.seed,
             link_delay=link_delay)
    save_results(run_dir, s)
    print_summary(console, s)
    return s


def summary(demo: DemoModel, plans: dict[str, VideoPlan], topology: Topology,
            cameras: list[str], paths: list[str], images: list[np.ndarray],
            results: dict[str, list[RequestResult]], start: float, clock: Clock,
            counters: dict, cloud_stats: dict) -> dict:
    qm, x_all, y_all = demo.quantized, demo.split.x_test, demo.split.y_test
    n_layers = len(qm.layers)
    per_camera, everything, labels_all, identical = {}, [], [], 0
    for k, (host, p) in enumerate(zip(cameras, paths)):
        rs = results[host]
        x, labels = x_all[images[k]], y_all[images[k]]
        reference = qm.forward_int(qm.quantize_input(x))
        ok = [r for r in rs if r.ok]
        identical += sum(r.logits == reference[r.index].tolist() for r in ok)
        o = outcome(rs, start, clock, k)
        in_net = [r for r in ok if r.cloud_from == n_layers - 1]
        per_camera[host] = {
            **asdict(o), "path": p, "phase_ms": clock.phase(k) * 1000,
            "correct": sum(r.predicted == labels[r.index] for r in ok),
            "middle layers in the network": len(in_net),
            "middle layers at the cloud": len(ok) - len(in_net),
            "retried": sum(r.retried for r in rs),
            "latency_ms": percentiles([r.latency_s for r in ok]),
        }
        everything += rs
        labels_all += [labels[r.index] for r in rs]
    x = np.concatenate([x_all[i] for i in images])
    y = np.concatenate([y_all[i] for i in images])
    ok = [r for r in everything if r.ok]
    in_net = [r for r in ok if r.cloud_from == n_layers - 1]
    elsewhere = [r for r in ok if r.cloud_from != n_layers - 1]
    nodes = {}
    for name, c in counters.items():
        nodes[name] = {"error": c.error} if c.lost else {
            "layers": {str(k): v for k, v in sorted(c.layers.items())},
            "stats": {k: v for k, v in c.stats.items() if v},
            "layers_per_s": topology.switches[name].capability.layers_per_s}
    vp = plans[paths[0]]
    return {
        "frames": len(everything), "cameras": len(cameras),
        "offered fps": clock.offered_fps(),
        "answered": len(ok), "dropped": len(everything) - len(ok),
        "late": sum(c["late"] for c in per_camera.values()),
        "sustained fps": rate([r.ended_at for r in ok]),
        "answers identical to the integer reference": identical,
        "accuracy": {
            "float model": float(np.mean(demo.float_model.predict(x) == y)),
            "integer reference": float(np.mean(
                qm.forward_int(qm.quantize_input(x)).argmax(axis=1) == y)),
            "deployed (answers)": float(np.mean(
                [r.predicted == label for r, label in zip(everything, labels_all) if r.ok]))
            if ok else None,
        },
        "latency_ms": {"every frame": percentiles([r.latency_s for r in ok]),
                       "middle layers on a switch": percentiles([r.latency_s for r in in_net]),
                       "middle layers at the cloud": percentiles([r.latency_s for r in elsewhere])},
        "camera": per_camera,
        "aggregation switch": vp.aggregation, "backups": vp.backups,
        "plan": [{"node": st.node, "layers": list(st.layers)} for st in vp.plan.stages],
        "nodes": nodes,
        "cloud": {k: cloud_stats.get(k) for k in ("requests", "answered", "layers_computed",
                                                   "arrivals", "retries")},
    }


def _fps(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def print_summary(console: Console, s: dict) -> None:
    head = Table(title=f"DCIA video demo: {s['cameras']} cameras, {s['frames']} frames, "
                       f"{s['target']} switches", show_header=False)
    head.add_row("frames offered per second (all cameras)", f"{s['offered fps']:g}")
    head.add_row("frames answered per second, sustained (all cameras)", _fps(s["sustained fps"]))
    head.add_row("frames answered / dropped / late",
                 f"{s['answered']} / {s['dropped']} / {s['late']}")
    head.add_row("answers identical to the integer reference",
                 f"{s['answers identical to the integer reference']} / {s['answered']}")
    for name, value in s["accuracy"].items():
        head.add_row(f"accuracy, {name}", percent_text(value))
    head.add_row("link delay and loss", link_delay_text(s["link_delay"]))
    for name, p in s["latency_ms"].items():
        head.add_row(f"latency p50 / p90 / p99, {name}", ms_text(p))
    console.print(head)

    cams = Table(title=f"cameras ({s['fps']:g} frames/s each; late: answered after the "
                       "camera's next frame was due)")
    for col in ("camera", "phase / started late by", "frames", "answered / dropped / late",
                "sustained fps",
                "middle layers: network / cloud", "correct", "latency p50 / p90 / p99"):
        cams.add_column(col)
    for host, c in s["camera"].items():
        cams.add_row(host, f"{c['phase_ms']:.1f} / {c['start_lag_s'] * 1000:.1f} ms",
                     str(c["frames"]),
                     f"{c['answered']} / {c['dropped']} / {c['late']}", _fps(c["sustained_fps"]),
                     f"{c['middle layers in the network']} / {c['middle layers at the cloud']}",
                     str(c["correct"]), ms_text(c["latency_ms"]))
    console.print(cams)

    nodes = Table(title="what each node computed (plan and counters)")
    for col in ("node", "planned layers", "layers/s: advertised (meter per layer)", "counted"):
        nodes.add_column(col)
    planned = {st["node"]: st["layers"] for st in s["plan"]}
    edge = planned[s["plan"][0]["node"]]
    for host, c in s["camera"].items():
        nodes.add_row(host, f"{edge[0]}..{edge[-1]} (features)", "-", f"{c['frames']} frames sent")
    for name, c in s["nodes"].items():
        layers = planned.get(name) or s["backups"].get(name, [])
        role = ("" if planned.get(name) else
                f" (backup of {s['aggregation switch']})" if name in s["backups"] else "")
        if "error" in c:
            text = f"[red]{c['error']}[/red]"
        else:
            st = c["stats"]
            text = "; ".join(filter(None, [
                ", ".join(f"layer {k}: {v}" for k, v in c["layers"].items()),
                f"deferred {st.get('deferred', 0)}",
                f"pass-through {st.get('pass-through', 0)}"]))
        rate_ = c.get("layers_per_s")
        meter = ("-" if rate_ is None else
                 f"{rate_:g} ({rate_ / len(layers):g})" if layers else f"{rate_:g}")
        nodes.add_row(name, (f"{layers[0]}..{layers[-1]}" if layers else "-") + role, meter, text)
    cloud, cloud_node = s["cloud"], s["plan"][-1]["node"]
    arrivals = ", ".join(f"{v} at layer {k}" for k, v in (cloud["arrivals"] or {}).items())
    nodes.add_row(cloud_node, "{}..{}".format(planned[cloud_node][0], planned[cloud_node][-1]),
                  "-", f"{cloud['answered']} frames answered; arrived {arrivals}; "
                       f"{cloud['layers_computed']} layers computed")
    console.print(nodes)


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m demos.video",
        description="Video analytics (issue 14): smart cameras extract features from frames "
                    "of real images, P4 switches run the intermediate layers, the cloud "
                    "classifies; frames over a switch's rate are computed by the next "
                    "capable node.")
    parser.add_argument("--cameras", type=int, default=Options.cameras,
                        help="cameras streaming (the first N paths of the topology)")
    parser.add_argument("--fps", type=float, default=Options.fps,
                        help="frames per second of each camera")
    parser.add_argument("--frames", type=int, default=Options.frames,
                        help="frames per camera (held-out digits images, at most 360)")
    parser.add_argument("--seed", type=int, default=Options.seed,
                        help="seed of each camera's order of the images")
    parser.add_argument("--timeout", type=float, default=Options.timeout_s,
                        help="seconds a camera waits for an answer before it sends again")
    add_testbed_arguments(parser, Options.topology, Options.run_dir)
    a = parser.parse_args(argv)
    if not 1 <= a.frames <= 360:
        parser.error("--frames must be in 1..360 (the held-out images)")
    if a.cameras < 1:
        parser.error("--cameras must be 1 or more")
    if a.fps <= 0:
        parser.error("--fps must be more than 0")
    return Options(cameras=a.cameras, fps=a.fps, frames=a.frames, seed=a.seed,
                   timeout_s=a.timeout, **testbed_options(a))


def main(argv: list[str] | None = None) -> int:
    s = run(parse_args(argv), Console())
    ok = s["dropped"] == 0 and s["answers identical to the integer reference"] == s["answered"]
    return 0 if ok else 1
