"""A topology's nodes as separate machines on one computer: switch processes not started by Mininet.

``StandaloneLab`` gives every node of a topology file a network namespace of its own, as
if each ran on a machine of its own, and starts one P4 switch process (BMv2 or the
embedded switch, dcia.targets) inside each switch's namespace:

- data links are veth pairs between the namespaces of their two ends: switch port ``N``
  is the switch's ``ethN`` (BMv2 port ``N``), host interface ``i`` the host's ``ethi``;
- hosts get their addresses, routes and static ARP for their gateway from the topology
  (controller.routes.host_routes), TX checksum offload and IPv6 off, like the Mininet hosts;
- each switch namespace has a management interface ``mgmt0`` holding the address of its
  ``grpc`` entry; the other ends of the management links hang on a bridge in the root
  namespace that holds the controller's address (default 198.18.0.1/24). The switch
  serves P4Runtime only there and starts without a program (``--no-p4``): the controller
  pushes the pipeline over the management network, as to a device that just booted.

Nothing here configures a switch: routes and models come from the controller, which
connects only to the addresses of the topology file, from the root namespace:

    python -m mininet_topos.standalone up --topology topologies/standalone.toml --target bmv2
    python -m mininet_topos.standalone routes --topology topologies/standalone.toml
    dcia deploy --topology topologies/standalone.toml --model run/model.json
    ip netns exec dcia-sa-h2 .venv/bin/python -m hosts.cloud_server --model run/model.json
    ip netns exec dcia-sa-h1 .venv/bin/python -m hosts.edge_agent --model run/model.json \\
        --cloud 10.0.2.2 --edge-layers 1 --inputs run/inputs.npy

``up`` runs until Ctrl-C or SIGTERM and then removes everything it made. While a lab is
up it holds ``/tmp/dcia-standalone/<prefix>.lock``; what it made is listed in
``<prefix>.json`` beside it. A lab whose process was killed outright loses its switch
processes at once (parent-death signal, dcia.targets.die_with_parent); its namespaces
and bridge go with the next ``up`` of the same prefix, or with ``down``.

In Python, ``with StandaloneLab(load_topology(path), target="embedded") as lab:`` does
what ``up`` does; ``lab.command(node, argv)`` is ``argv`` run on that node's "machine".
Mininet is not used (the package's ``__init__`` imports ``mininet.log``, nothing more).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import ipaddress
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from controller.routes import host_routes
from controller.topology import Topology, check_tls_files, load_topology
from dcia.errors import DciaError
from dcia.targets import SwitchConfig, SwitchProcess, die_with_parent, find_bmv2, process_start_time

log = logging.getLogger(__name__)

STATE_DIR = Path("/tmp/dcia-standalone")
DEFAULT_PREFIX = "dcia-sa"
DEFAULT_MANAGEMENT = "198.18.0.1/24"
"""The controller's address on the management network; every switch's ``grpc`` host lies in
its subnet. 198.18.0.0/15 is reserved for benchmarking (RFC 2544): no real network uses it."""
MANAGEMENT_IFNAME = "mgmt0"
IFNAME_MAX = 15
COMMAND_TIMEOUT = 30.0
"""Seconds any one ``ip``/``sysctl``/``ethtool`` command may take."""


class LabError(DciaError):
    """The lab could not be started, or another lab of the same prefix is up."""


def run(*argv: str) -> None:
    """Run a configuration command; raise LabError with its message when it fails."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
    if done.returncode != 0:
        raise LabError(f"`{' '.join(argv)}` failed: {done.stderr.strip() or done.stdout.strip()}")


