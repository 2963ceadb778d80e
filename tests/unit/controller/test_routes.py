"""IPv4 routes of switches and hosts, derived from the topology files."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.routes import HostRoute, host_routes, port_mac, switch_routes
from controller.topology import load_topology, parse_topology
from dcia.errors import TopologyError

TOPOLOGIES = Path(__file__).resolve().parents[3] / "topologies"


@pytest.fixture
def linear():
    return load_topology(TOPOLOGIES / "linear.toml")


@pytest.fixture
def redundant():
    return load_topology(TOPOLOGIES / "redundant.toml")


def table(routes):
    return {s: [(r.prefix, r.port, r.next_hop) for r in rs] for s, rs in routes.items()}


def test_every_switch_of_the_line_reaches_both_hosts(linear):
    assert table(switch_routes(linear)) == {
        "s1": [("10.0.1.0/24", 1, "h1"), ("10.0.2.0/24", 2, "s2")],
        "s2": [("10.0.1.0/24", 1, "s1"), ("10.0.2.0/24", 2, "s3")],
        "s3": [("10.0.1.0/24", 1, "s2"), ("10.0.2.0/24", 2, "h2")],
    }


def test_the_last_hop_goes_to_the_host_mac_and_other_hops_to_the_next_switch_port(linear):
    routes = {(r.switch, r.prefix): r for rs in switch_routes(linear).values() for r in rs}
    assert routes["s3", "10.0.2.0/24"].dst_mac == linear.hosts["h2"].mac
    assert routes["s1", "10.0.2.0/24"].dst_mac == port_mac(linear, "s2", 1)
    assert port_mac(linear, "s1", 1) == "08:00:00:00:01:00", "the port facing h1 is h1's gateway"
    assert port_mac(linear, "s2", 1) == "02:dc:00:02:00:01"


def test_hosts_do_not_forward_so_disjoint_paths_stay_disjoint(redundant):
    assert table(switch_routes(redundant)) == {
        "s1": [("10.0.1.0/24", 1, "h1"), ("10.0.2.0/24", 2, "s2")],
        "s2": [("10.0.1.0/24", 1, "s1"), ("10.0.2.0/24", 2, "h2")],
        "s3": [("10.0.3.0/24", 1, "h1"), ("10.0.4.0/24", 2, "s4")],
        "s4": [("10.0.3.0/24", 1, "s3"), ("10.0.4.0/24", 2, "h3")],
    }


def test_a_second_interface_routes_the_subnets_of_its_paths(redundant):
    assert host_routes(redundant) == {
        "h1": [HostRoute("default", "10.0.1.10", 0), HostRoute("10.0.4.0/24", "10.0.3.30", 1)],
        "h2": [HostRoute("default", "10.0.2.20", 0)],
        "h3": [HostRoute("default", "10.0.4.40", 0)],
    }


def test_the_shortest_of_two_switch_paths_wins():
    ring = parse_topology({
        "hosts": {"h1": {"kind": "edge", "ip": "10.0.1.1/24", "mac": "08:00:00:00:01:11"},
                  "h2": {"kind": "cloud", "ip": "10.0.2.2/24", "mac": "08:00:00:00:02:22"}},
        "switches": {f"s{i}": {"grpc": f"127.0.0.1:5000{i}", "device_id": i} for i in (1, 2, 3)},
        "links": [{"endpoints": ["h1", "s1:1"]}, {"endpoints": ["s1:2", "s2:1"]},
                  {"endpoints": ["s2:2", "s3:1"]}, {"endpoints": ["s1:3", "s3:3"]},
                  {"endpoints": ["s3:2", "h2"]}],
        "paths": {"main": ["h1", "s1", "s3", "h2"]},
    })
    assert table(switch_routes(ring))["s1"] == [("10.0.1.0/24", 1, "h1"), ("10.0.2.0/24", 3, "s3")]


def test_the_address_of_a_host_on_a_path_is_that_of_its_interface_on_it(redundant):
    assert [redundant.host_address("h1", p) for p in ("primary", "backup")] == ["10.0.1.1", "10.0.3.1"]
    assert redundant.host_address("h3", "backup") == "10.0.4.3"
    with pytest.raises(TopologyError, match="not an end of path"):
        redundant.host_address("h2", "backup")
