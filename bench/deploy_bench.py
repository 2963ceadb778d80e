"""Deployment time: batched WriteRequests against one update per request, same run.

Starts each available switch target (the embedded switch, and BMv2 where installed) and
deploys to two switches, undeploys, and repeats, once with ``DEFAULT_BATCH`` updates per
WriteRequest and once with one update per request:

- "demo": shaped like the demo model's in-network part (three 16-wide dense layers and a
  16->10 one): 66 table entries;
- "embedding": the same plus an embedding layer of 2,000 ids: 2,067 entries.

Each time covers the whole transaction: connecting, the pipeline check, the snapshot,
the writes and the read-back.

    python -m bench.deploy_bench [--repeats 5] [--out results/]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from controller import session
from controller.deployment import Deployment, SwitchAssignment, SwitchEndpoint
from controller.session import DEFAULT_BATCH
from dcia.arithmetic import Activation
from dcia.layers import DenseLayer, EmbeddingLayer
from dcia.targets import SwitchConfig, SwitchProcess, find_bmv2, free_tcp_port


def scenario(name: str, endpoints: list[SwitchEndpoint]) -> Deployment:
    rng = random.Random(0)

    def dense(n_in: int, n_out: int) -> DenseLayer:
        return DenseLayer([[rng.randint(-128, 127) for _ in range(n_in)] for _ in range(n_out)],
                          [rng.randint(-999, 999) for _ in range(n_out)],
                          [rng.randint(1, 65535) for _ in range(n_out)],
                          [rng.randint(10, 20) for _ in range(n_out)], Activation.RELU)

    first = {1: dense(16, 16), 2: dense(16, 16)}
    if name == "embedding":
        vocab = {i: [rng.randint(-128, 127) for _ in range(16)] for i in range(2000)}
        first = {0: EmbeddingLayer(vocab, dim=16), **first}
    return Deployment(1, 1, (
        SwitchAssignment(endpoints[0], first),
        SwitchAssignment(endpoints[1], {3: dense(16, 16), 4: dense(16, 10)}),
    ))


SCENARIOS = ("demo", "embedding")


def measure(target: str, repeats: int, workdir: Path) -> dict[str, list[float]]:
    procs = []
    try:
        for i in (1, 2):
            config = SwitchConfig(ports={}, grpc_addr=f"127.0.0.1:{free_tcp_port()}",
                                  device_id=i, log_level="warn")
            procs.append(SwitchProcess(target, config,
                                       stdout_path=workdir / f"{target}-s{i}.out").start())
        endpoints = [SwitchEndpoint(f"s{i}", p.config.grpc_addr, device_id=i)
                     for i, p in enumerate(procs, 1)]
        empty = Deployment(1, 1, tuple(SwitchAssignment(e) for e in endpoints))
        asyncio.run(session.apply(empty))  # pushes the pipeline; not timed
        times: dict[str, list[float]] = {}
        for name in SCENARIOS:
            plan = scenario(name, endpoints)
            for _ in range(repeats):
                for batch in (DEFAULT_BATCH, 1):
                    label = f"{name}, batch {batch}"
                    start = time.perf_counter()
                    asyncio.run(session.apply(plan, batch=batch))
                    times.setdefault(label, []).append(time.perf_counter() - start)
                    asyncio.run(session.apply(empty, batch=batch))
        return times
    finally:
        for p in procs:
            p.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args(argv)
    targets = ["embedded"] + (["bmv2"] if find_bmv2() else [])
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for target in targets:
            results[target] = measure(target, args.repeats, Path(tmp))
    table = Table(title="Deploying to 2 switches: whole transaction, seconds")
    for col in ("target", "scenario, writes", "median", "min", "max", "speed-up"):
        table.add_column(col, justify="left" if col in ("target", "scenario, writes") else "right")
    for target, times in results.items():
        for label, t in times.items():
            one = statistics.median(times[label.rsplit(",", 1)[0] + ", batch 1"])
            table.add_row(target, label, f"{statistics.median(t):.3f}", f"{min(t):.3f}",
                          f"{max(t):.3f}", f"{one / statistics.median(t):.2f}x")
    Console().print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "deploy_bench.json").write_text(json.dumps(results, indent=2) + "\n")
    _plot(results, args.out / "deploy_bench.png")
    print(f"saved {args.out / 'deploy_bench.json'} and {args.out / 'deploy_bench.png'}")
    return 0


def _plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    labels, values, colors = [], [], []
    for target, times in results.items():
        for label, t in times.items():
            labels.append(f"{target}: {label}")
            values.append(statistics.median(t))
            colors.append("tab:orange" if label.endswith("batch 1") else "tab:blue")
    ax.barh(labels, values, color=colors)
    ax.invert_yaxis()
    ax.set_xlabel("median deployment time (s)")
    ax.tick_params(axis="y", labelsize=8)
    ax.set_title("Deployment: batched (blue) vs one update per request (orange)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    raise SystemExit(main())
