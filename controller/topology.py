"""The topology description: the one source of truth for what the network looks like.

A TOML file names the hosts (edge devices and cloud servers, with their interfaces), the
P4 switches (with their P4Runtime address), the links between them (ports, bandwidth,
delay, loss) and the paths tensors take from an edge to a cloud. Every node's table also
holds its capability fields (dcia.capability): the planner reads them now, the Mininet
topologies and the controller read the same file later.

    name = "linear"

    [hosts.h1]                      # kind edge or cloud; one interface given by ip/mac,
    kind = "edge"                   # or several: interfaces = [{ ip, mac, ... }, ...]
    ip = "10.0.1.1/24"
    mac = "08:00:00:00:01:11"
    gateway = "10.0.1.10"           # optional: default route and the gateway's MAC
    gateway_mac = "08:00:00:00:01:00"
    macs_per_s = 2e5                # capability fields (see Capability)
    metrics = "127.0.0.1:9101"      # optional: its metric agent (dcia.metrics), host:port

    [switches.s1]                   # kind switch is implied
    grpc = "127.0.0.1:50001"        # P4Runtime server of the switch
    device_id = 1
    tls = { ca = "certs/ca.pem", cert = "certs/s1.pem", key = "certs/s1.key" }  # optional
    layer_time_s = 5e-4

    [[links]]                       # "node:port"; a host's port is its interface index
    endpoints = ["h1", "s1:1"]      # (default 0)
    bandwidth_mbps = 100            # default 1000
    delay_ms = 0.5                  # default 0
    loss_pct = 0                    # default 0

    [paths]                         # edge host, switches..., cloud host
    main = ["h1", "s1", "h2"]

``load_topology`` checks all of it and says in one line what is wrong and where
(``linear.toml: link s2-s9: unknown node s9``). Relative TLS paths are relative to the file;
``check_tls_files`` says whether those files are there, for the commands that connect.

    >>> topo = load_topology("topologies/linear.toml")
    >>> [n.name for n in topo.route().nodes]
    ['h1', 's1', 's2', 's3', 'h2']
    >>> topo.switches["s2"].grpc, topo.ports("s2")
    ('127.0.0.1:50002', {1: 's1', 2: 's3'})
"""

from __future__ import annotations

import ipaddress
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from controller.policy import Policy, parse_policy
from dcia.capability import DCIA_PROGRAM, Capability, NodeKind
from dcia.errors import CapabilityError, TopologyError

_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
_DIGITS = re.compile(r"[0-9]+")
_HOSTNAME = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)*\.?")
_CAPABILITY_FIELDS = frozenset(f.name for f in fields(Capability)) - {"name", "kind"}
_INTERFACE_KEYS = frozenset({"ip", "mac", "gateway", "gateway_mac"})
_HOST_KEYS = frozenset({"kind", "interfaces", "metrics"}) | _INTERFACE_KEYS
_SWITCH_KEYS = frozenset({"kind", "grpc", "device_id", "tls"})
_LINK_KEYS = frozenset({"endpoints", "bandwidth_mbps", "delay_ms", "loss_pct"})
_TOP_KEYS = frozenset({"name", "description", "hosts", "switches", "links", "paths", "policy",
                       "security"})
DEFAULT_BANDWIDTH_MBPS = 1000.0
PORT_BITS = 9
"""Width of a port number in p4src/dcia.p4 (``egressSpec_t``, v1model's ``egress_spec``)."""
CPU_PORT = 255
"""The port the switches are started with as their CPU port (dcia.targets.SwitchConfig)."""
DROP_PORT = (1 << PORT_BITS) - 1
"""BMv2's drop port: a packet sent to 511 is dropped."""
_LOOPBACK = "localhost"


@dataclass(frozen=True)
class Interface:
    ip: str
    """Address with prefix length, ``10.0.1.1/24``."""
    mac: str
    gateway: str | None = None
    """Next hop of the default route through this interface, and its MAC (static ARP)."""
    gateway_mac: str | None = None


@dataclass(frozen=True)
class Host:
    """An edge device or a cloud server: a Mininet host that runs the first or last stages."""

    capability: Capability
    interfaces: tuple[Interface, ...]
    metrics: str | None = None
    """``host:port`` of the node's metric agent (dcia.metrics), where the controller reads
    its live record; None: the topology's record is all there is."""

    @property
    def name(self) -> str:
        return self.capability.name

    @property
    def ip(self) -> str:
        """Address of the first interface, without the prefix length."""
        return self.interfaces[0].ip.split("/")[0]

    @property
    def mac(self) -> str:
        return self.interfaces[0].mac


