"""A P4 switch for Mininet: one simple_switch_grpc or embedded-switch process per node.

The switch stays in the root namespace, as Mininet's switches do, and its process opens
the node's interfaces as BMv2 ports: Mininet port ``N`` (``s1-ethN``) is BMv2 port ``N``,
so the egress ports in table entries are the port numbers of the topology. The process
starts with the committed pipeline (p4src/build/dcia.json) and serves P4Runtime on
``grpc`` (``127.0.0.1:<port>`` from the topology file). dcia.targets does the starting
and stopping, for both targets alike.

    net = Mininet(topo, switch=P4Switch, controller=None)
    # or, per switch: addSwitch("s1", cls=P4Switch, grpc="127.0.0.1:50001", device_id=1,
    #                           target="embedded", log_dir="logs")
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

from mininet.node import Switch

from dcia.artifacts import Pipeline
from dcia.targets import SwitchConfig, SwitchProcess, TargetError, find_bmv2

log = logging.getLogger(__name__)

DEFAULT_LOG_DIR = Path("logs")


def resolve_target(target: str) -> str:
    """``auto`` becomes ``bmv2`` where simple_switch_grpc is installed, else ``embedded``."""
    if target == "auto":
        return "bmv2" if find_bmv2() is not None else "embedded"
    return target


class P4Switch(Switch):
    """A Mininet switch running the DCIA P4 program on ``target`` (bmv2, embedded or auto).

    ``grpc`` is the P4Runtime address, ``device_id`` the P4Runtime device id; each switch
    logs to ``<log_dir>/<name>.log`` (its console output to ``<name>.out``) and, with
    ``pcap_dir``, captures every port there. ``start`` returns once the P4Runtime server
    answers (at most ``start_timeout`` seconds: loading a program takes the embedded
    switch a few seconds on a busy machine). ``tls_args``: simple_switch_grpc's TLS
    options (the topology file holds only the controller's side of TLS). ``thrift_port``:
    BMv2's Thrift port (for simple_switch_CLI); without one each BMv2 switch gets a free
    port, since BMv2's default (9090) would let only the first switch start.
    """

    def __init__(self, name: str, *, grpc: str, device_id: int = 1, target: str = "auto",
                 json_path: str | Path | None = None, log_dir: str | Path = DEFAULT_LOG_DIR,
                 pcap_dir: str | Path | None = None, log_level: str = "info",
                 start_timeout: float = 60.0, tls_args: tuple[str, ...] = (),
                 thrift_port: int | None = None, **params):
        super().__init__(name, **params)
        self.grpc = grpc
        self.device_id = int(device_id)
        self.target = resolve_target(target)
        self.json_path = Path(json_path) if json_path else Pipeline.default().bmv2_json
        self.log_dir = Path(log_dir)
        self.pcap_dir = Path(pcap_dir) if pcap_dir else None
        self.log_level = log_level
        self.start_timeout = start_timeout
        self.tls_args = tuple(tls_args)
        self.thrift_port = thrift_port
        self.process: SwitchProcess | None = None

    def bmv2_ports(self) -> dict[int, str]:
        """BMv2 port number -> interface name (Mininet's port numbers, loopback excluded)."""
        return {port: intf.name for port, intf in self.intfs.items() if intf.name != "lo"}

    def start(self, controllers) -> None:
        if not self.json_path.exists():
            raise TargetError(f"{self.json_path} is missing: run `make p4` (needs p4c) or check "
                              "out the committed p4src/build/")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if self.pcap_dir:
            self.pcap_dir.mkdir(parents=True, exist_ok=True)
        for ifname in self.bmv2_ports().values():
            # no IPv6 chatter (router solicitations) for the switch to forward or drop
            subprocess.run(["sysctl", "-qw", f"net.ipv6.conf.{ifname}.disable_ipv6=1"],
                           capture_output=True)
        config = SwitchConfig(
            ports=self.bmv2_ports(), grpc_addr=self.grpc, thrift_port=self.thrift_port,
            device_id=self.device_id, json_path=self.json_path,
            log_file=self.log_dir / f"{self.name}.log",
            log_level=self.log_level, pcap_dir=self.pcap_dir, tls_args=self.tls_args,
        )
        self.process = SwitchProcess(self.target, config,
                                     stdout_path=self.log_dir / f"{self.name}.out")
        self.process.start(timeout=self.start_timeout)
        log.info("%s: %s switch on %s, P4Runtime %s, Thrift %s (pid %d)", self.name,
                 self.target, ", ".join(f"{p}@{i}" for p, i in self.bmv2_ports().items()),
                 self.grpc, self.process.config.thrift_port or "none", self.process.proc.pid)

    @property
    def running(self) -> bool:
        return bool(self.process and self.process.proc and self.process.proc.poll() is None)

    def stop_process(self) -> None:
        """Stop the switch process (idempotent); the interfaces stay."""
        if self.process is not None:
            self.process.stop()

    def stop(self, deleteIntfs: bool = True) -> None:  # noqa: N803 (Mininet's name)
        self.stop_process()
        super().stop(deleteIntfs)

    def terminate(self) -> None:
        self.stop_process()
        super().terminate()
