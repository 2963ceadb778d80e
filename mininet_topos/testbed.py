"""The testbed: a topology's Mininet network with P4 switches, routed, ready for a model.

``Testbed`` starts everything a run needs and stops all of it again, also on failure:

    with Testbed(load_topology("topologies/linear.toml"), target="embedded") as bed:
        bed.deploy(model, plan)                     # controller.deployment.from_plan + session.apply
        cloud = bed.start_cloud(model_file)         # hosts.cloud_server in the cloud host
        results = bed.run_edge(model_file, inputs_file, edge_layers=1)   # hosts.edge_agent
        bed.counters()                              # per switch, over P4Runtime
        cloud.stop()                                # the cloud's counters

Everything it starts (Mininet host shells, switch processes, host programs) is listed by
process id and start time in a state file, ``/tmp/dcia-testbed/<topology>.json``, with
the topology's interfaces and hosts. Before starting, the testbed stops what a crashed run
of the same topology left behind: those processes, by id, and the topology's interfaces,
by name; it refuses to start while the run that wrote the file is still alive.
``clean_all=True`` also runs Mininet's own ``mn -c`` clean-up, which kills *every*
Mininet on the machine.

A testbed whose process is killed outright (SIGKILL: no ``finally`` runs) leaves nothing
behind either: switch processes and host programs get a parent-death signal
(dcia.targets.die_with_parent), Mininet's shells end when their terminals close, and a
watchdog process (``python -m mininet_topos.testbed --watch <state file>``) waits for the
testbed's process to end and then removes what its state file lists.

A node that dies during a run does not end the run: ``lost_nodes`` names it and why,
``counters`` marks a lost switch (``SwitchCounters.error``) instead of raising, and the
edge agent accounts for every request (hosts.edge_agent: ``timeout``, ``abandoned``).

Faults on purpose (mininet_topos.faults) are not losses: ``fail`` kills a cloud server or
a switch process or takes a link down, ``restore`` brings it back (a switch with its
pipeline, routes and every deployed plan that uses it); ``run_edge`` runs a fault
``Schedule`` while the edge agent runs. With several paths from the edge (``failover_paths``)
the edge agent gets every path's cloud, in order of preference, and fails over.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import logging
import os
import queue
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from mininet.log import setLogLevel
from mininet.net import Mininet

from controller.deployment import Deployment, SwitchAssignment, SwitchEndpoint, endpoints, from_plan
from controller.pki import controller_tls, make_pki, server_args, with_tls
from controller.planner import Plan
from controller.routes import switch_routes
from controller.secrets import Pair, host_keys, load_secrets, make_secrets
from controller.session import PushPolicy, apply, connect, install_routes, switch_status, write_batched
from controller.topology import Topology
from dcia.artifacts import Pipeline
from dcia.errors import DciaError
from dcia.model import QuantizedModel
from dcia.targets import die_with_parent, process_start_time
from hosts.edge_agent import FailoverPolicy, RequestResult
from mininet_topos.delay_line import DelayLineLink
from mininet_topos.faults import Schedule
from mininet_topos.p4switch import P4Switch
from mininet_topos.topos import DciaTopo, netem_available

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent
STATE_DIR = Path("/tmp/dcia-testbed")
LOCK_TIMEOUT = 30.0
"""Seconds to wait for another clean-up of the same topology (a watchdog's) to finish."""


class TestbedError(DciaError):
    """The testbed could not be started or a program in it failed."""

    __test__ = False  # not a pytest test class


@dataclass
class SwitchCounters:
    """A switch's DCIA counters: `dcia_stats` by name (controller.entries.STAT_NAMES:
    computed, pass-through, version mismatch, malformed) and `layer_stats` by layer index.

    ``error``: the switch is lost (its process exited, or its P4Runtime server does not
    answer) and there are no counters; a difference with a lost switch is lost too."""

    stats: dict[str, int] = field(default_factory=dict)
    layers: dict[int, int] = field(default_factory=dict)
    error: str | None = None

    @property
    def lost(self) -> bool:
        return self.error is not None

    def __sub__(self, before: SwitchCounters) -> SwitchCounters:
        if self.lost or before.lost:
            return SwitchCounters(error=self.error or before.error)
        return SwitchCounters(
            {k: v - before.stats.get(k, 0) for k, v in self.stats.items()},
            {k: d for k, v in self.layers.items() if (d := v - before.layers.get(k, 0))},
        )


@dataclass
class Shaping:
    """Experiment options for the links and the edge: None keeps the topology's values.
    ``link_delay``: how links get their delay and loss (mininet_topos.topos.LINK_DELAYS)."""

    bandwidth_mbps: float | None = None
    delay_ms: float | None = None
    loss_pct: float | None = None
    edge_cpu: float | None = None
    link_delay: str = "auto"
    cloud_cpu: float | None = None
    """The cloud hosts' share of the machine's CPU (a loaded cloud), as ``edge_cpu``."""


class Testbed:
    """The running network of ``topology``: a context manager that always cleans up."""

    __test__ = False

    def __init__(self, topology: Topology, *, target: str = "auto", run_dir: Path = Path("logs"),
                 pcap: bool = False, shaping: Shaping = Shaping(),
                 grpc: dict[str, str] | None = None, pipeline: Pipeline | None = None,
                 clean_all: bool = False, mininet_log: str = "warning", tls: bool = True):
        self.topology = with_grpc(topology, grpc or {})
        self.tls = tls
        """P4Runtime over mutual TLS with certificates made at start (controller.pki); False:
        plain text."""
        self.target = target
        self.run_dir = Path(run_dir).resolve()
        self.pcap = pcap
        self.shaping = shaping
        self.pipeline = pipeline or Pipeline.default()
        self.clean_all = clean_all
        self.mininet_log = mininet_log
        self.net: Mininet | None = None
        self.programs: list[subprocess.Popen] = []
        self.clouds: list[CloudProcess] = []
        self.lost_hosts: dict[str, str] = {}
        """Host programs that died during a run (the edge agent), and why."""
        self.down_on_purpose: set[str] = set()
        """Nodes and links (``link:A-B``) ``fail`` took down and ``restore`` has not brought back."""
        self.restarted: set[str] = set()
        """Switches ``restore`` started again (their counters start from zero then)."""
        self.deployed: list[tuple[QuantizedModel, Plan, Mapping[str, int] | None]] = []
        """Every plan ``deploy`` put in place, to put back on a restarted switch."""
        self.cloud_models: dict[str, Path] = {}
        """Cloud host -> the model file its server was started with."""
        self.secrets: dict[Pair, bytes] | None = None
        """The topology's tensor keys (controller.secrets), read when a host first needs them."""
        self.watchdog: subprocess.Popen | None = None
        self.state_file = STATE_DIR / f"{topology.name}.json"
        self.link_delays: dict[str, str] = {}
        """``A-B`` -> what gave the link its delay and loss (DciaTopo.link_delays)."""

    # ------------------------------------------------------------ life cycle --

    def start(self) -> Testbed:
        setLogLevel(self.mininet_log)
        clean_stale(self.topology, self.state_file, clean_all=self.clean_all)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._save_state()  # the interfaces, before Mininet makes them
        self.watchdog = start_watchdog(self.state_file, self.run_dir / "testbed-watchdog.log")
        tls_args = self._make_pki()
        topo = DciaTopo(self.topology, target=self.target, log_dir=self.run_dir,
                        pcap_dir=self.run_dir / "pcap" if self.pcap else None,
                        bandwidth_mbps=self.shaping.bandwidth_mbps, delay_ms=self.shaping.delay_ms,
                        loss_pct=self.shaping.loss_pct, edge_cpu=self.shaping.edge_cpu,
                        cloud_cpu=self.shaping.cloud_cpu,
                        json_path=self.pipeline.bmv2_json, link_delay=self.shaping.link_delay,
                        tls_args=tls_args)
        self.link_delays = topo.link_delays
        self.net = Mininet(topo=topo, controller=None, build=False, autoSetMacs=False,
                           autoStaticArp=False, waitConnected=False)
        try:
            self.net.build()
            self._save_state()
            for switch in self.net.switches:  # what net.start() does without controllers,
                switch.start([])              # recording each switch process as it starts
                self._save_state()
            asyncio.run(install_routes(self.topology, self.endpoints(), self.pipeline))
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def tls_dir(self) -> Path:
        """The PKI of this run (controller.pki): what ``dcia ... --tls`` takes."""
        return self.run_dir / "tls"

    def _make_pki(self) -> dict[str, tuple[str, ...]]:
        """With ``tls``: new certificates in ``tls_dir``, the controller's side set on every
        switch of the topology; returns each switch's server options. Without: no PKI (an
        old one is removed, so that nothing offers certificates no switch asks for)."""
        shutil.rmtree(self.tls_dir, ignore_errors=True)
        if not self.tls:
            return {}
        if any(s.tls is not None for s in self.topology.switches.values()):
            log.warning("the testbed makes its own certificates; the topology's tls is not used")
        make_pki(self.tls_dir, {name: s.grpc for name, s in self.topology.switches.items()})
        self.topology = with_tls(self.topology, controller_tls(self.tls_dir))
        return {name: server_args(self.tls_dir, name) for name in self.topology.switches}

    def stop(self) -> None:
        """Stop host programs, switch processes and the network; remove the state file.

        Idempotent; a second Ctrl-C or SIGTERM does not interrupt it."""
        with _signals_ignored():
            for proc in self.programs:
                _stop_process(proc)
            self.programs.clear()
            self.clouds.clear()
            if self.net is not None:
                for switch in self.net.switches:
                    if isinstance(switch, P4Switch):
                        switch.stop_process()
                try:
                    self.net.stop()
                except Exception:  # what is left, clean_stale removes
                    log.exception("Mininet did not stop cleanly")
                self.net = None
            clean_stale(self.topology, self.state_file)
            shutil.rmtree(self.tls_dir, ignore_errors=True)  # no switch takes them any more
            if self.watchdog is not None:  # nothing left for it to do
                _stop_process(self.watchdog)
                self.watchdog = None

    def __enter__(self) -> Testbed:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _save_state(self) -> None:
        """Record every process id the testbed owns, its interfaces and hosts, for clean-up
        after a crash (written whole to a temporary file and renamed: a reader never sees
        half of it)."""
        pids = [p.pid for p in self.programs]
        for node in self.net.hosts + self.net.switches if self.net else []:
            if node.shell is not None:
                pids.append(node.shell.pid)
            if isinstance(node, P4Switch) and node.process and node.process.proc:
                pids.append(node.process.proc.pid)
        pids += [link.relay.pid for link in self.delay_lines() if link.relay is not None]
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        processes = [(pid, started) for pid in pids if (started := process_start_time(pid)) is not None]
        owner = [os.getpid(), process_start_time(os.getpid())]
        partial = self.state_file.with_suffix(".part")
        partial.write_text(json.dumps({
            "processes": processes, "owner": owner,
            "interfaces": topology_interfaces(self.topology), "hosts": sorted(self.topology.hosts),
        }))
        partial.replace(self.state_file)

    def owned_processes(self) -> list[tuple[int, int]]:
        """(process id, start time) of everything the testbed runs now."""
        try:
            return [tuple(p) for p in json.loads(self.state_file.read_text())["processes"]]
        except FileNotFoundError:
            return []

    # -------------------------------------------------------------- controller --

    def endpoints(self) -> dict[str, SwitchEndpoint]:
        return endpoints(self.topology)

    def deploy(self, model: QuantizedModel, plan: Plan,
               spread_over: Mapping[str, int] | None = None,
               backups: Mapping[str, Sequence[int]] | None = None) -> Deployment:
        """Put the plan's switch stages in place (controller.deployment.from_plan, then
        session.apply); with ``spread_over`` (path -> weight) what leaves the network goes to
        those paths' clouds by weight; ``backups`` (switch -> layers) also puts layers
        planned on an earlier switch there, to compute what that one defers."""
        deployment = from_plan(plan, model.layers, self.topology, model_id=model.model_id,
                               version=model.version, spread_over=spread_over, backups=backups)
        asyncio.run(apply(deployment, self.pipeline, push=PushPolicy.NEVER))
        self.deployed = [(m, p, w) for m, p, w in self.deployed
                         if (m.model_id, m.version, p.route) != (model.model_id, model.version, plan.route)]
        self.deployed.append((model, plan, spread_over))
        return deployment

    def undeploy(self, model: QuantizedModel, switch: str) -> None:
        """Remove every entry of ``model`` from ``switch``."""
        empty = Deployment(model.model_id, model.version, (SwitchAssignment(self.endpoints()[switch]),))
        asyncio.run(apply(empty, self.pipeline, push=PushPolicy.NEVER))

    def counters(self) -> dict[str, SwitchCounters]:
        """Every switch's counters, read over P4Runtime (controller.session.switch_status);
        a lost switch's, or one ``fail`` took down, carry the error instead
        (``SwitchCounters.lost``)."""
        dead = self.lost_switches()
        dead.update((name, "taken down by a fault on purpose, not brought back")
                    for name in self.down_on_purpose if name in self.topology.switches)
        live = [e for name, e in self.endpoints().items() if name not in dead]

        async def read_all():
            return [await switch_status(e, self.pipeline) for e in live]

        out = {name: SwitchCounters(error=reason) for name, reason in dead.items()}
        for status in asyncio.run(read_all()):
            if status.error:
                log.warning("cannot read the counters of %s: %s", status.name, status.error)
                out[status.name] = SwitchCounters(error=f"cannot read its counters: {status.error}")
            else:
                out[status.name] = SwitchCounters(status.stats, status.layers_computed)
        return {name: out[name] for name in self.topology.switches}

    def lost_switches(self) -> dict[str, str]:
        """Switches whose process has exited, and how."""
        return {node.name: f"switch process exited with code {node.process.proc.returncode}"
                for node in (self.net.switches if self.net else [])
                if isinstance(node, P4Switch) and node.process and node.process.proc
                and node.process.proc.poll() is not None and node.name not in self.down_on_purpose}

    def lost_nodes(self) -> dict[str, str]:
        """Every node that died while the testbed ran, and how: switches whose process
        exited, cloud servers that exited unasked, an edge agent that crashed, a link's
        delay line relay that exited (as ``link:A-B``) (not what ``fail`` took down on
        purpose)."""
        lost = self.lost_switches()
        lost.update((c.host, reason) for c in self.clouds if (reason := c.lost()))
        lost.update(self.lost_hosts)
        lost.update((f"link:{link.intf1.node.name}-{link.intf2.node.name}", reason)
                    for link in self.delay_lines() if (reason := link.lost()))
        return lost

    def delay_lines(self) -> list[DelayLineLink]:
        """The links whose delay and loss a relay process makes (mininet_topos.delay_line)."""
        return [link for link in (self.net.links if self.net else []) if isinstance(link, DelayLineLink)]

    def link_delay_report(self) -> dict:
        """What gave the links their delay and loss, for the run's summary: the option,
        whether the kernel has netem, and per link ``netem``, ``delay-line``, ``none`` (it
        has neither delay nor loss) or ``dropped`` (netem forced on a kernel without it)."""
        return {"requested": self.shaping.link_delay, "netem_available": netem_available(),
                "links": dict(self.link_delays)}

    # ------------------------------------------------------------ host programs --

    def host(self, name: str):
        return self.net.get(name)

    def popen(self, host: str, argv: list[str], **kwargs) -> subprocess.Popen:
        """Start ``argv`` in ``host``'s namespace (and cgroup); stopped with the testbed, and
        killed when the testbed's process dies (dcia.targets.die_with_parent)."""
        proc = self.host(host).popen(die_with_parent(argv), cwd=str(REPO), **kwargs)
        self.programs.append(proc)
        self._save_state()
        return proc

    def tensor_keys(self, host: str) -> Path | None:
        """The file of ``host``'s keys for sealed tensors (dcia.sealing), written into the run
        directory from the topology's secrets file, or None when the policy seals no model.
        A missing secrets file is made (mode 0600, a new key per edge-cloud pair)."""
        if not self.topology.policy.sealed_models:
            return None
        if self.secrets is None:
            path = self.topology.security.tensor_keys
            if not path.exists():
                make_secrets(self.topology, path)
                log.warning("made new tensor keys at %s (one per edge-cloud pair)", path)
            self.secrets = load_secrets(self.topology)
        keys = host_keys(self.topology, self.secrets, host)
        return keys.save(self.run_dir / f"{host}-tensor-keys.json")

    def start_cloud(self, model_file: Path, *, path: str | None = None, host: str | None = None,
                    stats_file: Path | None = None, args: Sequence[str] = ()) -> CloudProcess:
        """hosts.cloud_server in ``host`` (default: the cloud host of ``path``); returns
        once it listens. It answers each model only to the sources the topology's policy
        allows (its tenants), and the policy's sealed models only when they come sealed.
        ``args``: further options of hosts.cloud_server (``--fusion-member``, ...)."""
        host = host or self.cloud_host(path)
        self.cloud_models[host] = model_file
        stats_file = stats_file or self.run_dir / f"{host}-stats.json"
        stats_file.unlink(missing_ok=True)
        log_file = self.run_dir / f"{host}-cloud.log"
        with open(log_file, "wb") as err:
            allow = [f"{t_model}={','.join(t.sources)}" for t in self.topology.policy.tenants
                     for t_model in sorted(t.models)]
            keys = self.tensor_keys(host)
            sealing = [] if keys is None else ["--tensor-keys", str(keys), *(
                arg for m in sorted(self.topology.policy.sealed_models) for arg in ("--sealed-model", str(m)))]
            proc = self.popen(host, [sys.executable, "-m", "hosts.cloud_server", "--model",
                                     str(model_file), "--stats", str(stats_file),
                                     *(arg for a in allow for arg in ("--allow", a)), *sealing,
                                     *args],
                              stdout=subprocess.PIPE, stderr=err)
        line = proc.stdout.readline().decode()
        if "listening" not in line:
            _stop_process(proc)
            raise TestbedError(f"the cloud server in {host} did not start: "
                               f"{log_file.read_text()[-800:]}")
        cloud = CloudProcess(proc, stats_file, host)
        self.clouds.append(cloud)
        return cloud

    def start_clouds(self, model_file: Path, paths: Sequence[str]) -> list[CloudProcess]:
        """A cloud server in the cloud host of each of ``paths`` (each host once)."""
        hosts = dict.fromkeys(self.cloud_host(p) for p in paths)
        return [self.start_cloud(model_file, host=h) for h in hosts]

    def cloud(self, host: str) -> CloudProcess | None:
        """The cloud server process of ``host`` started last."""
        return next((c for c in reversed(self.clouds) if c.host == host), None)

    def run_edge(self, model_file: Path, inputs_file: Path, *, edge_layers: int,
                 path: str | None = None, clouds: Sequence[str] | None = None,
                 answerers: Sequence[str] = (),
                 requests: int | None = None, window: int = 16, timeout: float = 1.0,
                 attempts: int = 5, rate: float | None = None,
                 failover: FailoverPolicy = FailoverPolicy(), schedule: Schedule | None = None,
                 on_result: Callable[[RequestResult], None] | None = None,
                 local: bool = False) -> list[RequestResult]:
        """Run hosts.edge_agent in the edge host of ``path`` until every request is answered
        or given up; it sends to ``clouds`` (addresses, most preferred first; default: the
        cloud's address on that path) and fails over between them; it also takes answers
        from ``answerers`` (the other clouds of a spread). A model the policy seals
        (``sealed_models``) goes sealed to each cloud with the pair's key.

        ``schedule``: faults to inject while it runs, timed from the first request's send
        (its first result carries it); they run in this thread, between results.

        One result per input, always: should the agent itself die, the inputs it had not
        reported get the status ``lost`` and the edge host is in ``lost_nodes``.

        ``local``: the agent computes every layer and answers itself, sending nothing
        (edge-only inference; ``edge_layers`` must be the model's length)."""
        host = self.edge_host(path)
        clouds = list(clouds or [self.address(self.cloud_host(path), path)])
        argv = [sys.executable, "-m", "hosts.edge_agent", "--model", str(model_file),
                *(arg for c in clouds for arg in ("--cloud", c)),
                *(arg for a in answerers for arg in ("--answerer", a)),
                "--edge-layers", str(edge_layers), "--inputs", str(inputs_file),
                "--window", str(window), "--timeout", str(timeout), "--attempts", str(attempts),
                "--down-after", str(failover.down_after), "--hold-down", str(failover.hold_down)]
        if requests is not None:
            argv += ["--requests", str(requests)]
        if rate is not None:
            argv += ["--rate", str(rate)]
        if local:
            argv.append("--local")
        if QuantizedModel.load(model_file).model_id in self.topology.policy.sealed_models:
            argv += ["--tensor-keys", str(self.tensor_keys(host))]
        log_file = self.run_dir / f"{host}-edge.log"
        results = []
        with open(log_file, "wb") as err:
            proc = self.popen(host, argv, stdout=subprocess.PIPE, stderr=err)
            lines: queue.Queue[bytes | None] = queue.Queue()
            reader = threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True)
            reader.start()
            while True:
                wait = schedule.next_in() if schedule else None
                try:
                    line = lines.get(timeout=wait)
                except queue.Empty:
                    schedule.run_due(self)
                    continue
                if line is None:
                    break
                result = RequestResult(**json.loads(line))
                results.append(result)
                if schedule:
                    schedule.begin(result.sent_at)
                if on_result:
                    on_result(result)
                if schedule:
                    schedule.run_due(self)
            reader.join()
            proc.wait()
        if proc.returncode not in (0, 1):  # 1: some requests failed, reported per request
            reason = (f"the edge agent exited with code {proc.returncode}: "
                      f"{log_file.read_text()[-800:]}")
            log.error("%s: %s", host, reason)
            self.lost_hosts[host] = reason
            total = len(np.load(inputs_file, mmap_mode="r")[:requests])
            reported = {r.index for r in results}
            results += [RequestResult(i, 0, -1, [], 0.0, 0, 0, -1, "lost")
                        for i in range(total) if i not in reported]
        return sorted(results, key=lambda r: r.index)

    def failover_paths(self, path: str | None = None) -> list[str]:
        return failover_paths(self.topology, path)

    # ---------------------------------------------------------------- faults --

    def fail(self, target: str) -> None:
        """Take ``target`` down on purpose (not a lost node): a cloud host's server is
        killed (SIGKILL), a switch's process is killed, ``link:A-B`` goes down at both ends."""
        if target.startswith("link:"):
            a, _, b = target.removeprefix("link:").partition("-")
            self.net.configLinkStatus(a, b, "down")
        elif target in self.topology.switches:
            switch = self.host(target)
            if switch.running:
                switch.process.proc.kill()
                switch.process.proc.wait(5)
        else:
            cloud = self.cloud(target)
            if cloud is None:
                raise TestbedError(f"no cloud server runs in {target}")
            cloud.kill()
        self.down_on_purpose.add(target)

    def restore(self, target: str) -> None:
        """Bring back what ``fail`` took down: the link up again (with the routes a host
        end lost), the cloud server started again, the switch process started again with
        its pipeline, its routes and the layers of every plan deployed on it."""
        if target.startswith("link:"):
            a, _, b = target.removeprefix("link:").partition("-")
            self.net.configLinkStatus(a, b, "up")
            for end, other in ((a, b), (b, a)):
                if end in self.topology.hosts:
                    self.host(end).add_routes(self.topology.port(end, other))
        elif target in self.topology.switches:
            self.host(target).start([])
            self._save_state()
            self.restarted.add(target)
            asyncio.run(self._install_routes(target))
            for model, plan, spread_over in self.deployed:
                if target in self.topology.paths[plan.route]:
                    self.deploy(model, plan, spread_over)
        else:
            self.start_cloud(self.cloud_models[target], host=target)
        self.down_on_purpose.discard(target)

    async def _install_routes(self, switch: str) -> None:
        """One switch's IPv4 routes (controller.routes), the pipeline pushed first."""
        routes = switch_routes(self.topology)[switch]
        async with connect(self.endpoints()[switch], self.pipeline, push=PushPolicy.IF_MISSING) as sw:
            await write_batched(sw, [+r.entry() for r in routes])

    def edge_host(self, path: str | None = None) -> str:
        """The edge host of ``path`` (default: the topology's first path)."""
        return self.topology.route(path).nodes[0].name

    def cloud_host(self, path: str | None = None) -> str:
        return self.topology.route(path).nodes[-1].name

    def address(self, host: str, path: str | None = None) -> str:
        """The address of ``host``'s interface on ``path`` (hosts may have several)."""
        return self.topology.host_address(host, path)

    def pingall(self, timeout: float = 2) -> float:
        """Ping from each end of every path to the other end's address on that path (Mininet's
        pingall would use each host's first address, which another path cannot reach);
        returns the percentage of pings lost."""
        pings = []
        for path, hops in self.topology.paths.items():
            for src, dst in ((hops[0], hops[-1]), (hops[-1], hops[0])):
                pings.append((src, self.address(dst, path)))
        lost = 0
        for src, ip in pings:
            out = self.host(src).cmd(f"ping -c 1 -W {timeout} {ip}")
            if " 1 received" not in out:
                log.warning("ping from %s to %s failed", src, ip)
                lost += 1
        return 100.0 * lost / len(pings)


