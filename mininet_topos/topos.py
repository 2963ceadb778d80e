"""Mininet topologies built from the topology files in topologies/ (controller.topology).

The TOML file is the one source of truth: hosts with their addresses, P4 switches with
their P4Runtime address and device id, links with their ports, bandwidth, delay and loss.
``DciaTopo`` turns it into Mininet nodes and links; it adds no facts of its own, only
options for an experiment: override every link's shaping, limit the edge host's CPU.

    topo = DciaTopo("topologies/linear.toml", delay_ms=5, edge_cpu=0.2)
    net = Mininet(topo=topo, controller=None)

With Mininet's own command line (run it with the project's interpreter, which has the
project's dependencies and sees Debian's Mininet):

    sudo .venv/bin/python $(command -v mn) --custom mininet_topos/topos.py \\
        --topo linear,target=embedded --controller none

starts the switches with the DCIA program but installs no routes or layers; `make cli`
does all of that and leaves you at the same CLI.
"""

from __future__ import annotations

import functools
import logging
import subprocess
from pathlib import Path

from mininet.link import TCLink
from mininet.topo import Topo

from controller import topology as topology_module
from controller.routes import host_routes
from controller.topology import Topology, load_topology
from dcia.capability import NodeKind
from mininet_topos.host import DciaHost, LimitedDciaHost
from mininet_topos.p4switch import P4Switch

log = logging.getLogger(__name__)

TOPOLOGY_DIR = Path(topology_module.__file__).resolve().parent.parent / "topologies"
"""topologies/ (found without this file's own path: `mn --custom` runs it without __file__)."""


@functools.cache
def netem_available() -> bool:
    """Does this kernel have the netem qdisc (link delay and loss)? Probed in a throw-away
    network namespace. Some VM kernels ship without it; links then keep only their rate."""
    probe = subprocess.run(["unshare", "--net", "tc", "qdisc", "add", "dev", "lo", "root", "netem",
                            "delay", "1ms"], capture_output=True)
    return probe.returncode == 0


class DciaTopo(Topo):
    """The network of one topology file, for Mininet (default: ``topology_file``)."""

    topology_file: Path = TOPOLOGY_DIR / "linear.toml"

    def build(self, topology: Topology | str | Path | None = None, *,
              target: str = "auto", log_dir: str | Path = "logs", pcap_dir: str | Path | None = None,
              bandwidth_mbps: float | None = None, delay_ms: float | None = None,
              loss_pct: float | None = None, edge_cpu: float | None = None,
              json_path: str | Path | None = None) -> None:
        """``bandwidth_mbps``, ``delay_ms``, ``loss_pct``: override every link's value;
        ``edge_cpu``: the edge hosts' share of the machine's CPU (CPULimitedHost);
        ``json_path``: another compiled program than p4src/build/dcia.json."""
        if not isinstance(topology, Topology):
            topology = load_topology(topology or self.topology_file)
        self.topology = topology
        routes = host_routes(topology)
        for name, host in topology.hosts.items():
            params = dict(ip=host.interfaces[0].ip, mac=host.mac, interfaces=host.interfaces,
                          routes=routes[name], cls=DciaHost)
            if edge_cpu is not None and host.capability.kind is NodeKind.EDGE:
                params.update(cls=LimitedDciaHost, cpu=edge_cpu)
            self.addHost(name, **params)
        switch_cls = functools.partial(P4Switch, target=target, log_dir=log_dir, pcap_dir=pcap_dir,
                                       json_path=json_path)
        for name, switch in topology.switches.items():
            self.addSwitch(name, cls=switch_cls, grpc=switch.grpc, device_id=switch.device_id)
        for link in topology.links:
            shaping = self.shaping(
                link.bandwidth_mbps if bandwidth_mbps is None else bandwidth_mbps,
                link.delay_ms if delay_ms is None else delay_ms,
                link.loss_pct if loss_pct is None else loss_pct,
            )
            self.addLink(link.a.node, link.b.node, port1=link.a.port, port2=link.b.port,
                         cls=TCLink, **shaping)

    @staticmethod
    def shaping(bandwidth_mbps: float, delay_ms: float, loss_pct: float) -> dict:
        """TCLink options: a token bucket for the rate (HTB's quantum warnings avoided), and
        netem for delay and loss where the kernel has it."""
        options: dict = dict(bw=bandwidth_mbps, use_tbf=True)
        if delay_ms or loss_pct:
            if netem_available():
                options.update(delay=f"{delay_ms}ms", loss=loss_pct or None)
            else:
                _warn_no_netem()
        return options


@functools.cache
def _warn_no_netem() -> None:
    log.warning("this kernel has no netem qdisc (sch_netem): links keep their rate limits "
                "but get no delay or loss")


topos = {path.stem: type(f"{path.stem.title()}Topo", (DciaTopo,), {"topology_file": path})
         for path in sorted(TOPOLOGY_DIR.glob("*.toml"))}
"""``mn --topo <name>[,option=value...]``: one class per file in topologies/."""
switches = {"p4": P4Switch}
hosts = {"dcia": DciaHost}
