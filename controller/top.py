"""``dcia top``: what the network is doing, refreshed in the terminal.

Per switch, from two P4Runtime readings an interval apart (controller.session.switch_status,
controller.metrics): layers computed, deferred (over the layer meters' rate, left to the
next node), pass-through, version-mismatch, malformed and IPv4-dropped packets per second, the model layers it holds, its derived load and how full its
layer and embedding tables are. Per host with a metric agent (``metrics = "host:port"`` in
the topology; hosts.cloud_server ``--metrics``): requests and answers per second, load and
measured time per layer, from the same records the steering logic reads (dcia.metrics).

    dcia top --topology topologies/linear.toml            # refreshes until Ctrl-C
    dcia top --topology topologies/linear.toml --once     # one snapshot, then exit

With ``--once`` a node that cannot be read makes the exit status 2 (after the table).
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table

from controller import entries as E
from controller.observe import Snapshot, observe, snapshot
from controller.pki import add_tls_argument, apply_tls_argument
from controller.topology import Topology, check_tls_files, load_topology
from dcia.errors import DciaError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--topology", required=True, type=Path, help="topology TOML file")
    add_tls_argument(parser)
    parser.add_argument("--interval", type=float, default=1.0,
                        help="seconds between two readings (default 1)")
    parser.add_argument("--once", action="store_true", help="print one snapshot and exit")


def run(args: argparse.Namespace, console: Console) -> int:
    if not args.interval > 0:
        raise DciaError(f"--interval must be a positive number of seconds, not {args.interval}")
    topology = apply_tls_argument(load_topology(args.topology), args.tls)
    check_tls_files(topology)
    if args.once:
        snap = asyncio.run(snapshot(topology, args.interval))
        console.print(render(topology, snap))
        if snap.errors:
            raise DciaError(f"{len(snap.errors)} node(s) could not be read: {'; '.join(snap.errors)}")
        return 0
    with Live(console=console, auto_refresh=False) as live:
        previous = None
        try:
            while True:
                snap, previous = asyncio.run(observe(topology, args.interval, previous))
                live.update(render(topology, snap), refresh=True)
        except KeyboardInterrupt:
            return 0


def render(topology: Topology, snap: Snapshot) -> Table:
    table = Table(title=f"{topology.name}: per second over the last {snap.interval_s:.1f} s")
    for column in ("node", "holds", "layers computed", "deferred", "pass-through",
                   "version mismatch", "malformed", "IPv4 dropped", "load", "tables (layers, embeddings)"):
        table.add_column(column, justify="left" if column in ("node", "holds") else "right")
    for status, measured, record in snap.switches:
        if measured is None or record is None:
            table.add_row(status.name, "[red]unreadable[/]")
            continue
        holds = "; ".join(f"{m.model_id} v{m.version}: {_span(m.layers)}" for m in record.models) or "-"
        dropped = sum(measured.per_s.get(k, 0.0) for k in E.DROP_NAMES)
        occupancy = ", ".join(f"{status.tables.get(t, (0, 0))[0]}/{status.tables.get(t, (0, 0))[1]}"
                              for t in (E.T_LAYERS, E.T_EMBEDDINGS))
        table.add_row(status.name + (" (restarted)" if measured.reset else ""), holds,
                      f"{measured.per_s['computed']:.0f}", f"{measured.per_s['deferred']:.0f}",
                      f"{measured.per_s['pass-through']:.0f}",
                      f"{measured.per_s['version mismatch']:.0f}",
                      f"{measured.per_s['malformed']:.0f}", f"{dropped:.0f}",
                      f"{record.load:.0%}", occupancy)
    for reading, per_s in snap.hosts:
        if reading.record is None:
            table.add_row(reading.name, "[red]unreadable[/]")
            continue
        holds = "; ".join(f"{m.model_id} v{m.version}" for m in reading.record.models) or "-"
        answered = f"{per_s.get('answered', 0.0):.0f} answers" if per_s else "-"
        computed = f"{per_s.get('layers_computed', 0.0):.0f}" if per_s else "-"
        table.add_row(f"{reading.name} ({reading.record.kind})", holds, computed, "", answered,
                      "", f"{per_s.get('errors', 0.0):.0f} errors" if per_s else "-", "",
                      f"{reading.record.load:.0%}",
                      f"{reading.record.layer_time_s * 1e6:.0f} µs/layer")
    return table


def _span(layers: tuple[int, ...] | None) -> str:
    if not layers:
        return "all"
    return f"{layers[0]}..{layers[-1]}" if len(layers) > 1 else str(layers[0])