class NodeLost(TestbedError):
    """A node died during the run: ``node`` names it."""

    def __init__(self, node: str, reason: str):
        super().__init__(f"{node}: {reason}")
        self.node, self.reason = node, reason


@dataclass
class CloudProcess:
    proc: subprocess.Popen
    stats_file: Path
    host: str = "cloud"
    stopped: bool = False
    """Stopped by ``stop`` (not lost)."""
    killed: bool = False
    """Killed on purpose by ``kill`` (a fault; not lost)."""

    def lost(self) -> str | None:
        """Why the server is gone, if it exited without being asked to."""
        if self.stopped or self.killed or self.proc.poll() is None:
            return None
        return f"the cloud server exited with code {self.proc.returncode}"

    def kill(self) -> None:
        """A crash on purpose: SIGKILL, no counters written."""
        self.killed = True
        self.proc.kill()
        self.proc.wait(5)

    def stop(self) -> dict:
        """Stop the server; its counters (hosts.cloud_server.CloudStats as a dict), or
        ``{"killed": True}`` for one killed on purpose.

        Raises NodeLost when the server had died before."""
        if self.killed:
            return {"killed": True}
        if reason := self.lost():
            raise NodeLost(self.host, reason)
        self.stopped = True
        _stop_process(self.proc)
        if not self.stats_file.exists():
            raise TestbedError(f"the cloud server wrote no counters to {self.stats_file}")
        return json.loads(self.stats_file.read_text())


