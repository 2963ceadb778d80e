"""What partition integrity costs: signing a deployment's manifest, verifying it against
the model and deployment at hand (what ``dcia deploy --manifest`` adds before writing),
and auditing every switch (``dcia audit``), next to the deployment transaction itself, on
each switch target in the same run.

The demo model on topologies/linear.toml (three switch processes on free local ports, no
data-plane ports needed), the median of ``--runs`` runs of each step.

    .venv/bin/python -m bench.integrity_bench [--runs 5] [--out results]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import finsy as fy
from rich.console import Console
from rich.table import Table

from bench.plots import figure
from controller import session
from controller.demo_model import load_demo
from controller.deployment import from_plan
from controller.integrity import audit, check_deployment
from controller.manifest import generate_key, manifest_of, verify
from controller.planner import plan
from controller.topology import load_topology
from dcia.artifacts import Pipeline
from dcia.targets import SwitchConfig, SwitchProcess, find_bmv2
from tests.topology_files import on_free_ports

STEPS = ("sign", "verify", "audit", "deploy")


def measure(target: str, runs: int, work: Path) -> dict:
    addr = on_free_ports(Path("topologies/linear.toml"), work / "linear.toml")
    topology = load_topology(work / "linear.toml")
    model = load_demo().quantized
    best = plan(model.layers, topology.route())
    deployment = from_plan(best, model.layers, topology, model_id=1, version=1)
    schema = fy.P4Schema(Pipeline.default().p4info)
    key = generate_key()
    times: dict[str, list[float]] = {step: [] for step in STEPS}
    procs = [SwitchProcess(target, SwitchConfig(ports={}, grpc_addr=a, device_id=int(n[1:])),
                           stdout_path=work / f"{target}-{n}.out").start() for n, a in addr.items()]
    try:
        asyncio.run(session.apply(deployment))
        for _ in range(runs):
            t = time.perf_counter()
            signed = manifest_of(deployment, model.layers, model=model.name, topology=topology.name,
                                 path=best.route, assignment=best.assignment,
                                 schema=schema).sign(key, "ops")
            times["sign"].append(time.perf_counter() - t)
            t = time.perf_counter()
            verify(signed, {"ops": key.public_key()})
            check_deployment(signed, deployment, model.layers, model=model.name, topology=topology,
                             plan=best)
            times["verify"].append(time.perf_counter() - t)
            t = time.perf_counter()
            findings, unreadable = asyncio.run(audit(signed, topology))
            times["audit"].append(time.perf_counter() - t)
            if findings or unreadable:
                raise RuntimeError(f"the audit of an untouched deployment found {findings} {unreadable}")
            t = time.perf_counter()
            asyncio.run(session.apply(deployment))
            times["deploy"].append(time.perf_counter() - t)
    finally:
        for p in procs:
            p.stop()
    entries = sum(len(part.entries) for part in signed.switches.values())
    return {"target": target, "entries": entries, "switches": len(signed.switches), "runs": runs,
            **{f"{step}_ms": 1e3 * statistics.median(v) for step, v in times.items()}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", type=Path, default=Path("results"))
    args = ap.parse_args(argv)
    targets = ["embedded"] + (["bmv2"] if find_bmv2() is not None else [])
    rows = []
    with tempfile.TemporaryDirectory(prefix="integrity-bench-") as tmp:
        for target in targets:
            rows.append(measure(target, args.runs, Path(tmp)))
    table = Table(title=f"Partition integrity, demo model on 3 switches, median of {args.runs}")
    for column in ("target", "entries", "sign", "verify (deploy --manifest)", "audit",
                   "deployment (no change)"):
        table.add_column(column, justify="left" if column == "target" else "right")
    for r in rows:
        table.add_row(r["target"], str(r["entries"]), *(f"{r[f'{s}_ms']:.1f} ms" for s in STEPS))
    Console().print(table)
    if "bmv2" not in targets:
        print("skipped: bmv2 (simple_switch_grpc not found)")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "integrity_bench.json").write_text(json.dumps(rows, indent=2) + "\n")
    _plot(rows, args.out / "integrity_bench.png")
    print(f"saved {args.out / 'integrity_bench.json'} and {args.out / 'integrity_bench.png'}")
    return 0


def _plot(rows: list[dict], path: Path) -> None:
    with figure(path, "Signing, verifying and auditing a deployment") as ax:
        width = 0.8 / len(rows)
        for i, r in enumerate(rows):
            ax.bar([k + i * width for k in range(len(STEPS))], [r[f"{s}_ms"] for s in STEPS],
                   width, label=r["target"])
        ax.set_xticks([k + width * (len(rows) - 1) / 2 for k in range(len(STEPS))], STEPS)
        ax.set_ylabel("ms (median)")
        ax.legend()


if __name__ == "__main__":
    sys.exit(main())
