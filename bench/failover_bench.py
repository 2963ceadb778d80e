"""Failover, measured: how long traffic takes to flow on the surviving path after a
failure, over repeated runs of each fault kind, and whether any request was lost.

Three mechanisms, in the same run:

- **Edge-driven failover in the testbed** (hosts.edge_agent retries on the next cloud):
  ``dcia testbed run`` on topologies/redundant.toml with ``--fail`` killing a cloud
  server (h2), a switch process (s1) or taking a link down (s1-s2) mid-stream, and
  bringing it back. Every request crosses every node of its path (``--cloud-layers 1``,
  ``--max-layers-per-switch 1``). The failover time is the testbed's own measurement
  (mininet_topos.faults): from the fault to the first answer from a cloud the fault did
  not cut off. The detection interval is the edge's first wait, ``--timeout``.
- **Controller-driven failover** (``dcia steer``, the path selector): the four switch
  processes of topologies/redundant.toml, the loop reading them every 50 ms and taking a
  node dead after one missed reading; s1, on the deployed path, killed; the time from the
  kill to the logged ``failover`` decision, which is written once the backup path's
  deployment is in place. On the embedded switch and BMv2.
- **Data-plane fast failover** (watch ports on the steering selector's members, no
  controller): a group of two members on a switch process on veth pairs
  (tests/conformance/selector_rig.py), 1,000 frames/s, the link of one member taken
  down at its far end; the time from ``ip link set down`` to the last frame still sent
  the old way, and the frames lost in between, on the embedded switch and BMv2.

    .venv/bin/python -m bench.failover_bench [--runs 10] [--out results]

Needs root (Mininet, namespaces and veth pairs, created and removed here).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.progress import track
from rich.table import Table

from bench.plots import figure

ROOT = Path(__file__).resolve().parents[1]
FAULTS = {"cloud server killed": "h2@2s-3s", "switch process killed": "s1@2s-3s",
          "link down": "link:s1-s2@2s-3s"}
DETECTION_S = 0.05
"""The edge's first wait for an answer: an attempt unanswered this long goes to the other path."""
REQUESTS, RATE = 360, 60
"""6 s of requests: the fault at 2 s, the node back at 3 s."""


def testbed_failover(fault: str, run_dir: Path) -> dict:
    """One ``dcia testbed run`` with ``fault``; its failover time and request counts."""
    proc = subprocess.run(
        [sys.executable, "-m", "controller.cli", "testbed", "run", "--topology",
         "topologies/redundant.toml", "--target", "embedded", "--free-ports", "--run-dir",
         str(run_dir), "--cloud-layers", "1", "--max-layers-per-switch", "1",
         "--requests", str(REQUESTS), "--rate", str(RATE), "--timeout", str(DETECTION_S),
         "--fail", fault], cwd=ROOT, capture_output=True, text=True, timeout=300)
    results = run_dir / "results.json"
    if proc.returncode != 0 or not results.exists():
        return {"error": (proc.stderr or proc.stdout).strip().splitlines()[-1:]}
    summary = json.loads(results.read_text())["summary"]
    (report,) = summary["faults"]
    return {"failover_s": report["failover_s"], "recovery_s": report["recovery_s"],
            "lost": summary["lost"], "answered": summary["answered"],
            "retried": summary["retried"], "redirected": summary["redirected"],
            "identical": summary["identical_to_reference"]}


STEER_INTERVAL_S = 0.05
"""``dcia steer``'s reading interval in the controller-driven runs (dead after one miss)."""