def _read_lines(stream, into: queue.Queue) -> None:
    """Put every line of ``stream`` into ``into``, then None."""
    for line in stream:
        into.put(line)
    into.put(None)


def _stop_process(proc: subprocess.Popen, timeout: float = 5) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


def failover_paths(topology: Topology, path: str | None = None) -> list[str]:
    """``path`` (default: the first) and every other path from its edge host, in the
    topology's order: the edge agent's clouds, most preferred first.

    >>> from controller.topology import load_topology
    >>> failover_paths(load_topology("topologies/redundant.toml"), "backup")
    ['backup', 'primary']
    """
    first = topology.route(path).name
    edge = topology.paths[first][0]
    return [first] + [p for p, hops in topology.paths.items() if p != first and hops[0] == edge]


def with_grpc(topology: Topology, grpc: dict[str, str]) -> Topology:
    """``topology`` with other P4Runtime addresses for some switches (tests use free ports)."""
    switches = {name: replace(s, grpc=grpc.get(name, s.grpc)) for name, s in topology.switches.items()}
    return replace(topology, switches=switches)


# ------------------------------------------------------------------ clean-up --

def topology_interfaces(topology: Topology) -> list[str]:
    """Interface names Mininet gives the topology's nodes: ``s1-eth2``, ``h1-eth0``."""
    return [f"{end.node}-eth{end.port}" for link in topology.links for end in (link.a, link.b)]


