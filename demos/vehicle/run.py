"""The vehicle demo: onboard units, fusion at the roadside switch, the decision in the cloud.

    python -m demos.vehicle [--target embedded|bmv2] [--frames 120] [--rate 20] [--drop 0.05]

On ``topologies/vehicles.toml`` (obu1, obu2 — rsu1 — core1 — cloud1) in the Mininet
testbed: the model of demos.vehicle.model is imported from models/vehicle_fusion.onnx,
quantized and planned with its fusion layer at the first switch both units' paths share
(controller.fusion) and deployed as any model (Testbed.deploy). Each frame is one
held-out digits image; onboard unit ``k`` sees view ``k`` of it (obu1 the left half, obu2
the right), runs the first stage and sends its 16 features as member ``k`` of the frame's
fusion group (hosts.edge_agent ``--fusion-member``), both units paced to the same frame
clock. The roadside switch fuses each group in its registers and sends the fused tensor
on; the cloud (hosts.cloud_server with the units as ``--fusion-member``) finishes the
model and answers both units. ``--drop P`` makes each sensor miss a frame with
probability P: that group stays partial at the switch until the unit that did send waits
past the timeout and sends a flush before its retry; the switch then releases it (counted
``timed out``) and the cloud answers it from the member present.

The summary: frames per unit, groups fused / timed out (the switch's ``fusion_stats``),
latency percentiles per frame and of the fusion step, accuracy (float, integer reference,
deployed) and what each node computed; ``results.json`` in the run directory holds it all.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from controller.fusion import fusion_constraints
from controller.planner import Constraints, Plan, plan
from controller.topology import load_topology
from demos.common import (START_DELAY_S, EdgeJob, add_testbed_arguments, counter_diff,
                          demo_testbed, ms_text, percent_text, percentiles, read_switches,
                          run_edge_agents, save_results, stages_text, testbed_options)
from demos.vehicle.model import VIEWS, VehicleModel, load_vehicle, members_of
from hosts.edge_agent import RequestResult
from mininet_topos.run import link_delay_text
from mininet_topos.testbed import Testbed

log = logging.getLogger(__name__)

TOPOLOGY = Path(__file__).resolve().parents[2] / "topologies" / "vehicles.toml"


@dataclass(frozen=True)
class Options:
    """What ``python -m demos.vehicle`` takes (its ``--help`` says each)."""

    target: str = "embedded"
    frames: int = 120
    rate: float = 20.0
    drop: float = 0.05
    timeout_ms: float = 50.0
    seed: int = 14
    topology: Path = TOPOLOGY
    run_dir: Path = Path("logs/vehicle")
    link_delay: str = "auto"
    tls: bool = True


@dataclass(frozen=True)
class Unit:
    """One onboard unit: its host, member index, the frames its sensor saw."""

    host: str
    member: int
    path: str
    frames: np.ndarray


def sensed(frames: int, members: int, drop: float, seed: int) -> np.ndarray:
    """(frames, members) booleans: which sensor saw which frame (each misses one with
    probability ``drop``, independently; seeded)."""
    rng = np.random.default_rng(seed)
    return rng.random((frames, members)) >= drop


def run_units(bed: Testbed, model_file: Path, units: list[Unit], inputs: list[np.ndarray],
              opts: Options) -> dict[str, list[RequestResult]]:
    """Every unit's edge agent at once, on one frame clock; their results by host."""
    start_at = time.time() + START_DELAY_S
    jobs = []
    for unit, x in zip(units, inputs):
        inputs_file = bed.run_dir / f"{unit.host}-inputs.npy"
        groups_file = bed.run_dir / f"{unit.host}-groups.npy"
        np.save(inputs_file, x[unit.frames])
        np.save(groups_file, unit.frames + 1)  # group id = frame number + 1 (0 is not a group)
        cloud = bed.address(bed.cloud_host(unit.path), unit.path)
        jobs.append(EdgeJob(unit.host, [
            "--model", str(model_file), "--cloud", cloud,
            "--edge-layers", str(bed.deployed[-1][0].fusion_index),
            "--inputs", str(inputs_file), "--group-ids", str(groups_file),
            "--fusion-member", str(unit.member), "--rate", str(opts.rate),
            "--timeout", str(max(0.1, 4 * opts.timeout_ms / 1000)), "--attempts", "4",
            "--window", "32", "--give-up-after", "0", "--start-at", repr(start_at)]))
    return run_edge_agents(bed, jobs)


