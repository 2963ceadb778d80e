"""Mininet hosts of a DCIA topology: addresses, routes and static ARP from the topology file.

Every interface gets its address and MAC, TX checksum offload off (on a veth the kernel
would leave UDP checksums to the "hardware"; a software switch forwards them unfinished
and the receiver drops the datagram), IPv6 off, and a permanent ARP entry for its gateway
(the switch port's MAC): no broadcast ARP ever reaches the P4 switches.

    net.addHost("h1", cls=DciaHost, interfaces=[Interface(...)], routes=[HostRoute(...)])

``LimitedDciaHost`` is the same on Mininet's CPULimitedHost (``cpu=0.2``: a fifth of the
machine, CFS bandwidth control).
"""

from __future__ import annotations

from collections.abc import Sequence

from mininet.node import CPULimitedHost, Host

from controller.routes import HostRoute
from controller.topology import Interface


class DciaHost(Host):
    """A host configured from its topology interfaces and routes."""

    def config(self, interfaces: Sequence[Interface] = (), routes: Sequence[HostRoute] = (),
               **params):
        result = super().config(**params)
        self.dcia_routes = list(routes)
        self.cmd("sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1")
        for index, spec in enumerate(interfaces):
            intf = self.intfs[index]
            intf.setMAC(spec.mac)
            intf.setIP(spec.ip)
            self.cmd(f"ethtool -K {intf.name} tx off")
            if spec.gateway and spec.gateway_mac:
                self.cmd(f"ip neigh replace {spec.gateway} lladdr {spec.gateway_mac} "
                         f"dev {intf.name} nud permanent")
        self.add_routes()
        return result

    def add_routes(self, interface: int | None = None) -> None:
        """Set the topology's routes (only those out of ``interface``); the kernel drops a
        route when its interface goes down, so a link that comes back needs them again."""
        for route in self.dcia_routes:
            if interface is None or route.interface == interface:
                intf = self.intfs[route.interface]
                self.cmd(f"ip route replace {route.prefix} via {route.gateway} dev {intf.name}")


class LimitedDciaHost(DciaHost, CPULimitedHost):
    """A DciaHost in a CPU cgroup: ``cpu`` is its share of the whole machine."""
