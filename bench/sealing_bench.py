"""What sealing tensors end to end costs (dcia.sealing, AES-256-GCM), per request.

1. On one core: building a request as the edge does (messages.tensor_request) and parsing it
   as the cloud does, plain and sealed (seal on the edge; open, then seal the answer, on the
   cloud), for tensors of 16 elements (the demo's activation), 64 (a raw digit), 256 and
   996 (the largest that can be sealed); the median of ``--iterations`` each.
2. In the testbed (needs root and Mininet): topologies/confidential.toml, where the policy
   seals the demo model and the plan runs layer 0 on the edge and the rest on the cloud,
   against the same topology and split without sealing (``--cloud-layers 3``); ``--requests``
   requests each, on the embedded switch, at a rate the edge keeps up with.

    .venv/bin/python -m bench.sealing_bench [--iterations 2000] [--requests 300] [--out results]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.plots import figure
from dcia.sealing import MAX_SEALED_ELEMS, OVERHEAD, new_key, seal, unseal
from hosts import messages
from tests.system.testbed_cli import dcia_testbed_run

SIZES = (16, 64, 256, MAX_SEALED_ELEMS)
REPO = Path(__file__).resolve().parents[1]


def median_us(work, iterations: int) -> float:
    times = []
    for _ in range(iterations):
        t = time.perf_counter()
        work()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e6


def per_request(iterations: int) -> list[dict]:
    key = new_key()
    rows = []
    for n in SIZES:
        elems = [(i % 255) - 127 for i in range(n)]

        def build():
            return messages.tensor_request(model_id=1, version=1, request_id=7, next_layer=1, elems=elems)

        plain = build()
        sealed = seal(plain, key)
        answer = messages.result_answer(messages.parse(plain), elems=elems[:10])
        rows.append({
            "elements": n,
            "build_us": median_us(build, iterations),
            "seal_us": median_us(lambda: seal(plain, key), iterations),
            "parse_us": median_us(lambda: messages.parse(plain), iterations),
            "open_us": median_us(lambda: unseal(sealed, key), iterations),
            "seal_answer_us": median_us(lambda: seal(answer, key), iterations),
            "bytes_plain": len(plain), "bytes_sealed": len(sealed),
        })
    return rows


def testbed(requests: int, work: Path) -> dict[str, dict]:
    """p50/p95 latency of the sealed and the plain run of the same split."""
    sealed_topology = work / "confidential.toml"
    text = (REPO / "topologies" / "confidential.toml").read_text()
    sealed_topology.write_text(text)
    plain_topology = work / "plain.toml"
    plain_topology.write_text(text.replace("sealed_models = [1]\n", "")
                              .replace('name = "confidential"', 'name = "confidential-plain"'))
    out = {}
    for name, topology, extra in (("plain", plain_topology, ["--cloud-layers", "3"]),
                                  ("sealed", sealed_topology, [])):
        code, output, report = dcia_testbed_run(
            work / name, "--topology", str(topology), "--target", "embedded",
            "--requests", str(requests), "--rate", "50", *extra, timeout=600)
        if code != 0:
            raise SystemExit(f"the {name} testbed run failed:\n{output[-2000:]}")
        s = report["summary"]
        out[name] = {"answered": s["answered"], "requests": s["requests"],
                     "identical": s["identical_to_reference"],
                     "sealed": sum(c.get("sealed", 0) for c in s["clouds"].values()),
                     **{k: v for k, v in s["latency_ms"].items()}}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--out", type=Path, default=Path("results"))
    parser.add_argument("--no-testbed", action="store_true", help="only the per-request figures")
    args = parser.parse_args(argv)
    console = Console()
    rows = per_request(args.iterations)
    table = Table(title=f"Sealing a tensor (AES-256-GCM), per request, median of {args.iterations}")
    for column in ("elements", "edge: build", "edge: + seal", "cloud: parse", "cloud: + open",
                   "cloud: + seal answer", "bytes plain → sealed"):
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(str(r["elements"]), f"{r['build_us']:.1f} µs", f"{r['seal_us']:.1f} µs",
                      f"{r['parse_us']:.1f} µs", f"{r['open_us']:.1f} µs",
                      f"{r['seal_answer_us']:.1f} µs", f"{r['bytes_plain']} → {r['bytes_sealed']} (+{OVERHEAD})")
    console.print(table)
    results: dict = {"per_request": rows}
    if not args.no_testbed:
        if os.geteuid() != 0:
            console.print("the testbed comparison needs root: skipped")
        else:
            with tempfile.TemporaryDirectory() as tmp:
                runs = testbed(args.requests, Path(tmp))
            results["testbed"] = runs
            t = Table(title=f"topologies/confidential.toml, edge layer 0, cloud layers 1-3, "
                            f"{args.requests} requests at 50/s, embedded switches")
            for column in ("tensors", "answered", "equal to the reference", "p50", "p95", "p99"):
                t.add_column(column, justify="right")
            for name, r in runs.items():
                t.add_row(name, f"{r['answered']}/{r['requests']}", str(r["identical"]),
                          *(f"{r[p]:.2f} ms" for p in ("p50", "p95", "p99")))
            console.print(t)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sealing.json").write_text(json.dumps(results, indent=1) + "\n")
    with figure(args.out / "sealing.png", "Per-request cost of sealing (µs, median)") as ax:
        labels = [str(r["elements"]) for r in rows]
        edge = [r["seal_us"] for r in rows]
        cloud = [r["open_us"] + r["seal_answer_us"] for r in rows]
        xs = range(len(rows))
        ax.bar([x - 0.2 for x in xs], edge, width=0.4, label="edge: seal")
        ax.bar([x + 0.2 for x in xs], cloud, width=0.4, label="cloud: open + seal answer")
        ax.set_xticks(list(xs), labels)
        ax.set_xlabel("tensor elements")
        ax.set_ylabel("µs")
        ax.legend()
    console.print(f"wrote {args.out / 'sealing.json'} and {args.out / 'sealing.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