@dataclass(frozen=True)
class Tls:
    """Certificates for the P4Runtime channel; without ``cert``/``key`` only the server is checked."""

    ca: Path
    cert: Path | None = None
    key: Path | None = None


@dataclass(frozen=True)
class Switch:
    """A P4 switch running the DCIA program, reached over P4Runtime at ``grpc``."""

    capability: Capability
    grpc: str
    device_id: int
    tls: Tls | None = None

    @property
    def name(self) -> str:
        return self.capability.name


@dataclass(frozen=True)
class Endpoint:
    node: str
    port: int

    def __str__(self) -> str:
        return f"{self.node}:{self.port}"


@dataclass(frozen=True)
class Link:
    """A bidirectional link with the shaping Mininet's TCLink applies (bw, delay, loss)."""

    a: Endpoint
    b: Endpoint
    bandwidth_mbps: float = DEFAULT_BANDWIDTH_MBPS
    delay_ms: float = 0.0
    loss_pct: float = 0.0

    @property
    def name(self) -> str:
        return f"{self.a.node}-{self.b.node}"

    def joins(self, u: str, v: str) -> bool:
        return {self.a.node, self.b.node} == {u, v}

    def serialization_seconds(self, nbytes: int) -> float:
        """Time to put ``nbytes`` on the wire at the link's bandwidth."""
        return nbytes * 8 / (self.bandwidth_mbps * 1e6)

    def transfer_seconds(self, nbytes: int) -> float:
        """One-way time of an ``nbytes`` frame: propagation delay plus serialization."""
        return self.delay_ms / 1e3 + self.serialization_seconds(nbytes)


@dataclass(frozen=True)
class Route:
    """A path from an edge host over switches to a cloud host, with the links between."""

    name: str
    nodes: tuple[Capability, ...]
    links: tuple[Link, ...]

    def __str__(self) -> str:
        return " → ".join(n.name for n in self.nodes)

    def with_round_trip(self, rtt_s: float) -> Route:
        """This route with its links' delays set from a measured round trip (a path probe,
        controller.steer): each link keeps its share of the nominal delay (equal shares
        when the file gives none), and there and back they add up to ``rtt_s``.

        >>> route = load_topology("topologies/linear.toml").route()
        >>> [l.delay_ms for l in route.links]
        [0.1, 0.05, 0.05, 10.0]
        >>> [round(l.delay_ms, 3) for l in route.with_round_trip(0.004).links]
        [0.02, 0.01, 0.01, 1.961]
        """
        if not math.isfinite(rtt_s) or rtt_s < 0:
            raise TopologyError(f"path {self.name}: a round trip of {rtt_s} s cannot be a delay")
        nominal = sum(link.delay_ms for link in self.links)
        one_way_ms = rtt_s * 1e3 / 2
        shares = ([link.delay_ms / nominal for link in self.links] if nominal > 0
                  else [1 / len(self.links)] * len(self.links))
        return replace(self, links=tuple(replace(link, delay_ms=one_way_ms * share)
                                         for link, share in zip(self.links, shares)))


@dataclass(frozen=True)
class Security:
    """The ``[security]`` of a topology: the keys whose signed partition manifests
    ``dcia deploy`` accepts (name -> PEM public key file, controller.manifest), whether a
    deployment must come with one, and the secrets file of the edge–cloud keys that seal the
    tensors of the policy's ``sealed_models`` (controller.secrets, dcia.sealing).

        [security]
        trusted_keys = { ops = "keys/ops.pub" }
        require_signed = true
        tensor_keys = "keys/tensors.toml"
    """

    trusted_keys: Mapping[str, Path] = field(default_factory=dict)
    require_signed: bool = False
    tensor_keys: Path | None = None


