"""``dcia top``: what the network is doing, refreshed in the terminal.

Per switch, from two P4Runtime readings an interval apart (controller.session.switch_status,
controller.metrics): layers computed, pass-through, version-mismatch, malformed and IPv4-
dropped packets per second, the model layers it holds, its derived load and how full its
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
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table

from controller import entries as E
from controller.deployment import endpoints
from controller.metrics import SwitchRates, rates, switch_record
from controller.session import SwitchStatus, switch_status
from controller.topology import Topology, check_tls_files, load_topology
from dcia.capability import Capability
from dcia.errors import DciaError
from dcia.metrics import MetricsError, fetch


@dataclass(frozen=True)
class HostReading:
    name: str
    record: Capability | None
    counters: dict[str, float]
    read_at: float
    error: str | None = None


@dataclass(frozen=True)
class Snapshot:
    """One round of ``dcia top``: every switch's and agent's rates over ``interval_s``."""

    interval_s: float
    switches: list[tuple[SwitchStatus, SwitchRates | None, Capability | None]]
    hosts: list[tuple[HostReading, dict[str, float] | None]]

    @property
    def errors(self) -> list[str]:
        return ([st.error for st, _, _ in self.switches if st.error]
                + [h.error for h, _ in self.hosts if h.error])


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--topology", required=True, type=Path, help="topology TOML file")
    parser.add_argument("--interval", type=float, default=1.0,
                        help="seconds between two readings (default 1)")
    parser.add_argument("--once", action="store_true", help="print one snapshot and exit")


def run(args: argparse.Namespace, console: Console) -> int:
    if not args.interval > 0:
        raise DciaError(f"--interval must be a positive number of seconds, not {args.interval}")
    topology = load_topology(args.topology)
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
                snap, previous = asyncio.run(_round(topology, args.interval, previous))
                live.update(render(topology, snap), refresh=True)
        except KeyboardInterrupt:
            return 0


async def snapshot(topology: Topology, interval_s: float) -> Snapshot:
    """Read everything, wait ``interval_s``, read again: the rates in between."""
    snap, _ = await _round(topology, interval_s, None)
    return snap


async def _read(topology: Topology) -> tuple[list[SwitchStatus], list[HostReading]]:
    statuses = await asyncio.gather(*(switch_status(e) for e in endpoints(topology).values()))
    hosts = []
    for host in topology.hosts.values():
        if host.metrics is None:
            continue
        try:
            record, counters = await asyncio.to_thread(fetch, host.metrics)
            hosts.append(HostReading(host.name, record, counters, time.monotonic()))
        except MetricsError as exc:
            hosts.append(HostReading(host.name, None, {}, time.monotonic(),
                                     f"host {host.name}: {exc}"))
    return list(statuses), hosts


async def _round(topology: Topology, interval_s: float, previous):
    if previous is None:
        previous = await _read(topology)
    await asyncio.sleep(interval_s)
    now = await _read(topology)
    switches = []
    for before, after in zip(previous[0], now[0]):
        if before.error or after.error:
            switches.append((after, None, None))
            continue
        measured = rates(before, after)
        nominal = topology.switches[after.name].capability
        switches.append((after, measured, switch_record(nominal, after, measured)))
    hosts = []
    before_hosts = {h.name: h for h in previous[1]}
    for reading in now[1]:
        old = before_hosts.get(reading.name)
        per_s = None
        if reading.error is None and old is not None and old.error is None:
            dt = reading.read_at - old.read_at
            per_s = {k: (v - old.counters.get(k, 0.0)) / dt for k, v in reading.counters.items()} if dt > 0 else None
        hosts.append((reading, per_s))
    interval = (now[0][0].read_at - previous[0][0].read_at
                if now[0] and now[0][0].read_at and previous[0][0].read_at else interval_s)
    return Snapshot(interval, switches, hosts), now


def render(topology: Topology, snap: Snapshot) -> Table:
    table = Table(title=f"{topology.name}: per second over the last {snap.interval_s:.1f} s")
    for column in ("node", "holds", "layers computed", "pass-through", "version mismatch",
                   "malformed", "IPv4 dropped", "load", "tables (layers, embeddings)"):
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
                      f"{measured.per_s['computed']:.0f}", f"{measured.per_s['pass-through']:.0f}",
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
        table.add_row(f"{reading.name} ({reading.record.kind})", holds, computed, answered,
                      "", f"{per_s.get('errors', 0.0):.0f} errors" if per_s else "-", "",
                      f"{reading.record.load:.0%}",
                      f"{reading.record.layer_time_s * 1e6:.0f} µs/layer")
    return table


def _span(layers: tuple[int, ...] | None) -> str:
    if not layers:
        return "all"
    return f"{layers[0]}..{layers[-1]}" if len(layers) > 1 else str(layers[0])