@dataclass(frozen=True)
class Layout:
    """The names and addresses a lab of ``topology`` uses: pure, computed before anything exists."""

    topology: Topology
    prefix: str = DEFAULT_PREFIX
    management: str = DEFAULT_MANAGEMENT

    def __post_init__(self) -> None:
        longest = max(len(self.bridge), len(self.management_end(len(self.topology.switches))))
        if longest > IFNAME_MAX:
            raise LabError(f"prefix {self.prefix!r} is too long: interface names in the root "
                           f"namespace would exceed {IFNAME_MAX} characters")
        for switch in self.topology.switches.values():
            self.switch_address(switch.name)  # checked here, before anything is made

    def namespace(self, node: str) -> str:
        return f"{self.prefix}-{node}"

    @property
    def namespaces(self) -> list[str]:
        return [self.namespace(n) for n in self.topology.node_names]

    @property
    def bridge(self) -> str:
        return f"{self.prefix}-mgmt"

    def management_end(self, index: int) -> str:
        """The root-namespace end of the ``index``-th switch's management link (from 1)."""
        return f"{self.prefix}-m{index}"

    @property
    def root_interfaces(self) -> list[str]:
        return [self.bridge, *(self.management_end(i + 1) for i in range(len(self.topology.switches)))]

    def switch_address(self, switch: str) -> ipaddress.IPv4Interface:
        """The switch's management address (its ``grpc`` host) with the management prefix."""
        network = ipaddress.ip_interface(self.management).network
        host = self.topology.switches[switch].grpc.rpartition(":")[0]
        try:
            address = ipaddress.IPv4Address(host)
        except ValueError:
            raise LabError(f"switch {switch}: grpc host {host!r} is not an IPv4 address; the lab "
                           "gives each switch the address its grpc entry names") from None
        if address not in network or address == ipaddress.ip_interface(self.management).ip:
            raise LabError(f"switch {switch}: grpc address {address} is not a switch address of "
                           f"the management network {network} (the controller is "
                           f"{ipaddress.ip_interface(self.management).ip})")
        return ipaddress.IPv4Interface(f"{address}/{network.prefixlen}")