@dataclass(frozen=True)
class Topology:
    """A checked topology file: hosts, switches, links and paths, all by node name."""

    name: str
    description: str
    hosts: Mapping[str, Host]
    switches: Mapping[str, Switch]
    links: tuple[Link, ...]
    paths: Mapping[str, tuple[str, ...]]
    policy: Policy = Policy()
    """Where inference may run (controller.policy; the file's ``[policy]``)."""
    security: Security = Security()
    """Trusted manifest keys and tensor keys (the file's ``[security]``)."""

    def capability(self, name: str) -> Capability:
        node = self.hosts.get(name) or self.switches.get(name)
        if node is None:
            raise TopologyError(
                f"topology {self.name} has no node {name} (nodes: {', '.join(self.node_names)})"
            )
        return node.capability

    @property
    def node_names(self) -> list[str]:
        return [*self.hosts, *self.switches]

    def link(self, u: str, v: str) -> Link:
        for link in self.links:
            if link.joins(u, v):
                return link
        raise TopologyError(f"topology {self.name} has no link between {u} and {v}")

    def route(self, name: str | None = None) -> Route:
        """The named path (default: the first one) with its nodes' capabilities and links."""
        if name is None:
            name = next(iter(self.paths))
        if name not in self.paths:
            raise TopologyError(
                f"topology {self.name} has no path {name!r} (paths: {', '.join(self.paths)})"
            )
        hops = self.paths[name]
        return Route(
            name,
            tuple(self.capability(n) for n in hops),
            tuple(self.link(u, v) for u, v in zip(hops, hops[1:])),
        )

    def with_capability(self, capability: Capability) -> Topology:
        """A copy in which the node of that name advertises ``capability`` (a metrics update)."""
        old = self.capability(capability.name)
        if capability.kind is not old.kind:
            raise TopologyError(f"{old.label} cannot become a {capability.kind}")
        if capability.name in self.hosts:
            hosts = {**self.hosts, capability.name: replace(self.hosts[capability.name], capability=capability)}
            return replace(self, hosts=hosts)
        switches = {**self.switches, capability.name: replace(self.switches[capability.name], capability=capability)}
        return replace(self, switches=switches)

    def neighbours(self, node: str) -> list[tuple[int, str, int]]:
        """(local port, neighbour, neighbour's port) for every link of ``node``, by port.

        A host's port is its interface index.

        >>> load_topology("topologies/linear.toml").neighbours("s2")
        [(1, 's1', 2), (2, 's3', 1)]
        """
        out = []
        for link in self.links:
            for here, there in ((link.a, link.b), (link.b, link.a)):
                if here.node == node:
                    out.append((here.port, there.node, there.port))
        return sorted(out)

    def ports(self, switch: str) -> dict[int, str]:
        """Port number -> neighbour name, for one switch."""
        return {port: neighbour for port, neighbour, _ in self.neighbours(switch)}

    def port(self, node: str, neighbour: str) -> int:
        """The port of ``node`` on its link to ``neighbour`` (a host's: its interface index).

        >>> load_topology("topologies/linear.toml").port("s2", "s3")
        2
        """
        link = self.link(node, neighbour)
        return link.a.port if link.a.node == node else link.b.port

    def host_interface(self, host: str, path: str | None = None) -> Interface:
        """``host``'s interface on ``path`` (default: the first path).

        >>> load_topology("topologies/redundant.toml").host_interface("h1", "backup").mac
        '08:00:00:00:03:11'
        """
        hops = self.paths[path or next(iter(self.paths))]
        if host not in (hops[0], hops[-1]):
            raise TopologyError(f"{host} is not an end of path {path} ({' → '.join(hops)})")
        neighbour = hops[1] if host == hops[0] else hops[-2]
        return self.hosts[host].interfaces[self.port(host, neighbour)]

    def host_address(self, host: str, path: str | None = None) -> str:
        """The address of ``host``'s interface on ``path`` (default: the first path), without
        the prefix length: the address the other end of the path must use.

        >>> load_topology("topologies/redundant.toml").host_address("h1", "backup")
        '10.0.3.1'
        """
        return self.host_interface(host, path).ip.split("/")[0]


