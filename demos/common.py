"""What the use-case demos share: edge agents started together in their hosts, and the
numbers and formats of their summaries.

    results = run_edge_agents(bed, [EdgeJob("cam1", [...options of hosts.edge_agent...])])
    percentiles([0.010, 0.012, 0.030])   # {'p50': 12.0, 'p90': 26.4, 'p99': 29.64} (ms)
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hosts.edge_agent import RequestResult
from mininet_topos.testbed import Testbed, _read_lines

START_DELAY_S = 3.0
"""Time the edge agents get to start (Python, the model) before the first frame: their
``--start-at`` is this far after they are launched."""


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