class StandaloneLab:
    """The machines of ``topology``, emulated: a context manager that always cleans up.

    ``tls_args``: per switch, simple_switch_grpc's TLS options (the topology file holds
    only the controller's side). ``start_timeout``: seconds each switch may take to open
    its P4Runtime port.
    """

    def __init__(self, topology: Topology, *, target: str = "auto", run_dir: Path = Path("logs/standalone"),
                 prefix: str = DEFAULT_PREFIX, management: str = DEFAULT_MANAGEMENT,
                 tls_args: Mapping[str, Sequence[str]] | None = None, log_level: str = "info",
                 start_timeout: float = 60.0):
        self.layout = Layout(topology, prefix, management)
        self.topology = topology
        if target == "auto":
            target = "bmv2" if find_bmv2() is not None else "embedded"
        self.target = target
        self.run_dir = Path(run_dir).resolve()
        self.tls_args = {k: tuple(v) for k, v in (tls_args or {}).items()}
        self.log_level = log_level
        self.start_timeout = start_timeout
        self.switches: dict[str, SwitchProcess] = {}
        self.programs: list[subprocess.Popen] = []
        self._lock: int | None = None

    @property
    def state_file(self) -> Path:
        return STATE_DIR / f"{self.layout.prefix}.json"

    # ------------------------------------------------------------ life cycle --

    def start(self) -> StandaloneLab:
        self._lock = take_lock(self.layout.prefix)
        try:
            remove_leftovers(self.layout.prefix, self.layout)
            check_management_free(self.layout.management)
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._save_state()  # what it is about to make, before making it
            self._make_management()
            for node in self.topology.node_names:
                self._make_machine(node)
            for link in self.topology.links:
                a, b = link.a, link.b
                run("ip", "link", "add", f"eth{a.port}", "netns", self.layout.namespace(a.node),
                    "type", "veth", "peer", "name", f"eth{b.port}", "netns", self.layout.namespace(b.node))
            for index, name in enumerate(self.topology.switches, start=1):
                self._connect_switch(index, name)
            for name in self.topology.hosts:
                self._configure_host(name)
            for name in self.topology.switches:
                self._start_switch(name)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every program and switch process, remove namespaces, bridge, state; idempotent."""
        for proc in self.programs:
            _stop(proc)
        self.programs.clear()
        for switch in self.switches.values():
            switch.stop()
        self.switches.clear()
        if self._lock is not None:
            remove_leftovers(self.layout.prefix, self.layout)
            os.close(self._lock)
            self._lock = None

    def __enter__(self) -> StandaloneLab:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _save_state(self) -> None:
        processes = [[s.proc.pid, process_start_time(s.proc.pid)] for s in self.switches.values() if s.proc]
        processes += [[p.pid, process_start_time(p.pid)] for p in self.programs]
        partial = self.state_file.with_suffix(".part")
        partial.write_text(json.dumps({
            "owner": os.getpid(), "topology": self.topology.name, "target": self.target,
            "namespaces": self.layout.namespaces, "interfaces": self.layout.root_interfaces,
            "processes": processes,
        }, indent=1))
        partial.replace(self.state_file)

    # --------------------------------------------------------------- machines --

    def _make_management(self) -> None:
        bridge = self.layout.bridge
        run("ip", "link", "add", bridge, "type", "bridge")
        run("sysctl", "-qw", f"net.ipv6.conf.{bridge}.disable_ipv6=1")
        run("ip", "addr", "add", self.layout.management, "dev", bridge)
        run("ip", "link", "set", bridge, "up")

    def _make_machine(self, node: str) -> None:
        ns = self.layout.namespace(node)
        run("ip", "netns", "add", ns)
        # set before any interface exists: new interfaces take the defaults
        run("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1")
        run("ip", "-n", ns, "link", "set", "lo", "up")

    def _connect_switch(self, index: int, name: str) -> None:
        ns, end = self.layout.namespace(name), self.layout.management_end(index)
        run("ip", "link", "add", end, "type", "veth", "peer", "name", MANAGEMENT_IFNAME, "netns", ns)
        run("sysctl", "-qw", f"net.ipv6.conf.{end}.disable_ipv6=1")
        run("ip", "link", "set", end, "master", self.layout.bridge, "up")
        run("ip", "-n", ns, "addr", "add", str(self.layout.switch_address(name)), "dev", MANAGEMENT_IFNAME)
        run("ip", "-n", ns, "link", "set", MANAGEMENT_IFNAME, "up")
        for port in self.topology.ports(name):
            run("ip", "-n", ns, "link", "set", f"eth{port}", "up")

    def _configure_host(self, name: str) -> None:
        """What mininet_topos.host.DciaHost does, with ``ip`` on the host's namespace."""
        ns = self.layout.namespace(name)
        interfaces = self.topology.hosts[name].interfaces
        linked = {end.port for link in self.topology.links for end in (link.a, link.b) if end.node == name}
        for index, spec in enumerate(interfaces):
            if index not in linked:
                continue
            ifname = f"eth{index}"
            run("ip", "-n", ns, "link", "set", ifname, "address", spec.mac)
            run("ip", "-n", ns, "addr", "add", spec.ip, "dev", ifname)
            run("ip", "-n", ns, "link", "set", ifname, "up")
            run("ip", "netns", "exec", ns, "ethtool", "-K", ifname, "tx", "off")
            if spec.gateway and spec.gateway_mac:
                run("ip", "-n", ns, "neigh", "replace", spec.gateway, "lladdr", spec.gateway_mac,
                    "dev", ifname, "nud", "permanent")
        for route in host_routes(self.topology)[name]:
            run("ip", "-n", ns, "route", "replace", route.prefix, "via", route.gateway,
                "dev", f"eth{route.interface}")

    def _start_switch(self, name: str) -> None:
        switch = self.topology.switches[name]
        config = SwitchConfig(
            ports={port: f"eth{port}" for port in self.topology.ports(name)},
            grpc_addr=switch.grpc, device_id=switch.device_id,
            log_file=self.run_dir / f"{name}.log", log_level=self.log_level,
            tls_args=self.tls_args.get(name, ()),
        )
        process = SwitchProcess(self.target, config, stdout_path=self.run_dir / f"{name}.out")
        process.argv = self.command(name, process.argv)
        self.switches[name] = process
        process.start(timeout=self.start_timeout)
        self._save_state()
        log.info("%s: %s switch in namespace %s, P4Runtime %s (pid %d)", name, self.target,
                 self.layout.namespace(name), switch.grpc, process.proc.pid)

    # --------------------------------------------------------------- programs --

    def command(self, node: str, argv: Sequence[str]) -> list[str]:
        """``argv`` run on ``node``'s machine (in its namespace)."""
        return ["ip", "netns", "exec", self.layout.namespace(node), *argv]

    def popen(self, node: str, argv: Sequence[str], **kwargs) -> subprocess.Popen:
        """Start ``argv`` on ``node``'s machine; stopped with the lab, killed when this process dies."""
        proc = subprocess.Popen(die_with_parent(self.command(node, argv)), **kwargs)
        self.programs.append(proc)
        self._save_state()
        return proc

    def lost_switches(self) -> dict[str, str]:
        """Switches whose process has exited, and with which code."""
        return {name: f"switch process exited with code {s.proc.returncode}"
                for name, s in self.switches.items() if s.proc and s.proc.poll() is not None}

    def describe(self) -> list[tuple[str, str, str]]:
        """(node, namespace, addresses) for every node: where to reach what."""
        rows = [("controller", "(root)", f"{self.layout.management} on {self.layout.bridge}")]
        for name, switch in self.topology.switches.items():
            rows.append((name, self.layout.namespace(name), f"P4Runtime {switch.grpc} ({self.target})"))
        for name, host in self.topology.hosts.items():
            rows.append((name, self.layout.namespace(name), ", ".join(i.ip for i in host.interfaces)))
        return rows