def load_topology(path: str | Path) -> Topology:
    """Read and check a topology TOML file."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TopologyError(f"topology file {path} not found") from None
    except OSError as e:
        raise TopologyError(f"cannot read topology file {path}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise TopologyError(
            f"{path.name}: not a UTF-8 text file (byte {e.object[e.start]:#04x} at offset {e.start}); "
            "a topology is a TOML file"
        ) from None
    except tomllib.TOMLDecodeError as e:
        raise TopologyError(f"{path.name}: not valid TOML: {e}") from None
    except RecursionError:
        raise TopologyError(f"{path.name}: not valid TOML: arrays or tables nested too deeply") from None
    return parse_topology(data, source=path.name, base=path.parent)


def parse_topology(data: Mapping[str, Any], source: str = "topology", base: Path = Path(".")) -> Topology:
    """Check a parsed topology document; errors name ``source`` and the offending item."""
    try:
        return _Parser(base).topology(data, default_name=Path(source).stem)
    except (TopologyError, CapabilityError) as e:
        raise TopologyError(f"{source}: {e}") from None


class _Parser:
    def __init__(self, base: Path) -> None:
        self.base = base

    def topology(self, data: Mapping[str, Any], default_name: str) -> Topology:
        _check_keys("the top level", data, _TOP_KEYS)
        hosts = {n: self.host(n, t) for n, t in _tables(data, "hosts").items()}
        switches = {n: self.switch(n, t) for n, t in _tables(data, "switches").items()}
        both = hosts.keys() & switches.keys()
        if both:
            raise TopologyError(f"{', '.join(sorted(both))} named both as host and as switch")
        for key, what in ((lambda s: s.device_id, "device id"), (_grpc_key, "P4Runtime address")):
            seen: dict[Any, Switch] = {}
            for s in switches.values():
                value = key(s)
                if value in seen:
                    other = seen[value]
                    shown = s.grpc if what != "device id" else s.device_id
                    same = f" ({other.grpc} and {s.grpc} are the same)" if (
                        what != "device id" and other.grpc != s.grpc) else ""
                    raise TopologyError(f"switches {other.name} and {s.name} share {what} {shown}{same}")
                seen[value] = s
        links = self.links(data.get("links", []), hosts, switches)
        paths = self.paths(data.get("paths", {}), hosts, switches, links)
        nodes = {n: x.capability for n, x in (*hosts.items(), *switches.items())}
        policy = parse_policy(data["policy"], nodes) if "policy" in data else Policy()
        security = self.security(data.get("security", {}))
        if policy.sealed_models and security.tensor_keys is None:
            raise TopologyError(f"[policy] sealed_models = {sorted(policy.sealed_models)} needs "
                                "[security] tensor_keys = \"<secrets file>\": the edge–cloud keys "
                                "that seal them (make it with dcia keygen --tensor-keys FILE)")
        return Topology(
            name=str(data.get("name", default_name)),
            description=str(data.get("description", "")),
            hosts=hosts,
            switches=switches,
            links=links,
            paths=paths,
            policy=policy,
            security=security,
        )

    def host(self, name: str, table: Mapping[str, Any]) -> Host:
        _check_keys(f"host {name}", table, _HOST_KEYS | _CAPABILITY_FIELDS)
        kind = table.get("kind")
        if kind not in (NodeKind.EDGE, NodeKind.CLOUD):
            raise TopologyError(f"host {name}: kind must be \"edge\" or \"cloud\", not {kind!r}")
        shorthand = {k: table[k] for k in _INTERFACE_KEYS if k in table}
        if "interfaces" in table:
            if shorthand:
                raise TopologyError(
                    f"host {name}: give either {', '.join(sorted(shorthand))} or interfaces, not both"
                )
            raw = table["interfaces"]
        else:
            raw = [shorthand]
        if not isinstance(raw, list) or not raw:
            raise TopologyError(f"host {name}: interfaces must be a list of {{ ip, mac }} tables")
        interfaces = tuple(_interface(f"host {name} interface {i}", t) for i, t in enumerate(raw))
        metrics = table.get("metrics")
        if metrics is not None and _grpc_address(metrics) is None:
            raise TopologyError(f"host {name}: metrics must be the address of its metric agent "
                                f"\"host:port\", like \"127.0.0.1:9101\", not {metrics!r}")
        return Host(_capability(name, table, _HOST_KEYS), interfaces, metrics)

    def switch(self, name: str, table: Mapping[str, Any]) -> Switch:
        _check_keys(f"switch {name}", table, _SWITCH_KEYS | _CAPABILITY_FIELDS)
        if table.get("kind", NodeKind.SWITCH) != NodeKind.SWITCH:
            raise TopologyError(f"switch {name}: kind is {table['kind']!r}; hosts go under [hosts]")
        grpc = table.get("grpc")
        if _grpc_address(grpc) is None:
            raise TopologyError(
                f"switch {name}: grpc must be a P4Runtime address \"host:port\", like \"127.0.0.1:50001\" "
                f"or \"[::1]:50001\", with a port 1..65535, not {grpc!r}"
            )
        if _grpc_address(grpc)[0] in ("0.0.0.0", "::"):
            raise TopologyError(
                f"switch {name}: grpc {grpc} would make the P4Runtime server listen on every "
                "interface, the data network's included; give the loopback (127.0.0.1:PORT) or "
                "a management address")
        device_id = table.get("device_id")
        if not isinstance(device_id, int) or isinstance(device_id, bool) or device_id < 0:
            raise TopologyError(f"switch {name}: device_id must be an integer >= 0, not {device_id!r}")
        capability = _capability(name, {**table, "kind": NodeKind.SWITCH}, _SWITCH_KEYS)
        beyond = capability.claims_beyond(DCIA_PROGRAM)
        if beyond:
            raise TopologyError(f"switch {name}: {beyond}; lower it in the topology file")
        return Switch(
            capability,
            grpc,
            device_id,
            self.tls(name, table.get("tls")),
        )

    def security(self, table: Any) -> Security:
        if not isinstance(table, Mapping):
            raise TopologyError("[security] must be a table")
        _check_keys("[security]", table, frozenset({"trusted_keys", "require_signed", "tensor_keys"}))
        keys = table.get("trusted_keys", {})
        if not isinstance(keys, Mapping) or not all(isinstance(v, str) and v for v in keys.values()):
            raise TopologyError("[security] trusted_keys must be a table of name = \"path of a "
                                "PEM public key\"")
        required = table.get("require_signed", False)
        if not isinstance(required, bool):
            raise TopologyError(f"[security] require_signed must be true or false, not {required!r}")
        if required and not keys:
            raise TopologyError("[security] require_signed = true needs trusted_keys: no manifest "
                                "could be accepted")
        secrets = table.get("tensor_keys")
        if secrets is not None and (not isinstance(secrets, str) or not secrets):
            raise TopologyError(f"[security] tensor_keys must be the path of a secrets file, not {secrets!r}")
        return Security({k: self.base / v for k, v in keys.items()}, required,
                        self.base / secrets if secrets else None)

    def tls(self, switch: str, table: Any) -> Tls | None:
        if table is None:
            return None
        if not isinstance(table, Mapping):
            raise TopologyError(f"switch {switch}: tls must be a table {{ ca, cert, key }}")
        _check_keys(f"switch {switch} tls", table, frozenset({"ca", "cert", "key"}))
        if "ca" not in table:
            raise TopologyError(f"switch {switch}: tls needs ca, the certificate of the switch's CA")
        if ("cert" in table) != ("key" in table):
            raise TopologyError(f"switch {switch}: tls needs both cert and key, or neither")
        for k, v in table.items():
            if not isinstance(v, str) or not v:
                raise TopologyError(f"switch {switch}: tls {k} must be the path of a file, not {v!r}")
        return Tls(**{k: self.base / v for k, v in table.items()})

    def links(
        self, raw: Any, hosts: Mapping[str, Host], switches: Mapping[str, Switch]
    ) -> tuple[Link, ...]:
        if not isinstance(raw, list):
            raise TopologyError("links must be an array of tables: [[links]]")
        links: list[Link] = []
        used: dict[tuple[str, int], str] = {}
        for i, table in enumerate(raw):
            ends = table.get("endpoints") if isinstance(table, Mapping) else None
            if not isinstance(ends, list) or len(ends) != 2 or not all(isinstance(e, str) for e in ends):
                raise TopologyError(
                    f"link {i + 1}: endpoints must be two strings like [\"h1\", \"s1:1\"]"
                )
            label = "-".join(e.split(":")[0] for e in ends)
            _check_keys(f"link {label}", table, _LINK_KEYS)
            a, b = (_endpoint(f"link {label}", e, hosts, switches) for e in ends)
            if a.node == b.node:
                raise TopologyError(f"link {label}: both ends are on {a.node}")
            link = Link(
                a, b,
                bandwidth_mbps=_number(f"link {label}", table, "bandwidth_mbps", DEFAULT_BANDWIDTH_MBPS, low=0, open_low=True),
                delay_ms=_number(f"link {label}", table, "delay_ms", 0.0, low=0),
                loss_pct=_number(f"link {label}", table, "loss_pct", 0.0, low=0, high=100),
            )
            for other in links:
                if other.joins(a.node, b.node):
                    raise TopologyError(f"link {label}: {a.node} and {b.node} are already linked")
            for end in (a, b):
                if (end.node, end.port) in used:
                    raise TopologyError(
                        f"link {label}: port {end.port} of {end.node} is already used by link {used[end.node, end.port]}"
                    )
                used[end.node, end.port] = label
            links.append(link)
        return tuple(links)

    def paths(
        self, raw: Any, hosts: Mapping[str, Host], switches: Mapping[str, Switch], links: tuple[Link, ...]
    ) -> dict[str, tuple[str, ...]]:
        if not isinstance(raw, Mapping) or not raw:
            raise TopologyError(
                'no paths: add [paths] with a list of node names per path, like main = ["h1", "s1", "h2"]'
            )
        out = {}
        for name, hops in raw.items():
            where = f"path {name}"
            if not isinstance(hops, list) or len(hops) < 2 or not all(isinstance(h, str) for h in hops):
                raise TopologyError(f"{where}: must list at least two node names, edge first and cloud last")
            for hop in hops:
                if hop not in hosts and hop not in switches:
                    raise TopologyError(f"{where}: unknown node {hop}")
            if len(set(hops)) != len(hops):
                raise TopologyError(f"{where}: visits a node twice")
            first, last, middle = hops[0], hops[-1], hops[1:-1]
            if first not in hosts or hosts[first].capability.kind is not NodeKind.EDGE:
                raise TopologyError(f"{where}: starts at {first}, which is not an edge host")
            if last not in hosts or hosts[last].capability.kind is not NodeKind.CLOUD:
                raise TopologyError(f"{where}: ends at {last}, which is not a cloud host")
            for hop in middle:
                if hop not in switches:
                    raise TopologyError(f"{where}: {hop} is a host; only switches lie between edge and cloud")
            for u, v in zip(hops, hops[1:]):
                if not any(link.joins(u, v) for link in links):
                    raise TopologyError(f"{where}: no link between {u} and {v}; add a [[links]] entry")
            out[name] = tuple(hops)
        return out


def _tables(data: Mapping[str, Any], key: str) -> Mapping[str, Mapping[str, Any]]:
    tables = data.get(key, {})
    if not isinstance(tables, Mapping) or not all(isinstance(t, Mapping) for t in tables.values()):
        raise TopologyError(f"{key} must be tables named by node: [{key}.NAME]")
    return tables


def _check_keys(where: str, table: Mapping[str, Any], known: frozenset[str]) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise TopologyError(
            f"{where}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
            f"(known: {', '.join(sorted(known))})"
        )


def _capability(name: str, table: Mapping[str, Any], topology_keys: frozenset[str]) -> Capability:
    fields_ = {k: v for k, v in table.items() if k not in topology_keys}
    return Capability.from_dict({"name": name, "kind": table["kind"], **fields_})


def _interface(where: str, table: Any) -> Interface:
    if not isinstance(table, Mapping) or not {"ip", "mac"} <= set(table):
        raise TopologyError(f"{where}: needs ip (like \"10.0.1.1/24\") and mac (like \"08:00:00:00:01:11\")")
    _check_keys(where, table, _INTERFACE_KEYS)
    try:
        if not isinstance(table["ip"], str):
            raise ValueError
        ipaddress.ip_interface(table["ip"])
    except ValueError:
        raise TopologyError(f"{where}: ip {table['ip']!r} is not an address like \"10.0.1.1/24\"") from None
    gateway, gateway_mac = table.get("gateway"), table.get("gateway_mac")
    return Interface(
        str(table["ip"]),
        _mac(where, table["mac"]),
        None if gateway is None else _ip_address(f"{where} gateway", gateway),
        None if gateway_mac is None else _mac(f"{where} gateway_mac", gateway_mac),
    )


def _ip_address(where: str, value: Any) -> str:
    try:
        if not isinstance(value, str):
            raise ValueError
        ipaddress.ip_address(value)
    except ValueError:
        raise TopologyError(f"{where}: {value!r} is not an IP address") from None
    return str(value)


def _mac(where: str, value: Any) -> str:
    if not isinstance(value, str) or not _MAC.match(value):
        raise TopologyError(f"{where}: {value!r} is not a MAC address like \"08:00:00:00:01:11\"")
    return value.lower()


def _endpoint(where: str, text: str, hosts: Mapping[str, Host], switches: Mapping[str, Switch]) -> Endpoint:
    node, sep, port = text.partition(":")
    if node not in hosts and node not in switches:
        raise TopologyError(f"{where}: unknown node {node}")
    if sep and not _DIGITS.fullmatch(port):
        raise TopologyError(f"{where}: port {port!r} of {node} is not a number")
    if node in switches:
        if not sep:
            raise TopologyError(f"{where}: say which port of switch {node}, like \"{node}:1\"")
        number = int(port)
        if number == 0:
            raise TopologyError(f"{where}: switch ports count from 1 ({node}:0)")
        if number >= DROP_PORT:
            raise TopologyError(
                f"{where}: port {number} of {node} does not fit the P4 program's {PORT_BITS}-bit ports; "
                f"use 1..{DROP_PORT - 1} ({DROP_PORT} is BMv2's drop port)"
            )
        if number == CPU_PORT:
            raise TopologyError(
                f"{where}: port {CPU_PORT} of {node} is the switches' CPU port (packet-in/out to the "
                "controller); use another port"
            )
        return Endpoint(node, number)
    index = int(port) if sep else 0
    if index >= len(hosts[node].interfaces):
        raise TopologyError(
            f"{where}: host {node} has {len(hosts[node].interfaces)} interface(s), no interface {index}"
        )
    return Endpoint(node, index)


def _number(where: str, table: Mapping[str, Any], key: str, default: float, *, low: float,
            high: float | None = None, open_low: bool = False) -> float:
    value = table.get(key, default)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise TopologyError(f"{where}: {key} must be a number, not {value!r}")
    if not math.isfinite(value):
        raise TopologyError(f"{where}: {key} = {value} must be a finite number")
    if value < low or (open_low and value == low) or (high is not None and value > high):
        bound = f"greater than {low}" if open_low else f"between {low} and {high}" if high is not None else f"at least {low}"
        raise TopologyError(f"{where}: {key} = {value} must be {bound}")
    return float(value)


def check_tls_files(topology: Topology) -> None:
    """Raise TopologyError unless every TLS file the switches name is a readable file.

    ``load_topology`` does not touch them (``dcia plan`` needs no certificates); a command
    that connects to the switches calls this first.
    """
    for switch in topology.switches.values():
        if switch.tls is None:
            continue
        for key in ("ca", "cert", "key"):
            path = getattr(switch.tls, key)
            if path is None:
                continue
            where = f"topology {topology.name}: switch {switch.name}: tls {key}"
            if not path.exists():
                raise TopologyError(f"{where} file {path} does not exist")
            if not path.is_file():
                raise TopologyError(f"{where} {path} is not a file")
            try:
                with path.open("rb"):
                    pass
            except OSError as e:
                raise TopologyError(f"{where} file {path} cannot be read: {e.strerror}") from None


def _grpc_address(text: Any) -> tuple[str, int] | None:
    """``host:port`` as (canonical host, port), or None when it is not such an address.

    The host is lower-cased without a trailing dot; every way of writing the loopback
    address (``localhost``, ``127.0.0.1``, ``[::1]``) is ``localhost``; IPv6 addresses are
    in brackets.
    """
    if not isinstance(text, str):
        return None
    host, sep, port = text.rpartition(":")
    if not sep or not _DIGITS.fullmatch(port) or not 0 < int(port) < 65536:
        return None
    if host.startswith("[") and host.endswith("]"):
        try:
            address = ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return None
        mapped = address.ipv4_mapped
        canonical = str(mapped) if mapped is not None else str(address)
    elif _HOSTNAME.fullmatch(host):
        canonical = host.lower().rstrip(".")
        try:
            canonical = str(ipaddress.IPv4Address(canonical))
        except ValueError:
            pass
    else:
        return None
    if canonical in ("localhost", "127.0.0.1", "::1"):
        canonical = _LOOPBACK
    return canonical, int(port)


def _grpc_key(switch: Switch) -> tuple[str, int]:
    address = _grpc_address(switch.grpc)
    assert address is not None  # checked when the switch was read
    return address
