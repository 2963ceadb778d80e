"""Mininet topologies built from the topology files in topologies/ (controller.topology).

The TOML file is the one source of truth: hosts with their addresses, P4 switches with
their P4Runtime address and device id, links with their ports, bandwidth, delay and loss.
``DciaTopo`` turns it into Mininet nodes and links; it adds no facts of its own, only
options for an experiment: override every link's shaping, limit the edge host's CPU,
choose how links get their delay and loss (``link_delay``): the kernel's netem, or,
where the kernel has none, a userspace delay line in the middle of the link
(mininet_topos.delay_line). ``DciaTopo.link_delays`` says what each link got.

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
from collections.abc import Mapping
from pathlib import Path

from mininet.link import TCLink
from mininet.topo import Topo

from controller import topology as topology_module
from controller.routes import host_routes
from controller.topology import Topology, load_topology
from dcia.capability import NodeKind
from dcia.errors import TopologyError
from mininet_topos.delay_line import DelayLineLink
from mininet_topos.host import DciaHost, LimitedDciaHost
from mininet_topos.p4switch import P4Switch

log = logging.getLogger(__name__)

TOPOLOGY_DIR = Path(topology_module.__file__).resolve().parent.parent / "topologies"
"""topologies/ (found without this file's own path: `mn --custom` runs it without __file__)."""


LINK_DELAYS = ("auto", "netem", "delay-line")
"""How links get their delay and loss: ``auto`` netem where the kernel has it, else the
delay line; ``netem`` or ``delay-line`` forces one."""
NETEM, DELAY_LINE, UNSHAPED, DROPPED = "netem", "delay-line", "none", "dropped"
"""What a link got (``DciaTopo.link_delays``): netem, the delay line, nothing because it has
neither delay nor loss, or nothing although it has them (netem forced, the kernel has none)."""


@functools.cache
def netem_available() -> bool:
    """Does this kernel have the netem qdisc (link delay and loss)? Probed in a throw-away
    network namespace. Some VM kernels ship without it; the delay line stands in."""
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
              cloud_cpu: float | None = None, json_path: str | Path | None = None, link_delay: str = "auto",
              tls_args: Mapping[str, tuple[str, ...]] | None = None) -> None:
        """``bandwidth_mbps``, ``delay_ms``, ``loss_pct``: override every link's value;
        ``edge_cpu``: the edge hosts' share of the machine's CPU (CPULimitedHost);
        ``cloud_cpu``: the cloud hosts' (a loaded cloud: evaluation scenarios);
        ``json_path``: another compiled program than p4src/build/dcia.json;
        ``link_delay``: one of LINK_DELAYS (the delay lines log to ``log_dir``);
        ``tls_args``: per switch, simple_switch_grpc's TLS options (controller.pki)."""
        if not isinstance(topology, Topology):
            topology = load_topology(topology or self.topology_file)
        self.topology = topology
        routes = host_routes(topology)
        for name, host in topology.hosts.items():
            params = dict(ip=host.interfaces[0].ip, mac=host.mac, interfaces=host.interfaces,
                          routes=routes[name], cls=DciaHost)
            if edge_cpu is not None and host.capability.kind is NodeKind.EDGE:
                params.update(cls=LimitedDciaHost, cpu=edge_cpu)
            if cloud_cpu is not None and host.capability.kind is NodeKind.CLOUD:
                params.update(cls=LimitedDciaHost, cpu=cloud_cpu)
            self.addHost(name, **params)
        switch_cls = functools.partial(P4Switch, target=target, log_dir=log_dir, pcap_dir=pcap_dir,
                                       json_path=json_path)
        for name, switch in topology.switches.items():
            self.addSwitch(name, cls=switch_cls, grpc=switch.grpc, device_id=switch.device_id,
                           tls_args=(tls_args or {}).get(name, ()))
        self.link_delays: dict[str, str] = {}
        """``A-B`` -> what the link got for its delay and loss (NETEM, DELAY_LINE, UNSHAPED, DROPPED)."""
        for link in topology.links:
            how, shaping = self.shaping(
                link.bandwidth_mbps if bandwidth_mbps is None else bandwidth_mbps,
                link.delay_ms if delay_ms is None else delay_ms,
                link.loss_pct if loss_pct is None else loss_pct,
                link_delay,
            )
            if how == DELAY_LINE:
                shaping.update(log_dir=log_dir)
            self.link_delays[f"{link.a.node}-{link.b.node}"] = how
            self.addLink(link.a.node, link.b.node, port1=link.a.port, port2=link.b.port, **shaping)

    @staticmethod
    def shaping(bandwidth_mbps: float, delay_ms: float, loss_pct: float,
                link_delay: str = "auto") -> tuple[str, dict]:
        """What the link gets (NETEM, DELAY_LINE, UNSHAPED or DROPPED) and its Mininet link
        options: a token bucket for the rate (HTB's quantum warnings avoided) and, for a
        delay or a loss, netem where the kernel has it (or ``link_delay`` says netem), the
        delay line otherwise (or where ``link_delay`` says delay-line).

        >>> DciaTopo.shaping(100, 0, 0)
        ('none', {'cls': <class 'mininet.link.TCLink'>, 'bw': 100, 'use_tbf': True})
        """
        if link_delay not in LINK_DELAYS:
            raise TopologyError(f"link_delay must be one of {', '.join(LINK_DELAYS)}, "
                                      f"not {link_delay!r}")
        options: dict = dict(cls=TCLink, bw=bandwidth_mbps, use_tbf=True)
        if not (delay_ms or loss_pct):
            return UNSHAPED, options
        delay = dict(delay=f"{delay_ms}ms", loss=loss_pct or None)
        if link_delay == "delay-line" or (link_delay == "auto" and not netem_available()):
            return DELAY_LINE, dict(options, cls=DelayLineLink, **delay)
        if netem_available():
            return NETEM, dict(options, **delay)
        _warn_no_netem()
        return DROPPED, options


@functools.cache
def _warn_no_netem() -> None:
    log.warning("this kernel has no netem qdisc (sch_netem) and netem was chosen over the "
                "delay line (link_delay='netem'): links keep their rate limits but get no "
                "delay or loss; link_delay='auto' uses the delay line")


topos = {path.stem: type(f"{path.stem.title()}Topo", (DciaTopo,), {"topology_file": path})
         for path in sorted(TOPOLOGY_DIR.glob("*.toml"))}
"""``mn --topo <name>[,option=value...]``: one class per file in topologies/."""
switches = {"p4": P4Switch}
hosts = {"dcia": DciaHost}