def leftovers(topology: Topology, processes: list[tuple[int, int]] | None = None) -> list[str]:
    """What a run of ``topology`` left behind: its interfaces and ``processes`` (default:
    those of its state file) that still exist."""
    present = set(os.listdir("/sys/class/net"))
    found = [f"interface {i}" for i in topology_interfaces(topology) if i in present]
    if processes is None:
        found += [f"process {pid}" for pid in _recorded_pids(STATE_DIR / f"{topology.name}.json")]
    else:
        found += [f"process {pid}" for pid, started in processes if process_start_time(pid) == started]
    return found


def clean_stale(topology: Topology, state_file: Path, *, clean_all: bool = False) -> None:
    """Remove what a previous run of ``topology`` left: its processes (by recorded id) and
    its interfaces (by name). ``clean_all``: Mininet's ``mn -c`` as well.

    Raises TestbedError, touching nothing, while the process that started that run lives,
    or while a testbed of another topology whose interfaces have the same names runs: two
    such testbeds cannot share the machine (Mininet names interfaces after the nodes)."""
    with _state_lock(state_file):
        owner = _owner(state_file)
        if owner is not None and owner != os.getpid():
            raise TestbedError(f"a testbed of topology {topology.name} is running in process "
                               f"{owner} (see {state_file}); stop it first")
        ours = set(topology_interfaces(topology))
        for other in sorted(state_file.parent.glob("*.json")):
            other_owner = _owner(other) if other != state_file else None
            shared = ours & set((_read_state(other) or {}).get("interfaces", []))
            if other_owner is not None and other_owner != os.getpid() and shared:
                raise TestbedError(f"a testbed of topology {other.stem} is running in process "
                                   f"{other_owner} with interfaces of the same names "
                                   f"({', '.join(sorted(shared)[:3])}, ...); stop it first")
        if clean_all:
            from mininet.clean import cleanup
            cleanup()
        _remove(state_file, topology_interfaces(topology), sorted(topology.hosts))