# ---------------------------------------------------------------- clean-up --

def take_lock(prefix: str, timeout: float = 5.0) -> int:
    """Hold ``<prefix>.lock`` (a file descriptor, released when closed or at this process's
    death, however it dies); LabError while another live lab of that prefix holds it."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    fd = os.open(STATE_DIR / f"{prefix}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                owner = _read_state(STATE_DIR / f"{prefix}.json").get("owner", "?")
                raise LabError(f"a lab with prefix {prefix} is up in process {owner}; stop it "
                               "(Ctrl-C), or use another --prefix") from None
            time.sleep(0.1)


def remove_leftovers(prefix: str, layout: Layout | None = None) -> list[str]:
    """Remove what the state file of ``prefix`` lists, and ``layout``'s names: processes
    (by id and start time), namespaces, root-namespace interfaces. Returns what it removed.
    Call it holding the prefix's lock."""
    state_file = STATE_DIR / f"{prefix}.json"
    state = _read_state(state_file)
    removed = []
    pids = [pid for pid, started in state.get("processes", []) if process_start_time(pid) == started]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
            removed.append(f"process {pid}")
    deadline = time.monotonic() + 5
    while any(process_start_time(p) is not None for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    namespaces = dict.fromkeys([*state.get("namespaces", []), *(layout.namespaces if layout else [])])
    interfaces = dict.fromkeys([*state.get("interfaces", []), *(layout.root_interfaces if layout else [])])
    present = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    for ns in namespaces:
        if ns in present:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=COMMAND_TIMEOUT)
            removed.append(f"namespace {ns}")
    links = set(os.listdir("/sys/class/net"))
    for ifname in interfaces:
        if ifname in links:
            subprocess.run(["ip", "link", "del", ifname], capture_output=True, timeout=COMMAND_TIMEOUT)
            removed.append(f"interface {ifname}")
    state_file.unlink(missing_ok=True)
    if removed:
        log.info("removed %s", ", ".join(removed))
    return removed