def run(opts: Options, console: Console) -> dict:
    """Run the demo; returns the summary (also written to ``results.json``)."""
    topology = load_topology(opts.topology)
    paths = list(topology.paths)
    vm = load_vehicle(timeout_us=int(opts.timeout_ms * 1000))
    qm = vm.quantized
    if len(paths) != qm.layers[qm.fusion_index].members:
        raise SystemExit(f"{opts.topology} has {len(paths)} paths; the model fuses "
                         f"{qm.layers[qm.fusion_index].members} members, one per path")
    switch, forbid = fusion_constraints(topology, paths, qm.layers)
    the_plan = plan(qm.layers, topology.route(paths[0]), Constraints(forbid=forbid))
    run_dir = opts.run_dir.resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    model_file = qm.save(run_dir / "model.json")
    x, labels = vm.split.x_test[: opts.frames], vm.split.y_test[: opts.frames]
    seen = sensed(len(x), len(paths), opts.drop, opts.seed)
    units = [Unit(topology.route(p).nodes[0].name, k, p, np.flatnonzero(seen[:, k]))
             for k, p in enumerate(paths)]
    inputs = members_of(x)
    console.print(f"[bold]vehicle demo[/bold]: {len(x)} frames at {opts.rate:g}/s from "
                  f"{', '.join(u.host for u in units)}; fusion at {switch}; plan "
                  f"{stages_text(the_plan)}")
    with demo_testbed(topology, opts, run_dir) as bed:
        bed.deploy(qm, the_plan)
        members = [bed.address(u.host, u.path) for u in units]
        cloud = bed.start_cloud(model_file, path=paths[0], args=[
            *(a for m in members for a in ("--fusion-member", m)),
            "--fusion-wait", str(opts.timeout_ms / 1000)])
        before = read_switches(bed)
        started = time.time()
        results = run_units(bed, model_file, units, inputs, opts)
        elapsed = time.time() - started - START_DELAY_S
        time.sleep(0.2)
        after = read_switches(bed)
        cloud_stats = cloud.stop()
        link_delay = bed.link_delay_report()
    s = summary(vm, the_plan, switch, units, seen, labels, results, before, after, cloud_stats)
    s.update(target=opts.target, topology=str(opts.topology), rate=opts.rate, drop=opts.drop,
             timeout_ms=opts.timeout_ms, elapsed_s=elapsed, link_delay=link_delay)
    save_results(run_dir, s)
    print_summary(console, s)
    return s