def watch(state_file: Path, owner: tuple[int, int]) -> None:
    """Wait until ``owner`` (process id, start time) ends, then remove what its testbed left:
    the processes, interfaces and CPU cgroups its state file lists. Does nothing when the
    state file is gone or belongs to another run by then (that run cleaned up)."""
    pid, started = owner
    with contextlib.suppress(ProcessLookupError):
        pidfd = os.pidfd_open(pid)
        try:
            if process_start_time(pid) == started:
                select.select([pidfd], [], [])  # readable once the process has ended
        finally:
            os.close(pidfd)
    with _state_lock(state_file):
        state = _read_state(state_file)
        if state is None or state.get("owner") != [pid, started]:
            return
        log.warning("the testbed process %d ended without stopping: cleaning up after it", pid)
        _remove(state_file, state.get("interfaces", []), state.get("hosts", []))


def start_watchdog(state_file: Path, log_file: Path) -> subprocess.Popen:
    """Start ``watch`` for this process in a process of its own (its own session: neither
    Ctrl-C nor this process's death reaches it); stop it once this process has cleaned up."""
    owner = f"{os.getpid()}:{process_start_time(os.getpid())}"
    with open(log_file, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "mininet_topos.testbed", "--watch",
                                 str(state_file), "--owner", owner],
                                cwd=str(REPO), stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _remove(state_file: Path, interfaces: Sequence[str], hosts: Sequence[str]) -> None:
    """Stop the processes ``state_file`` lists, delete ``interfaces`` and the CPU cgroups
    of ``hosts``, remove ``state_file`` (with the state lock held)."""
    pids = [p for p in _recorded_pids(state_file) if p != os.getpid()]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 3
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in pids:
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    present = set(os.listdir("/sys/class/net"))
    for ifname in dict.fromkeys(interfaces):
        if ifname in present:
            log.warning("removing stale interface %s", ifname)
            subprocess.run(["ip", "link", "del", ifname], capture_output=True)
    for host in hosts:  # CPULimitedHost's cgroup
        if Path(f"/sys/fs/cgroup/cpu/{host}").is_dir():
            subprocess.run(["cgdelete", "-r", f"cpu,cpuacct,cpuset:/{host}"], capture_output=True)
    state_file.unlink(missing_ok=True)


