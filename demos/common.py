"""What the use-case demos share: their testbed options and how they start the testbed,
edge agents started together in their hosts, the switches' state read before and after,
and the numbers and formats of their summaries.

    results = run_edge_agents(bed, [EdgeJob("cam1", [...options of hosts.edge_agent...])])
    percentiles([0.010, 0.012, 0.030])   # {'p50': 12.0, 'p90': 26.4, 'p99': 29.64} (ms)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import queue
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from controller.planner import Plan
from controller.session import SwitchStatus, switch_status
from controller.topology import Topology
from dcia.targets import free_tcp_ports
from hosts.edge_agent import RequestResult
from mininet_topos.testbed import Shaping, Testbed, _read_lines
from mininet_topos.topos import LINK_DELAYS

START_DELAY_S = 3.0
"""Time the edge agents get to start (Python, the model) before the first frame: their
``--start-at`` is this far after they are launched."""


def add_testbed_arguments(parser: argparse.ArgumentParser, topology: Path, run_dir: Path) -> None:
    """The options every demo takes for its testbed (``testbed_options`` reads them back)."""
    parser.add_argument("--target", choices=("embedded", "bmv2", "auto"), default="embedded",
                        help="switch target: the embedded switch (default) or BMv2")
    parser.add_argument("--topology", type=Path, default=topology)
    parser.add_argument("--run-dir", type=Path, default=run_dir, help="logs, the model, results.json")
    parser.add_argument("--link-delay", choices=LINK_DELAYS, default="auto",
                        help="how links get their delay (as dcia testbed run)")
    parser.add_argument("--plaintext", action="store_true",
                        help="P4Runtime in plain text (default: mutual TLS)")
    parser.add_argument("-v", "--verbose", action="store_true")


def testbed_options(a: argparse.Namespace) -> dict:
    """The demo's Options fields from ``add_testbed_arguments``' options; sets up logging."""
    logging.basicConfig(level=logging.INFO if a.verbose else logging.WARNING)
    logging.getLogger("finsy").setLevel(logging.INFO if a.verbose else logging.ERROR)
    return dict(target=a.target, topology=a.topology, run_dir=a.run_dir,
                link_delay=a.link_delay, tls=not a.plaintext)


def demo_testbed(topology: Topology, opts, run_dir: Path) -> Testbed:
    """The demo's testbed (not started): P4Runtime on free ports, beside any other testbed."""
    grpc = {name: f"127.0.0.1:{port}"
            for name, port in zip(topology.switches, free_tcp_ports(len(topology.switches)))}
    return Testbed(topology, target=opts.target, run_dir=run_dir, tls=opts.tls, grpc=grpc,
                   shaping=Shaping(link_delay=opts.link_delay))


def read_switches(bed: Testbed) -> dict[str, SwitchStatus]:
    """Every switch's layers and counters now (controller.session.switch_status), by name."""
    async def read_all():
        return [await switch_status(e, bed.pipeline) for e in bed.endpoints().values()]
    return {s.name: s for s in asyncio.run(read_all())}


def stages_text(plan: Plan) -> str:
    """``h1 0..0 | s1 1..2 | h2 3..3``: the nodes that compute and their layers."""
    return " | ".join(f"{s.node} {s.start}..{s.stop - 1}" for s in plan.stages if s.stop > s.start)


def save_results(run_dir: Path, summary: dict) -> None:
    (run_dir / "results.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")


@dataclass(frozen=True)
class EdgeJob:
    """One edge agent to run: its host and its options (hosts.edge_agent's command line)."""

    host: str
    argv: Sequence[str]


def run_edge_agents(bed: Testbed, jobs: Sequence[EdgeJob]) -> dict[str, list[RequestResult]]:
    """Every job's hosts.edge_agent at once, each in its host (its stderr in
    ``<host>-edge.log`` of the run directory); their results by host, in input order.
    An agent that exits otherwise than 0 or 1 (1: some requests failed, reported each) is
    a RuntimeError with the end of its log."""
    readers = []
    for job in jobs:
        err = open(bed.run_dir / f"{job.host}-edge.log", "wb")
        proc = bed.popen(job.host, [sys.executable, "-m", "hosts.edge_agent", *job.argv],
                         stdout=subprocess.PIPE, stderr=err)
        lines: queue.Queue = queue.Queue()
        thread = threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True)
        thread.start()
        readers.append((job, proc, lines, thread, err))
    results: dict[str, list[RequestResult]] = {}
    for job, proc, lines, thread, err in readers:
        out = []
        while (line := lines.get()) is not None:
            out.append(RequestResult(**json.loads(line)))
        thread.join()
        proc.wait()
        err.close()
        if proc.returncode not in (0, 1):
            raise RuntimeError(f"the edge agent of {job.host} exited with code {proc.returncode}: "
                               f"{(bed.run_dir / f'{job.host}-edge.log').read_text()[-800:]}")
        results[job.host] = sorted(out, key=lambda r: r.index)
    return results


def counter_diff(after: dict, before: dict) -> dict:
    """``after - before`` per key, without the keys that did not change."""
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


def percentiles(values, qs=(50, 90, 99)) -> dict[str, float | None]:
    """Percentiles of durations in seconds, in milliseconds (None without values).

    >>> percentiles([0.010, 0.020])["p50"]
    15.0
    """
    values = np.asarray(values, dtype=float)
    return {f"p{q}": float(np.percentile(values, q)) * 1000 if values.size else None for q in qs}


def ms_text(p: dict) -> str:
    """``percentiles`` as a table cell: ``12.00 / 26.40 / 29.64 ms``."""
    return " / ".join("-" if v is None else f"{v:.2f}" for v in p.values()) + " ms"


def percent_text(v: float | None) -> str:
    return "-" if v is None else f"{v:.2%}"
