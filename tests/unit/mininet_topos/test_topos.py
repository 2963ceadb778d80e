"""Mininet topologies are the topology files, node for node and port for port."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("mininet.topo", reason="Mininet is not importable (scripts/bootstrap.sh links it)")

from mininet.link import TCLink  # noqa: E402

from controller.topology import load_topology  # noqa: E402
from mininet_topos.host import DciaHost, LimitedDciaHost  # noqa: E402
from mininet_topos.p4switch import P4Switch  # noqa: E402
from mininet_topos import topos as topos_module  # noqa: E402
from mininet_topos.topos import DciaTopo, topos  # noqa: E402

TOPOLOGIES = Path(__file__).resolve().parents[3] / "topologies"


def test_every_topology_file_is_a_mininet_topology():
    assert {"linear", "redundant"} <= set(topos)
    for name, build in topos.items():
        spec = load_topology(TOPOLOGIES / f"{name}.toml")
        topo = build()
        assert set(topo.hosts()) == set(spec.hosts)
        assert set(topo.switches()) == set(spec.switches)
        assert len(topo.links()) == len(spec.links)


@pytest.fixture
def netem(monkeypatch):
    """Pretend the kernel has netem (it is only probed when a network starts)."""
    monkeypatch.setattr(topos_module, "netem_available", lambda: True)


def test_nodes_carry_addresses_ports_and_p4runtime_settings(netem):
    topo = DciaTopo(TOPOLOGIES / "redundant.toml", target="embedded")
    h1 = topo.nodeInfo("h1")
    assert h1["cls"] is DciaHost and h1["ip"] == "10.0.1.1/24" and h1["mac"] == "08:00:00:00:01:11"
    assert [i.ip for i in h1["interfaces"]] == ["10.0.1.1/24", "10.0.3.1/24"]
    s3 = topo.nodeInfo("s3")
    assert s3["grpc"] == "127.0.0.1:50003" and s3["device_id"] == 3
    assert s3["cls"].func is P4Switch and s3["cls"].keywords["target"] == "embedded"
    link = topo.linkInfo("h1", "s3")
    assert {link["node1"]: link["port1"], link["node2"]: link["port2"]} == {"h1": 1, "s3": 1}
    assert link["cls"] is TCLink and link["bw"] == 100 and link["delay"] == "0.2ms"


def test_experiment_options_override_links_and_limit_the_edge_cpu(netem):
    topo = DciaTopo(TOPOLOGIES / "linear.toml", delay_ms=5, loss_pct=1, edge_cpu=0.25)
    assert all(topo.linkInfo(*l)["delay"] == "5ms" and topo.linkInfo(*l)["loss"] == 1
               for l in topo.links())
    assert topo.linkInfo("s3", "h2")["bw"] == 100, "bandwidth stays the topology's"
    assert topo.nodeInfo("h1")["cls"] is LimitedDciaHost and topo.nodeInfo("h1")["cpu"] == 0.25
    assert topo.nodeInfo("h2")["cls"] is DciaHost


def test_without_netem_links_keep_only_their_rate(monkeypatch):
    monkeypatch.setattr(topos_module, "netem_available", lambda: False)
    topo = DciaTopo(TOPOLOGIES / "linear.toml", loss_pct=1)
    info = topo.linkInfo("s3", "h2")
    assert info["bw"] == 100 and "delay" not in info and "loss" not in info


def test_mininets_command_line_can_name_a_topology_and_its_options():
    """What `mn --custom mininet_topos/topos.py --topo linear,target=embedded` does with them."""
    from mininet.util import customClass

    source = Path(topos_module.__file__).read_text()
    customs: dict = {}
    exec(compile(source, "topos.py", "exec"), customs, customs)  # as mn does: no __file__
    topo = customClass(customs["topos"], "linear,target=embedded,edge_cpu=0.5")()
    assert topo.switches() == ["s1", "s2", "s3"]
    assert topo.nodeInfo("s1")["cls"].keywords["target"] == "embedded"
    assert topo.nodeInfo("h1")["cpu"] == 0.5
