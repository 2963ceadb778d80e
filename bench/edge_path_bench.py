"""The edge agent's own per-request work on the wire: building a request and reading its
answer, through scapy's DCIA layer (the path before) and through ``struct`` (the fast path,
dcia.wire.pack / header / elements, hosts.messages), measured in the same run.

Per request the edge builds one request and, for the answer that comes back, reads its
header as it arrives (is it an answer, whose request), then checks and reads the whole
answer. Before the fast path that was one scapy build and four scapy parses:
``bytes(DCIA(...))``; ``peek`` twice (``is_answer`` and the request id); ``DCIA(answer)``;
``malformation``, which rebuilt the bytes and peeked again. Medians of ``--iterations``
each, on one core, for a 16-element request (the demo's activation) and a 64-element one
(a raw digit), answered with 10 elements. On the evaluation's weak edge (a tenth of the
machine) each microsecond here costs about ten.

    .venv/bin/python -m bench.edge_path_bench [--iterations 3000] [--out results]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.plots import figure
from dcia.wire import DCIA, HEADER_BYTES, Flag, Status, is_answer, malformation, peek
from hosts import messages

SIZES = (16, 64)
ANSWER = [3, -1, 7, 0, 2, -5, 9, 1, 0, -2]


def scapy_request(n: int) -> bytes:
    return bytes(DCIA(model_id=1, model_version=1, next_layer=1, request_id=123456,
                      elems=[(i % 200) - 100 for i in range(n)]))


def fast_request(n: int) -> bytes:
    return messages.tensor_request(model_id=1, version=1, request_id=123456, next_layer=1,
                                   elems=[(i % 200) - 100 for i in range(n)])


def scapy_receive(answer: bytes) -> list[int]:
    """The answer's path through the scapy layer, as the edge read it before."""
    assert bool(int(peek(answer).flags) & (Flag.RESULT | Flag.ERROR))
    _ = peek(answer).request_id
    msg = DCIA(answer)
    raw = bytes(msg)
    head = peek(raw)
    assert head.ver == 1 and len(raw) - HEADER_BYTES == head.n_elems
    return list(msg.elems)


def fast_receive(answer: bytes) -> list[int]:
    """The fast path: ``is_answer`` and ``header`` as it arrives, ``messages.answer``."""
    assert is_answer(answer)
    head, elems, problem = messages.answer(answer)
    assert problem is None and head.request_id == 123456
    return elems


def median_us(work, iterations: int) -> float:
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def measure(iterations: int) -> list[dict]:
    answer = bytes(DCIA(flags=Flag.RESULT, model_id=1, model_version=1, next_layer=4,
                        net_layers=3, request_id=123456, status=Status.OK, elems=ANSWER))
    assert malformation(answer) is None and scapy_receive(answer) == fast_receive(answer)
    rows = []
    for n in SIZES:
        assert scapy_request(n) == fast_request(n)
        row = {"elements": n,
               "scapy_build_us": median_us(lambda: scapy_request(n), iterations),
               "fast_build_us": median_us(lambda: fast_request(n), iterations),
               "scapy_receive_us": median_us(lambda: scapy_receive(answer), iterations),
               "fast_receive_us": median_us(lambda: fast_receive(answer), iterations)}
        row["scapy_total_us"] = row["scapy_build_us"] + row["scapy_receive_us"]
        row["fast_total_us"] = row["fast_build_us"] + row["fast_receive_us"]
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args(argv)
    console = Console()
    rows = measure(args.iterations)
    table = Table(title="Edge per-request wire work (µs, median; one core)")
    for column in ("request elements", "build: scapy", "build: struct", "answer: scapy",
                   "answer: struct", "per request: scapy", "per request: struct", "speed-up"):
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(str(r["elements"]), f"{r['scapy_build_us']:.1f}", f"{r['fast_build_us']:.1f}",
                      f"{r['scapy_receive_us']:.1f}", f"{r['fast_receive_us']:.1f}",
                      f"{r['scapy_total_us']:.1f}", f"{r['fast_total_us']:.1f}",
                      f"{r['scapy_total_us'] / r['fast_total_us']:.0f}x")
    console.print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "edge_path.json").write_text(json.dumps(
        {"iterations": args.iterations, "rows": rows}, indent=2))
    with figure(args.out / "edge_path.png", "Edge per-request wire work (µs, median)") as ax:
        xs = range(len(rows))
        ax.bar([x - 0.2 for x in xs], [r["scapy_total_us"] for r in rows], width=0.4,
               label="scapy layer")
        ax.bar([x + 0.2 for x in xs], [r["fast_total_us"] for r in rows], width=0.4,
               label="struct (fast path)")
        ax.set_xticks(list(xs), [f"{r['elements']} elements" for r in rows])
        ax.set_ylabel("µs")
        ax.legend()
    console.print(f"wrote {args.out / 'edge_path.json'} and {args.out / 'edge_path.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