def summary(vm: VehicleModel, the_plan: Plan, switch: str, units: list[Unit], seen: np.ndarray,
            labels: np.ndarray, results: dict[str, list[RequestResult]], before: dict,
            after: dict, cloud_stats: dict) -> dict:
    qm, fm = vm.quantized, vm.float_model
    n = len(labels)
    x = vm.split.x_test[:n]
    members_f = members_of(x)
    members_q = [qm.quantize_input(m) for m in members_f]
    full = (1 << len(units)) - 1
    by_frame: dict[int, dict[int, RequestResult]] = {}
    for unit in units:
        for r in results[unit.host]:
            by_frame.setdefault(r.request_id - 1, {})[unit.member] = r
    answer_of: dict[int, RequestResult] = {}
    identical = wrong_members = 0
    for frame, got in by_frame.items():
        ok = [r for r in got.values() if r.ok]
        if not ok:
            continue
        answer_of[frame] = ok[0]
        bitmap = ok[0].fused
        present = [members_q[k][frame:frame + 1] for k in range(len(units)) if bitmap >> k & 1]
        ref = qm.forward_int_group(present)[0].tolist() if present else None
        identical += all(r.logits == ref for r in ok)
        wrong_members += bitmap != sum(1 << k for k in range(len(units)) if seen[frame, k])
    frames_sensed = int(seen.any(axis=1).sum())
    deployed = [answer_of[f].predicted == labels[f] for f in answer_of]
    sensed_members = [[members_q[k][f:f + 1] for k in range(len(units)) if seen[f, k]]
                      for f in range(n)]
    ref_sensed = [qm.forward_int_group(m)[0].argmax() == labels[f]
                  for f, m in enumerate(sensed_members) if m]
    accuracy = {
        "float model, both views": float(np.mean(fm.forward_group(members_f).argmax(1) == labels)),
        "integer reference, both views": float(np.mean(
            qm.forward_int_group(members_q).argmax(1) == labels)),
        "integer reference, the views sensed": float(np.mean(ref_sensed)) if ref_sensed else None,
        "deployed (answers)": float(np.mean(deployed)) if deployed else None,
    }
    per_unit = {}
    latencies, complete_lat, partial_lat = [], [], []
    for unit in units:
        rs = results[unit.host]
        ok = [r for r in rs if r.ok]
        per_unit[unit.host] = {
            "member": unit.member, "view": VIEWS[unit.member], "frames sensed": len(unit.frames),
            "answered": len(ok), "answers fused from all": sum(r.fused == full for r in ok),
            "answers partial": sum(r.fused != full for r in ok),
            "unanswered": len(rs) - len(ok), "retried": sum(r.attempts > 1 for r in rs),
            "latency_ms": percentiles([r.latency_s for r in ok]),
        }
        latencies += [r.latency_s for r in ok]
        complete_lat += [r.latency_s for r in ok if r.fused == full]
        partial_lat += [r.latency_s for r in ok if r.fused != full]
    skew, after_last = [], []
    for got in by_frame.values():
        if len(got) == len(units) and all(r.ok and r.fused == full and r.attempts == 1
                                          for r in got.values()):
            sent = [r.sent_at for r in got.values()]
            skew.append(max(sent) - min(sent))
            after_last.append(min(r.ended_at for r in got.values()) - max(sent))
    nodes = {}
    for name in after:
        a, b = after[name], before[name]
        nodes[name] = {"error": a.error} if a.error or b.error else {
            "layers": {str(k): v for k, v in
                       counter_diff(a.layers_computed, b.layers_computed).items()},
            "stats": counter_diff(a.stats, b.stats), "fusion": counter_diff(a.fusion, b.fusion)}
    fusion = nodes.get(switch, {}).get("fusion", {})
    return {
        "frames": n, "frames sensed": frames_sensed, "frames answered": len(answer_of),
        "answers identical to the integer reference": identical,
        "answers whose members differ from those sensed": wrong_members,
        "fusion switch": switch, "accuracy": accuracy, "units": per_unit,
        "groups": {"fused in the network": fusion.get("fused", 0),
                   "timed out at the switch": fusion.get("timed out", 0),
                   "switch counters": fusion, "cloud join": cloud_stats.get("fusion", {})},
        "latency_ms": {"every answer": percentiles(latencies),
                       "groups fused from all": percentiles(complete_lat),
                       "partial groups": percentiles(partial_lat)},
        "fusion_step_ms": {"first to last member sent (the wait at the switch)": percentiles(skew),
                           "last member sent to the answer": percentiles(after_last)},
        "plan": [{"node": st.node, "layers": list(st.layers)} for st in the_plan.stages],
        "nodes": nodes, "cloud": {k: cloud_stats.get(k) for k in ("requests", "answered",
                                                                   "layers_computed", "arrivals")},
    }


