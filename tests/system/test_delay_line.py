"""Link delay and loss without netem: the delay line (mininet_topos.delay_line) on real links.

Two Mininet hosts joined by a DelayLineLink: the round trip is twice the one-way delay
(within 1 ms at 10 ms), a 0 ms line adds well under a millisecond, a 20 % line loses what
a binomial draw allows, and the relay process is gone once the network stops. On the
testbed, the delay line stands in for netem on every link of the linear topology, a
relay that dies is a lost link, and nothing is left behind.

Select them with ``pytest -m system``; they need root and Mininet.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import signal
import statistics
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(os.geteuid() != 0, reason="the Mininet testbed needs root"),
]

pytest.importorskip("mininet.net", reason="Mininet is not importable (scripts/bootstrap.sh links it)")

from mininet.net import Mininet  # noqa: E402

from dcia.targets import process_start_time  # noqa: E402
from mininet_topos import testbed as tb  # noqa: E402
from mininet_topos.delay_line import DelayLineLink  # noqa: E402

PINGS = 20
LOSS_PINGS = 300


@contextlib.contextmanager
def two_hosts(log_dir: Path, **link) -> Iterator[tuple[Mininet, DelayLineLink]]:
    """Hosts ``dla`` (10.9.0.1) and ``dlb`` (10.9.0.2) joined by a DelayLineLink with
    ``link``'s options; static ARP and no IPv6, so only the test's pings cross the line."""
    net = Mininet(controller=None, build=False, autoSetMacs=True, waitConnected=False)
    a = net.addHost("dla", ip="10.9.0.1/24")
    b = net.addHost("dlb", ip="10.9.0.2/24")
    delay_line = net.addLink(a, b, cls=DelayLineLink, log_dir=log_dir, **link)
    try:
        net.build()
        for host in (a, b):
            host.cmd("sysctl -qw net.ipv6.conf.all.disable_ipv6=1")
        net.staticArp()
        yield net, delay_line
    finally:
        net.stop()


def round_trips(net: Mininet, count: int, interval: float = 0.05) -> list[float]:
    """``count`` ping round trips from dla to dlb, in ms (the lost ones left out)."""
    out = net.get("dla").cmd(f"ping -n -c {count} -i {interval} -W 2 10.9.0.2")
    return [float(t) for t in re.findall(r"time=([0-9.]+) ms", out)]


def relay_gone(pid: int) -> bool:
    return process_start_time(pid) is None


def test_the_round_trip_is_twice_the_one_way_delay(tmp_path):
    with two_hosts(tmp_path, delay="10ms") as (net, line):
        pid, middle = line.relay.pid, line.middle
        rtts = round_trips(net, PINGS)
    assert len(rtts) == PINGS, "a lossless line loses no ping"
    assert abs(statistics.median(rtts) - 20.0) < 1.0, rtts
    assert min(rtts) >= 20.0, f"no frame may cross before its delay: {rtts}"
    assert relay_gone(pid), "the relay stops with the network"
    assert not any(os.path.exists(f"/sys/class/net/{m}") for m in middle), "its interfaces go too"


def test_a_zero_delay_line_adds_under_a_millisecond(tmp_path):
    with two_hosts(tmp_path, delay="0ms") as (net, line):
        rtts = round_trips(net, PINGS)
        assert line.relay is not None and line.lost() is None
    assert len(rtts) == PINGS
    assert statistics.median(rtts) < 1.0, rtts


def test_loss_is_what_a_binomial_draw_allows(tmp_path):
    """Each direction loses 20 %: a ping comes back with probability 0.8² = 0.64."""
    with two_hosts(tmp_path, delay="0ms", loss=20) as (net, _line):
        received = len(round_trips(net, LOSS_PINGS, interval=0.005))
    p = 0.8 ** 2
    tolerance = 4 * math.sqrt(LOSS_PINGS * p * (1 - p))  # 4 sigma: a correct line fails 1 in 16,000
    assert abs(received - LOSS_PINGS * p) < tolerance, (
        f"{received} of {LOSS_PINGS} pings came back, {LOSS_PINGS * p:.0f} ± {tolerance:.0f} expected")


def test_a_relay_that_dies_is_reported(tmp_path):
    with two_hosts(tmp_path, delay="1ms") as (net, line):
        assert len(round_trips(net, 3)) == 3
        os.kill(line.relay.pid, signal.SIGKILL)
        line.relay.wait(5)
        assert "exited with code -9" in line.lost()
        assert round_trips(net, 2, interval=0.2) == [], "a dead relay is a dead link"


def test_the_testbed_uses_the_delay_line_and_a_dead_relay_is_a_lost_link(tmp_path, linear, free_ports):
    """linear.toml's s3-h2 link is 10 ms one way, the others 0.05-0.1 ms: h1 to h2 and back
    is at least 20.3 ms."""
    bed = tb.Testbed(linear, target="embedded", run_dir=tmp_path, grpc=free_ports(),
                     shaping=tb.Shaping(link_delay="delay-line"))
    with bed:
        report = bed.link_delay_report()
        assert report["requested"] == "delay-line"
        assert report["links"] == {"h1-s1": "delay-line", "s1-s2": "delay-line",
                                   "s2-s3": "delay-line", "s3-h2": "delay-line"}
        relays = [link.relay.pid for link in bed.delay_lines()]
        assert len(relays) == 4 and set(relays) <= {pid for pid, _ in bed.owned_processes()}
        out = bed.host("h1").cmd(f"ping -n -c 5 -i 0.05 {bed.address('h2')}")
        rtts = [float(t) for t in re.findall(r"time=([0-9.]+) ms", out)]
        assert len(rtts) == 5 and min(rtts) >= 20.3, out
        line = next(link for link in bed.delay_lines() if link.intf1.node.name == "s1")
        os.kill(line.relay.pid, signal.SIGKILL)
        line.relay.wait(5)
        assert "exited with code -9" in bed.lost_nodes()["link:s1-s2"]
        owned = bed.owned_processes()
    assert all(relay_gone(pid) for pid in relays)
    assert tb.leftovers(linear, owned) == []
