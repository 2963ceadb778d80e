"""Mininet topologies are the topology files, node for node and port for port."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("mininet.topo", reason="Mininet is not importable (scripts/bootstrap.sh links it)")

from mininet.link import TCLink  # noqa: E402

from controller.topology import load_topology  # noqa: E402
from dcia.errors import TopologyError  # noqa: E402
from mininet_topos.delay_line import DelayLineLink  # noqa: E402
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


def kernel(monkeypatch, netem: bool) -> None:
    """Pretend the kernel has netem or not."""
    monkeypatch.setattr(topos_module, "netem_available", lambda: netem)


def test_without_netem_a_delay_line_gives_links_their_delay_and_loss(monkeypatch, tmp_path):
    kernel(monkeypatch, netem=False)
    topo = DciaTopo(TOPOLOGIES / "linear.toml", loss_pct=1, log_dir=tmp_path)
    info = topo.linkInfo("s3", "h2")
    assert info["cls"] is DelayLineLink
    assert info["bw"] == 100 and info["use_tbf"], "the rate limit stays on the link's ends"
    assert info["delay"] == "10.0ms" and info["loss"] == 1 and info["log_dir"] == tmp_path
    assert topo.link_delays == {"h1-s1": "delay-line", "s1-s2": "delay-line",
                                "s2-s3": "delay-line", "s3-h2": "delay-line"}


def test_with_netem_auto_uses_netem(monkeypatch):
    kernel(monkeypatch, netem=True)
    topo = DciaTopo(TOPOLOGIES / "linear.toml")
    info = topo.linkInfo("s3", "h2")
    assert info["cls"] is TCLink and info["delay"] == "10.0ms"
    assert set(topo.link_delays.values()) == {"netem"}


def test_the_delay_line_can_be_forced_where_netem_exists(monkeypatch):
    kernel(monkeypatch, netem=True)
    topo = DciaTopo(TOPOLOGIES / "linear.toml", link_delay="delay-line")
    assert topo.linkInfo("s3", "h2")["cls"] is DelayLineLink
    assert set(topo.link_delays.values()) == {"delay-line"}


def test_links_without_delay_or_loss_need_neither(monkeypatch):
    kernel(monkeypatch, netem=False)
    topo = DciaTopo(TOPOLOGIES / "linear.toml", delay_ms=0, loss_pct=0, link_delay="delay-line")
    info = topo.linkInfo("s3", "h2")
    assert info["cls"] is TCLink and "delay" not in info and "loss" not in info
    assert set(topo.link_delays.values()) == {"none"}


def test_netem_forced_without_netem_keeps_only_the_rate_and_warns(monkeypatch, caplog):
    kernel(monkeypatch, netem=False)
    topos_module._warn_no_netem.cache_clear()
    with caplog.at_level("WARNING", logger=topos_module.log.name):
        topo = DciaTopo(TOPOLOGIES / "linear.toml", loss_pct=1, link_delay="netem")
    info = topo.linkInfo("s3", "h2")
    assert info["cls"] is TCLink and info["bw"] == 100 and "delay" not in info and "loss" not in info
    assert set(topo.link_delays.values()) == {"dropped"}
    assert "no netem" in caplog.text


def test_an_unknown_link_delay_is_refused():
    with pytest.raises(TopologyError, match="link_delay must be one of auto, netem, delay-line"):
        DciaTopo(TOPOLOGIES / "linear.toml", link_delay="tc")


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