def steer_failover(target: str, work: Path) -> dict:
    """One controller-driven failover: ``dcia steer`` over topologies/redundant.toml's four
    switch processes; s1 (on the deployed path) killed; the time from the kill to the
    logged ``failover`` decision, written after the new deployment is in place."""
    from controller.demo_model import load_demo
    from dcia.targets import SwitchConfig, SwitchProcess
    from tests.topology_files import on_free_ports

    work.mkdir(parents=True, exist_ok=True)
    topology, log = work / "redundant.toml", work / "decisions.jsonl"
    addresses = on_free_ports(ROOT / "topologies" / "redundant.toml", topology)
    model = load_demo().quantized.save(work / "model.json")
    procs = {n: SwitchProcess(target, SwitchConfig(ports={}, grpc_addr=a, device_id=int(n[1:])),
                              stdout_path=work / f"{n}.out").start() for n, a in addresses.items()}
    loop = subprocess.Popen(
        [sys.executable, "-m", "controller.cli", "steer", "--topology", str(topology), "--model",
         str(model), "--interval", str(STEER_INTERVAL_S), "--dead-after", "1", "--rounds", "400",
         "--log", str(log)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        if _decision(log, "deploy") is None:
            return {"error": ["no deploy decision in 60 s"]}
        procs.pop("s1").stop()
        killed = time.time()
        failover = _decision(log, "failover")
        if failover is None:
            return {"error": ["no failover decision in 60 s"]}
        # no traffic runs here: what it costs in requests is the edge's part (rows above)
        return {"failover_s": failover["time"] - killed, "recovery_s": None, "lost": None}
    finally:
        loop.terminate()
        loop.wait(30)
        for p in procs.values():
            p.stop()


def _decision(log: Path, action: str, timeout: float = 60) -> dict | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists():
            for line in log.read_text().splitlines():
                decision = json.loads(line)
                if decision["action"] == action:
                    return decision
        time.sleep(0.01)
    return None


def fast_failover(target: str, work: Path) -> dict:
    """One data-plane failover: a member's far end down under 1,000 frames/s."""
    from tests.conformance.selector_rig import SelectorSwitch, flows, measure_failover

    with SelectorSwitch(target, work) as sw:
        sw.client.write(*sw.members({1: 2, 2: 3}),
                        sw.group(1, {1: 1, 2: 1}, watch={1: 2, 2: 3}), +sw.entry(1))
        result = measure_failover(sw, flows(400, seed=5), port=2, side="host", bound=0.5,
                                  rate=1000)
    return {"failover_s": result.down_delay, "recovery_s": result.up_delay,
            "lost": result.lost_after_down, "disturbed": result.other_flows_disturbed}


def summarize(kind: str, mechanism: str, runs: list[dict]) -> dict:
    ok = [r for r in runs if "error" not in r and r["failover_s"] is not None]
    times = [r["failover_s"] for r in ok]
    return {"kind": kind, "mechanism": mechanism, "runs": len(runs), "measured": len(ok),
            "failover_median_ms": 1e3 * statistics.median(times) if times else None,
            "failover_max_ms": 1e3 * max(times) if times else None,
            "lost_total": (sum(r["lost"] for r in ok)
                           if any(r["lost"] is not None for r in ok) else None),
            "errors": [r["error"] for r in runs if "error" in r], "each": runs}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10, help="runs of each fault kind")
    ap.add_argument("--out", type=Path, default=Path("results"))
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("failover_bench skipped: it needs root (Mininet, namespaces and veth pairs)")
        return 0
    from dcia.targets import find_bmv2

    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="failover-bench-") as tmp:
        for kind, fault in FAULTS.items():
            runs = [testbed_failover(fault, Path(tmp) / f"{fault}-{i}".replace(":", "_"))
                    for i in track(range(args.runs), description=f"testbed: {kind}")]
            rows.append(summarize(kind, "edge retry (testbed)", runs))
        for target in ("embedded", "bmv2"):
            if target == "bmv2" and find_bmv2() is None:
                continue
            runs = [steer_failover(target, Path(tmp) / f"steer-{target}-{i}")
                    for i in track(range(args.runs), description=f"dcia steer: {target}")]
            rows.append(summarize(f"switch process killed ({target})", "controller (dcia steer)", runs))
            runs = [fast_failover(target, Path(tmp) / f"{target}-{i}")
                    for i in track(range(args.runs), description=f"watch ports: {target}")]
            rows.append(summarize(f"peer link down ({target})", "watch ports (data plane)", runs))
    table = Table(title=f"Failover: {args.runs} runs of each; detection interval "
                        f"{DETECTION_S * 1e3:.0f} ms at the edge, {STEER_INTERVAL_S * 1e3:.0f} ms "
                        "readings for dcia steer, none in the data plane")
    for column in ("fault", "mechanism", "measured", "median ms", "max ms", "lost"):
        table.add_column(column, justify="left" if column in ("fault", "mechanism") else "right")
    for r in rows:
        ms = (lambda v: f"{v:.1f}" if v is not None else "-")
        table.add_row(r["kind"], r["mechanism"], f"{r['measured']} of {r['runs']}",
                      ms(r["failover_median_ms"]), ms(r["failover_max_ms"]),
                      "-" if r["lost_total"] is None else str(r["lost_total"]))
    Console().print(table)
    for r in rows:
        for error in r["errors"]:
            print(f"{r['kind']}: a run failed: {error}")
    (args.out / "failover_bench.json").write_text(json.dumps(rows, indent=2) + "\n")
    _plot(rows, args.out / "failover_bench.png")
    print(f"saved {args.out / 'failover_bench.json'} and {args.out / 'failover_bench.png'}")
    return 0


def _plot(rows: list[dict], path: Path) -> None:
    with figure(path, "Failover time per fault kind") as ax:
        data = [[1e3 * r["failover_s"] for r in row["each"] if "error" not in r
                 and r["failover_s"] is not None] or [0.0] for row in rows]
        ax.boxplot(data, orientation="horizontal", tick_labels=[r["kind"] for r in rows])
        ax.set_xlabel("failure to traffic on the surviving path, ms")


if __name__ == "__main__":
    sys.exit(main())