def print_summary(console: Console, s: dict) -> None:
    head = Table(title=f"DCIA vehicle demo: {s['frames']} frames, {s['target']} switches, "
                       f"fusion at {s['fusion switch']}", show_header=False)
    head.add_row("frames sensed (by one unit or more) / answered",
                 f"{s['frames sensed']} / {s['frames answered']}")
    head.add_row("answers identical to the integer reference of their members",
                 f"{s['answers identical to the integer reference']} / {s['frames answered']}")
    head.add_row("answers made of other members than were sensed",
                 str(s["answers whose members differ from those sensed"]))
    g = s["groups"]
    head.add_row("groups fused at the switch / timed out there (partial)",
                 f"{g['fused in the network']} / {g['timed out at the switch']}")
    cj = g["cloud join"]
    if cj:
        head.add_row("cloud: groups answered complete / partial; parts joined there",
                     f"{cj.get('groups complete', 0)} / {cj.get('groups partial', 0)}; "
                     f"{cj.get('joined here', 0)}")
    for name, value in s["accuracy"].items():
        head.add_row(f"accuracy, {name}", percent_text(value))
    head.add_row("link delay and loss", link_delay_text(s["link_delay"]))
    for name, p in s["latency_ms"].items():
        head.add_row(f"latency p50 / p90 / p99, {name}", ms_text(p))
    for name, p in s["fusion_step_ms"].items():
        head.add_row(f"fusion step p50 / p90 / p99: {name}", ms_text(p))
    console.print(head)

    units = Table(title="onboard units")
    for col in ("unit", "view (member)", "frames sensed", "answered", "fused from all / partial",
                "unanswered", "retried (after a flush)", "latency p50 / p90 / p99"):
        units.add_column(col)
    for host, u in s["units"].items():
        units.add_row(host, f"{u['view']} ({u['member']})", str(u["frames sensed"]),
                      str(u["answered"]), f"{u['answers fused from all']} / {u['answers partial']}",
                      str(u["unanswered"]), str(u["retried"]), ms_text(u["latency_ms"]))
    console.print(units)

    nodes = Table(title="what each node computed (plan and counters)")
    for col in ("node", "planned layers", "counted"):
        nodes.add_column(col)
    planned = {st["node"]: st["layers"] for st in s["plan"]}
    for host, u in s["units"].items():
        nodes.add_row(host, "0 (its view's first stage)",
                      f"{u['frames sensed']} members sent")
    for name, c in s["nodes"].items():
        layers = planned.get(name, [])
        text = ("[red]" + c["error"] + "[/red]" if "error" in c else
                "; ".join(filter(None, [
                    ", ".join(f"layer {k}: {v}" for k, v in c["layers"].items()),
                    ", ".join(f"{k} {v}" for k, v in c["fusion"].items()),
                    f"pass-through {c['stats'].get('pass-through', 0)}"])))
        nodes.add_row(name, f"{layers[0]}..{layers[-1]}" if layers else "-", text)
    cloud = s["cloud"]
    cloud_node = s["plan"][-1]["node"]
    arrivals = ", ".join(f"{v} at layer {k}" for k, v in (cloud["arrivals"] or {}).items())
    nodes.add_row(cloud_node, "{}..{}".format(planned[cloud_node][0], planned[cloud_node][-1]),
                  f"{cloud['answered']} groups answered; packets {arrivals}; "
                  f"{cloud['layers_computed']} layers computed")
    console.print(nodes)


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m demos.vehicle",
        description="Vehicles with roadside fusion (issue 14): onboard units send their view's "
                    "features, the roadside P4 switch fuses them, the cloud decides.")
    parser.add_argument("--frames", type=int, default=Options.frames,
                        help="frames (held-out digits images, at most 360)")
    parser.add_argument("--rate", type=float, default=Options.rate, help="frames per second")
    parser.add_argument("--drop", type=float, default=Options.drop,
                        help="probability that a sensor misses a frame (a partial group)")
    parser.add_argument("--timeout-ms", type=float, default=Options.timeout_ms,
                        help="how long a group waits for its members, at the switch and the cloud")
    parser.add_argument("--seed", type=int, default=Options.seed, help="seed of the sensor misses")
    add_testbed_arguments(parser, Options.topology, Options.run_dir)
    a = parser.parse_args(argv)
    if not 1 <= a.frames <= 360:
        parser.error("--frames must be in 1..360 (the held-out images)")
    if not 0 <= a.drop < 1:
        parser.error("--drop must be in 0..1")
    return Options(frames=a.frames, rate=a.rate, drop=a.drop, timeout_ms=a.timeout_ms,
                   seed=a.seed, **testbed_options(a))


def main(argv: list[str] | None = None) -> int:
    s = run(parse_args(argv), Console())
    return 0 if s["frames answered"] == s["frames sensed"] else 1