@contextlib.contextmanager
def _state_lock(state_file: Path, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Hold ``<state file>.lock``: one clean-up of a topology at a time (a watchdog's and a
    new run's do not interleave)."""
    state_file.parent.mkdir(parents=True, exist_ok=True)
    with open(state_file.with_suffix(".lock"), "a") as lock:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TestbedError(f"{state_file} stays locked by another clean-up "
                                       f"for {timeout:.0f} s") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read_state(state_file: Path) -> dict | None:
    try:
        state = json.loads(state_file.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def _recorded_pids(state_file: Path) -> list[int]:
    """The recorded processes that still run: same id *and* same start time (no reused id)."""
    try:
        recorded = _read_state(state_file)["processes"]
        return [pid for pid, started in recorded if process_start_time(pid) == started]
    except (KeyError, TypeError, ValueError):
        return []


def _owner(state_file: Path) -> int | None:
    """The process that wrote ``state_file``, if it still runs."""
    try:
        pid, started = _read_state(state_file)["owner"]
    except (KeyError, TypeError, ValueError):
        return None
    return pid if process_start_time(pid) == started else None


def _alive(pid: int) -> bool:
    return process_start_time(pid) is not None


@contextlib.contextmanager
def _signals_ignored() -> Iterator[None]:
    """Ignore SIGINT and SIGTERM for a while (main thread only; elsewhere, do nothing)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextlib.contextmanager
def terminate_on_signals() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into SystemExit, so every ``finally`` runs (Ctrl-C already does)."""
    def handler(signum, frame):
        raise SystemExit(128 + signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def main(argv: list[str] | None = None) -> int:
    """The watchdog's command line (``start_watchdog``)."""
    parser = argparse.ArgumentParser(prog="python -m mininet_topos.testbed",
                                     description="clean up after a testbed process once it ends")
    parser.add_argument("--watch", type=Path, required=True, help="the testbed's state file")
    parser.add_argument("--owner", required=True, help="PID:START_TIME of the testbed process")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s watchdog: %(message)s")
    pid, started = (int(v) for v in args.owner.split(":"))
    watch(args.watch, (pid, started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