def check_management_free(management: str) -> None:
    """LabError when the root namespace already reaches the management subnet some other way."""
    network = ipaddress.ip_interface(management).network
    routes = json.loads(subprocess.run(["ip", "-j", "-4", "route", "show", "table", "all"], capture_output=True,
                                       text=True, timeout=COMMAND_TIMEOUT, check=True).stdout or "[]")
    for route in routes:
        try:
            used = ipaddress.ip_network(route.get("dst", "default"), strict=False)
        except ValueError:  # "default" and the like
            continue
        if used.overlaps(network):
            raise LabError(f"the management network {network} is in use on this machine "
                           f"(route {route['dst']} dev {route.get('dev')}); give another --management")


def _read_state(state_file: Path) -> dict:
    try:
        state = json.loads(state_file.read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def _stop(proc: subprocess.Popen, timeout: float = 5.0) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


# ------------------------------------------------------------ command line --

def run_up(args: argparse.Namespace) -> int:
    signals = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    with StandaloneLab(load_topology(args.topology), target=args.target, run_dir=args.run_dir,
                       prefix=args.prefix, management=args.management) as lab:
        signal.pthread_sigmask(signal.SIG_BLOCK, signals)  # after the switches started
        for node, ns, where in lab.describe():
            print(f"{node:12} {ns:18} {where}")
        print(f"ready: run a program on a node with `ip netns exec {lab.layout.namespace('NODE')} ...`; "
              "Ctrl-C stops and removes everything", flush=True)
        deadline = None if args.duration is None else time.monotonic() + args.duration
        while deadline is None or time.monotonic() < deadline:
            if signal.sigtimedwait(signals, 1.0) is not None:
                break
            for name, reason in lab.lost_switches().items():
                log.error("%s: %s", name, reason)
                return 1
    return 0


def run_routes(args: argparse.Namespace) -> int:
    from controller.session import install_routes

    topology = load_topology(args.topology)
    check_tls_files(topology)
    written = asyncio.run(install_routes(topology))
    print(", ".join(f"{name}: {n} routes" for name, n in written.items()))
    return 0


def run_down(args: argparse.Namespace) -> int:
    fd = take_lock(args.prefix, timeout=0)
    try:
        removed = remove_leftovers(args.prefix)
    finally:
        os.close(fd)
    print("removed " + (", ".join(removed) if removed else "nothing"))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mininet_topos.standalone",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="emulate the topology's machines until Ctrl-C (root)")
    up.add_argument("--topology", required=True, type=Path)
    up.add_argument("--target", choices=("auto", "embedded", "bmv2"), default="auto")
    up.add_argument("--run-dir", type=Path, default=Path("logs/standalone"), help="switch logs")
    up.add_argument("--prefix", default=DEFAULT_PREFIX, help="of namespace and interface names")
    up.add_argument("--management", default=DEFAULT_MANAGEMENT,
                    help="the controller's address on the management network, with its prefix")
    up.add_argument("--duration", type=float, help="stop after this many seconds")
    up.set_defaults(run=run_up)
    routes = sub.add_parser("routes", help="install the topology's IPv4 routes on its switches "
                                           "(over P4Runtime, at the topology's addresses)")
    routes.add_argument("--topology", required=True, type=Path)
    routes.set_defaults(run=run_routes)
    down = sub.add_parser("down", help="remove what a killed `up` left (root)")
    down.add_argument("--prefix", default=DEFAULT_PREFIX)
    down.set_defaults(run=run_down)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(name)s: %(message)s")
    # as `dcia` does: finsy's records of failed sessions reach controller.session, not the console
    logging.getLogger("finsy").setLevel(logging.INFO if args.verbose else logging.ERROR)
    logging.getLogger("finsy").propagate = args.verbose
    if not args.verbose:
        logging.getLogger("finsy").addHandler(logging.NullHandler())
    try:
        return args.run(args)
    except DciaError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
