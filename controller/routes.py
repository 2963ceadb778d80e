"""IPv4 routes of every switch and every host, derived from the topology (pure: no I/O).

controller.session.install_routes writes them to the switches, mininet_topos.testbed
sets the host routes.

Each switch gets one `ipv4_lpm` entry per host interface: the interface's subnet, out of
the port of the shortest switch path towards that host (hosts do not forward). The
destination MAC is the host's own MAC on the last hop, else the MAC of the next switch's
port. A switch port facing a host presents the host's ``gateway_mac``; other ports get a
locally administered MAC ``02:dc:<device id>:<port>`` (16 bits each). The P4 program does not
check destination MACs, but these keep every frame's addresses meaningful in a capture.

    >>> from controller.topology import load_topology
    >>> topo = load_topology("topologies/linear.toml")
    >>> [(r.prefix, r.port, r.next_hop, r.dst_mac) for r in switch_routes(topo)["s2"]]
    [('10.0.1.0/24', 1, 's1', '02:dc:00:01:00:02'), ('10.0.2.0/24', 2, 's3', '02:dc:00:03:00:01')]
"""

from __future__ import annotations

import ipaddress
import logging
from collections import deque
from dataclasses import dataclass

import finsy as fy

from controller import entries
from controller.topology import Topology

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ipv4Route:
    """``prefix`` leaves ``switch`` through ``port`` towards ``next_hop`` (MAC ``dst_mac``)."""

    switch: str
    prefix: str
    port: int
    next_hop: str
    dst_mac: str

    def entry(self) -> fy.P4TableEntry:
        return entries.route_entry(prefix=self.prefix, port=self.port, dst_mac=self.dst_mac)


def port_mac(topology: Topology, switch: str, port: int) -> str:
    """The MAC address port ``port`` of ``switch`` presents to its neighbour."""
    for here, neighbour, there in topology.neighbours(switch):
        if here == port and neighbour in topology.hosts:
            gateway_mac = topology.hosts[neighbour].interfaces[there].gateway_mac
            if gateway_mac:
                return gateway_mac
    device = topology.switches[switch].device_id
    return f"02:dc:{device >> 8 & 0xFF:02x}:{device & 0xFF:02x}:{port >> 8 & 0xFF:02x}:{port & 0xFF:02x}"


def switch_routes(topology: Topology) -> dict[str, list[Ipv4Route]]:
    """Every switch's routes to every host interface it can reach over switches."""
    targets = []  # (host, interface index, subnet)
    for host in topology.hosts.values():
        for index, intf in enumerate(host.interfaces):
            targets.append((host.name, index, str(ipaddress.ip_interface(intf.ip).network)))
    routes: dict[str, list[Ipv4Route]] = {}
    for switch in topology.switches:
        first_hop = _first_hops(topology, switch)
        found = []
        for host, index, prefix in targets:
            hop = first_hop.get((host, index))
            if hop is None:
                log.debug("switch %s has no path to %s interface %d", switch, host, index)
                continue
            port, neighbour, neighbour_port = hop
            if neighbour in topology.hosts:
                mac = topology.hosts[neighbour].interfaces[neighbour_port].mac
            else:
                mac = port_mac(topology, neighbour, neighbour_port)
            found.append(Ipv4Route(switch, prefix, port, neighbour, mac))
        routes[switch] = found
    return routes


def _first_hops(topology: Topology, source: str) -> dict[tuple[str, int], tuple[int, str, int]]:
    """For each (host, interface) reachable from switch ``source`` over switches only:
    (source's port, the neighbour on it, the neighbour's port) of a shortest path."""
    first: dict[str, tuple[int, str, int]] = {}
    reached: dict[tuple[str, int], tuple[int, str, int]] = {}
    queue = deque([source])
    seen = {source}
    while queue:
        node = queue.popleft()
        for port, neighbour, neighbour_port in topology.neighbours(node):
            hop = (port, neighbour, neighbour_port) if node == source else first[node]
            if neighbour in topology.hosts:
                reached.setdefault((neighbour, neighbour_port), hop)
            elif neighbour not in seen:
                seen.add(neighbour)
                first[neighbour] = hop
                queue.append(neighbour)
    return reached


@dataclass(frozen=True)
class HostRoute:
    """A host's route: ``prefix`` (``default`` or a subnet) via ``gateway`` on interface ``interface``."""

    prefix: str
    gateway: str
    interface: int


def host_routes(topology: Topology) -> dict[str, list[HostRoute]]:
    """Every host's routes: a default route via the gateway of its first interface that
    has one; for each further interface, the subnets of the hosts at the far end of the
    paths that leave through it.

    >>> from controller.topology import load_topology
    >>> host_routes(load_topology("topologies/redundant.toml"))["h1"]
    [HostRoute(prefix='default', gateway='10.0.1.10', interface=0), HostRoute(prefix='10.0.4.0/24', gateway='10.0.3.30', interface=1)]
    """
    out: dict[str, list[HostRoute]] = {}
    for host in topology.hosts.values():
        routes: list[HostRoute] = []
        with_gateway = [i for i, intf in enumerate(host.interfaces) if intf.gateway]
        for i in with_gateway:
            gateway = host.interfaces[i].gateway
            if i == with_gateway[0]:
                routes.append(HostRoute("default", gateway, i))
                continue
            for far, far_intf in _path_ends(topology, host.name, i):
                prefix = str(ipaddress.ip_interface(topology.hosts[far].interfaces[far_intf].ip).network)
                if all(r.prefix != prefix for r in routes):
                    routes.append(HostRoute(prefix, gateway, i))
        out[host.name] = routes
    return out


def _path_ends(topology: Topology, host: str, interface: int) -> list[tuple[str, int]]:
    """(host, interface) at the other end of each path that ``host`` enters or leaves by ``interface``."""
    ends = []
    for hops in topology.paths.values():
        for mine, nxt, far, far_next in ((hops[0], hops[1], hops[-1], hops[-2]),
                                         (hops[-1], hops[-2], hops[0], hops[1])):
            if mine != host or topology.port(mine, nxt) != interface:
                continue
            ends.append((far, topology.port(far, far_next)))
    return ends
