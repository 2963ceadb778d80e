"""The topology description: example files parse, and every mistake is named in one line."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from controller.topology import Endpoint, Tls, load_topology, parse_topology
from dcia.capability import Capability, NodeKind
from dcia.errors import TopologyError

TOPOLOGIES = Path(__file__).resolve().parents[3] / "topologies"


def test_linear_example() -> None:
    topo = load_topology(TOPOLOGIES / "linear.toml")
    assert topo.name == "linear"
    assert list(topo.hosts) == ["h1", "h2"] and list(topo.switches) == ["s1", "s2", "s3"]
    h1, h2 = topo.hosts["h1"], topo.hosts["h2"]
    assert (h1.capability.kind, h1.ip, h1.mac) == (NodeKind.EDGE, "10.0.1.1", "08:00:00:00:01:11")
    assert (h1.interfaces[0].gateway, h1.interfaces[0].gateway_mac) == ("10.0.1.10", "08:00:00:00:01:00")
    assert (h2.capability.kind, h2.ip) == (NodeKind.CLOUD, "10.0.2.2")
    s1 = topo.switches["s1"]
    assert (s1.grpc, s1.device_id, s1.tls) == ("127.0.0.1:50001", 1, None)
    assert s1.capability.max_elems == 16 and s1.capability.layer_time_s == 3e-4
    assert topo.ports("s1") == {1: "h1", 2: "s2"}
    route = topo.route()
    assert route.name == "main" and str(route) == "h1 → s1 → s2 → s3 → h2"
    assert [link.name for link in route.links] == ["h1-s1", "s1-s2", "s2-s3", "s3-h2"]
    wan = topo.link("h2", "s3")
    assert (wan.a, wan.b) == (Endpoint("s3", 2), Endpoint("h2", 0))
    assert (wan.bandwidth_mbps, wan.delay_ms, wan.loss_pct) == (100.0, 10.0, 0.0)


def test_redundant_example_has_two_disjoint_paths() -> None:
    topo = load_topology(TOPOLOGIES / "redundant.toml")
    primary, backup = topo.route("primary"), topo.route("backup")
    assert str(primary) == "h1 → s1 → s2 → h2" and str(backup) == "h1 → s3 → s4 → h3"
    assert {n.name for n in primary.nodes[1:]}.isdisjoint(n.name for n in backup.nodes[1:])
    assert {link.name for link in primary.links}.isdisjoint(link.name for link in backup.links)
    h1 = topo.hosts["h1"]
    assert [i.ip for i in h1.interfaces] == ["10.0.1.1/24", "10.0.3.1/24"]
    assert [link.a for link in (primary.links[0], backup.links[0])] == [Endpoint("h1", 0), Endpoint("h1", 1)]
    assert [topo.hosts[h].capability.kind for h in ("h2", "h3")] == [NodeKind.CLOUD] * 2


def test_tls_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    text = (TOPOLOGIES / "linear.toml").read_text().replace(
        'device_id = 2\n', 'device_id = 2\ntls = { ca = "certs/ca.pem", cert = "certs/s2.pem", key = "certs/s2.key" }\n'
    )
    path = tmp_path / "tls.toml"
    path.write_text(text)
    topo = load_topology(path)
    assert topo.switches["s2"].tls == Tls(tmp_path / "certs/ca.pem", tmp_path / "certs/s2.pem", tmp_path / "certs/s2.key")
    assert topo.switches["s1"].tls is None


def linear_with(edit: str, replacement: str) -> dict:
    text = (TOPOLOGIES / "linear.toml").read_text()
    assert edit in text, edit
    return tomllib.loads(text.replace(edit, replacement, 1))


@pytest.mark.parametrize(
    ("edit", "replacement", "error"),
    [
        ('endpoints = ["s2:2", "s3:1"]', 'endpoints = ["s2:2", "s9:1"]', "link s2-s9: unknown node s9"),
        ('endpoints = ["s2:2", "s3:1"]', 'endpoints = ["s2:1", "s3:1"]',
         "link s2-s3: port 1 of s2 is already used by link s1-s2"),
        ('endpoints = ["s2:2", "s3:1"]', 'endpoints = ["s2", "s3:1"]', 'say which port of switch s2, like "s2:1"'),
        ('endpoints = ["s2:2", "s3:1"]', 'endpoints = ["s2:2", "s2:3"]', "link s2-s2: both ends are on s2"),
        ('endpoints = ["s2:2", "s3:1"]', 'endpoints = ["s2:2", "s1:3"]', "link s2-s1: s2 and s1 are already linked"),
        ('endpoints = ["h1", "s1:1"]', 'endpoints = ["h1:1", "s1:1"]', "host h1 has 1 interface(s), no interface 1"),
        ('endpoints = ["h1", "s1:1"]', 'endpoints = ["h1", "s1:x"]', "port 'x' of s1 is not a number"),
        ("delay_ms = 10", "delay_ms = -1", "link s3-h2: delay_ms = -1 must be at least 0"),
        ("bandwidth_mbps = 100\ndelay_ms = 10", "bandwidth_mbps = 0\ndelay_ms = 10",
         "link s3-h2: bandwidth_mbps = 0 must be greater than 0"),
        ("delay_ms = 10", "delay_ms = 10\nloss_pct = 101", "loss_pct = 101 must be between 0 and 100"),
        ("delay_ms = 10", "delay = 10", "link s3-h2: unknown key delay (known: "),
        ('mac = "08:00:00:00:01:11"', 'mac = "08:00:00:01:11"', "host h1 interface 0: '08:00:00:01:11' is not a MAC"),
        ('ip = "10.0.1.1/24"', 'ip = "10.0.1.300/24"', "ip '10.0.1.300/24' is not an address"),
        ('gateway = "10.0.1.10"', 'gateway = "ten"', "gateway: 'ten' is not an IP address"),
        ('kind = "edge"', 'kind = "camera"', 'host h1: kind must be "edge" or "cloud"'),
        ('grpc = "127.0.0.1:50002"', 'grpc = "127.0.0.1"', 'switch s2: grpc must be a P4Runtime address "host:port"'),
        ('grpc = "127.0.0.1:50002"', 'grpc = "127.0.0.1:50001"', "switches s1 and s2 share P4Runtime address"),
        ('grpc = "127.0.0.1:50002"', 'grpc = "0.0.0.0:50002"',
         "switch s2: grpc 0.0.0.0:50002 would make the P4Runtime server listen on every interface"),
        ('grpc = "127.0.0.1:50002"', 'grpc = "[::]:50002"', "listen on every interface, the data network's"),
        ("device_id = 3", "device_id = 1", "switches s1 and s3 share device id 1"),
        ("device_id = 3", 'device_id = "3"', "switch s3: device_id must be an integer"),
        ("device_id = 2\n", 'device_id = 2\ntls = { cert = "a.pem" }\n', "switch s2: tls needs ca"),
        ("device_id = 2\n", 'device_id = 2\ntls = { ca = "ca.pem", cert = "a.pem" }\n', "tls needs both cert and key"),
        ("device_id = 2\n", "device_id = 2\nload = 2\n", "node s2: load 2 is outside 0..1"),
        ("device_id = 2\n", "device_id = 2\nspeed = 2\n", "switch s2: unknown key speed"),
        ("device_id = 2\n", "device_id = 2\nmax_elems = 32\n",
         "switch s2: max_elems = 32, but its P4 program computes layers of at most 16 elements"),
        ("device_id = 2\n", "device_id = 2\nlayers_per_pass = 9\n",
         "switch s2: layers_per_pass = 9, but its P4 program computes at most 8 layers per pass"),
        ('main = ["h1", "s1", "s2", "s3", "h2"]', 'main = ["h1", "s1", "s3", "h2"]',
         "path main: no link between s1 and s3; add a [[links]] entry"),
        ('main = ["h1", "s1", "s2", "s3", "h2"]', 'main = ["s1", "s2", "s3", "h2"]',
         "path main: starts at s1, which is not an edge host"),
        ('main = ["h1", "s1", "s2", "s3", "h2"]', 'main = ["h1", "s1", "s2", "s3"]',
         "path main: ends at s3, which is not a cloud host"),
        ('main = ["h1", "s1", "s2", "s3", "h2"]', 'main = ["h1", "s1", "s2", "s1", "h2"]', "path main: visits a node twice"),
        ('main = ["h1", "s1", "s2", "s3", "h2"]', 'main = ["h1", "s1", "s7", "h2"]', "path main: unknown node s7"),
        ('[paths]\nmain = ["h1", "s1", "s2", "s3", "h2"]', "", "no paths: add [paths]"),
        ('name = "linear"', 'name = "linear"\n[switch.s9]\ngrpc = "x"', "the top level: unknown key switch"),
    ],
)
def test_mistakes_are_named_in_one_line(edit: str, replacement: str, error: str) -> None:
    with pytest.raises(TopologyError) as e:
        parse_topology(linear_with(edit, replacement), source="linear.toml")
    message = str(e.value)
    assert message.startswith("linear.toml: ")
    assert error in message
    assert "\n" not in message


def test_a_name_used_for_a_host_and_a_switch() -> None:
    data = linear_with("[switches.s3]", "[switches.h2]")
    with pytest.raises(TopologyError, match="h2 named both as host and as switch"):
        parse_topology(data)


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(TopologyError, match="topology file .*nope.toml not found"):
        load_topology(tmp_path / "nope.toml")
    with pytest.raises(TopologyError, match="cannot read topology file .*: Is a directory"):
        load_topology(tmp_path)
    bad = tmp_path / "bad.toml"
    bad.write_text("name = ")
    with pytest.raises(TopologyError, match="bad.toml: not valid TOML"):
        load_topology(bad)


def test_unknown_path_and_node() -> None:
    topo = load_topology(TOPOLOGIES / "linear.toml")
    with pytest.raises(TopologyError, match=r"topology linear has no path 'backup' \(paths: main\)"):
        topo.route("backup")
    with pytest.raises(TopologyError, match="has no node s9"):
        topo.capability("s9")


def test_a_metrics_update_replaces_one_capability() -> None:
    topo = load_topology(TOPOLOGIES / "linear.toml")
    busy = Capability.from_dict({**topo.capability("s2").to_dict(), "load": 0.75})
    updated = topo.with_capability(busy)
    assert updated.route().nodes[2] == busy and updated.switches["s2"].grpc == "127.0.0.1:50002"
    assert topo.capability("s2").load == 0.0
    edge = Capability.from_dict({**topo.capability("h1").to_dict(), "load": 0.5})
    assert topo.with_capability(edge).hosts["h1"].capability.load == 0.5
    with pytest.raises(TopologyError, match="switch s2 cannot become a cloud"):
        topo.with_capability(Capability.nominal("s2", "cloud"))
