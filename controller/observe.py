"""Reading the network's live metrics: the CATS metric agents' records, one round at a time.

Per switch the controller derives the record over P4Runtime (controller.session.switch_status:
what is installed, table occupancy, counters; controller.metrics: rates and load from two
readings). Per host with a metric agent (``metrics = "host:port"`` in the topology) it
fetches the record the agent serves (dcia.metrics). ``dcia top`` shows a round;
``dcia steer`` decides on it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from controller.deployment import SwitchEndpoint, endpoints
from controller.metrics import SwitchRates, rates, switch_record
from controller.session import SwitchStatus, switch_status
from controller.topology import Topology
from dcia.capability import Capability
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
    """One round: every switch's and agent's state and rates over ``interval_s``; per
    switch its status, rates and live record (None when it could not be read twice)."""

    interval_s: float
    switches: list[tuple[SwitchStatus, SwitchRates | None, Capability | None]]
    hosts: list[tuple[HostReading, dict[str, float] | None]]

    @property
    def errors(self) -> list[str]:
        return ([st.error for st, _, _ in self.switches if st.error]
                + [h.error for h, _ in self.hosts if h.error])


Reading = tuple[list[SwitchStatus], list[HostReading]]
"""One reading of every node: switch statuses and host records, in topology order."""


async def snapshot(topology: Topology, interval_s: float) -> Snapshot:
    """Read everything, wait ``interval_s``, read again: the rates in between."""
    snap, _ = await observe(topology, interval_s)
    return snap


READ_TIMEOUT_S = 2.0
"""A node that does not answer a reading within this is unread this round."""


async def _status(endpoint: SwitchEndpoint, timeout_s: float) -> SwitchStatus:
    try:
        return await asyncio.wait_for(switch_status(endpoint), timeout_s)
    except TimeoutError:
        return SwitchStatus(endpoint.name, error=f"switch {endpoint.name}: no answer from "
                            f"{endpoint.address} within {timeout_s:g} s", unreachable=True)


async def read(topology: Topology, timeout_s: float = READ_TIMEOUT_S) -> Reading:
    """Every switch's status over P4Runtime and every metric agent's record, once."""
    statuses = await asyncio.gather(*(_status(e, timeout_s) for e in endpoints(topology).values()))
    hosts = []
    for host in topology.hosts.values():
        if host.metrics is None:
            continue
        try:
            record, counters = await asyncio.to_thread(fetch, host.metrics, timeout_s)
            hosts.append(HostReading(host.name, record, counters, time.monotonic()))
        except MetricsError as exc:
            hosts.append(HostReading(host.name, None, {}, time.monotonic(),
                                     f"host {host.name}: {exc}"))
    return list(statuses), hosts


async def observe(topology: Topology, interval_s: float, previous: Reading | None = None
                  ) -> tuple[Snapshot, Reading]:
    """Read every node (again, after ``previous``, or twice ``interval_s`` apart): the
    rates in between. Returns the snapshot and this reading, the next round's ``previous``."""
    if previous is None:
        previous = await read(topology)
    await asyncio.sleep(interval_s)
    now = await read(topology)
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
