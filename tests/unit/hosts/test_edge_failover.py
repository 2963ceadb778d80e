"""The edge agent's failover against real cloud servers (hosts.cloud_server processes) on
loopback: two clouds on 127.0.0.1 and 127.0.0.2, the preferred one stopped or frozen
mid-run. No request is lost, every answer equals the integer reference, a second answer
to a request counts once (as a duplicate), and traffic returns to the preferred cloud."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dcia.metrics import path_rtt_key
from hosts.edge_agent import EdgeAgent, FailoverPolicy, RetryPolicy, answered_key

REPO = Path(__file__).resolve().parents[3]
PREFERRED, OTHER = "127.0.0.1", "127.0.0.2"
REQUESTS, RATE = 800, 200.0
"""Four seconds of requests: time for a killed server to start again and be probed."""
FIRST_WAIT = 0.05


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((PREFERRED, 0))
        port = s.getsockname()[1]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((OTHER, port))  # free on both addresses
    return port


class CloudServers:
    """Real cloud server processes, one per address, on one UDP port; their counters."""

    def __init__(self, model_file: Path, port: int, run_dir: Path):
        self.model_file, self.port, self.run_dir = model_file, port, run_dir
        self.procs: dict[str, subprocess.Popen] = {}
        self.stats: list[dict] = []
        """Counters of every server that stopped (one per process)."""
        self.started = 0

    def start(self, address: str, wait: bool = True) -> None:
        self.started += 1
        stats = self.run_dir / f"cloud-{self.started}.json"
        self.procs[address] = proc = subprocess.Popen(
            [sys.executable, "-m", "hosts.cloud_server", "--model", str(self.model_file),
             "--bind", address, "--port", str(self.port), "--stats", str(stats)],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        proc.stats_file = stats
        if wait:
            assert b"listening" in proc.stdout.readline()

    def stop(self, address: str) -> None:
        proc = self.procs.pop(address)
        os.kill(proc.pid, signal.SIGCONT)  # should it be frozen
        proc.terminate()
        proc.wait(10)
        self.stats.append(json.loads(proc.stats_file.read_text()))

    def kill(self, address: str) -> None:
        """A crash: SIGKILL, no counters."""
        proc = self.procs.pop(address)
        proc.kill()
        proc.wait(10)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for address in list(self.procs):
            self.stop(address)


@pytest.fixture
def model_file(model, tmp_path):
    return model.save(tmp_path / "model.json")


def run_with_fault(model, digits, servers, port, fault, recover):
    """Run REQUESTS paced requests; ``fault()`` after an eighth of the results,
    ``recover()`` after a quarter; returns the agent, the results and when ``fault`` was
    called."""
    xs = model.quantize_input(digits.x_test[:360])
    xs = xs[[i % len(xs) for i in range(REQUESTS)]]
    agent = EdgeAgent(model, [PREFERRED, OTHER], 1, port=port, bind=(PREFERRED, 0), seed=3,
                      retry=RetryPolicy(FIRST_WAIT, 2.0, 5),
                      failover=FailoverPolicy(down_after=3, hold_down=0.2),
                      window=16, rate=RATE)
    seen, fault_at = [], []

    def on_result(result):
        seen.append(result)
        if len(seen) == REQUESTS // 8:
            fault_at.append(time.time())
            fault()
        elif len(seen) == REQUESTS // 4:
            recover()

    results = asyncio.run(agent.run(xs, on_result))
    reference = model.forward_int(xs).tolist()
    assert [r.status for r in results] == ["ok"] * REQUESTS, "no request is lost"
    assert [r.logits for r in results] == reference
    return agent, results, fault_at[0]


def failover_seconds(results, fault_at):
    """From the fault to the first answer from the other cloud."""
    return min(r.ended_at for r in results if r.answered_by == OTHER and r.ended_at > fault_at) - fault_at


def check_counted_once(agent, results, servers, every_server: bool = True):
    """Every answer reached the edge and counts once: the one taken per request, every
    other as a duplicate. With ``every_server`` (none was killed: all wrote counters),
    the answers the servers sent, one per request each counted (``requests``) and one per
    retry it answered from its cache (``retries``), are exactly those."""
    assert agent.strays == 0
    if every_server:
        assert REQUESTS + agent.duplicates == sum(s["requests"] + s["retries"] for s in servers.stats)
    by_cloud = {c: sum(r.answered_by == c for r in results) for c in (PREFERRED, OTHER)}
    assert {c: agent.counts[answered_key(c)] for c in by_cloud} == by_cloud
    assert sum(by_cloud.values()) == agent.counts["answered"] == REQUESTS
    assert agent.counts["redirected"] == by_cloud[OTHER] == sum(r.redirected for r in results)
    assert agent.counts["retried"] == sum(r.retried for r in results) > 0
    return by_cloud


def test_a_killed_cloud_loses_no_request_and_traffic_returns_when_it_is_back(model, digits,
                                                                          model_file, tmp_path):
    port = free_udp_port()
    with CloudServers(model_file, port, tmp_path) as servers:
        servers.start(PREFERRED)
        servers.start(OTHER)
        agent, results, fault_at = run_with_fault(
            model, digits, servers, port,
            fault=lambda: servers.kill(PREFERRED),
            recover=lambda: servers.start(PREFERRED, wait=False))
    by_cloud = check_counted_once(agent, results, servers, every_server=False)
    seconds = failover_seconds(results, fault_at)
    print(f"\nfailover after a killed cloud server: {seconds * 1e3:.1f} ms "
          f"(first wait {FIRST_WAIT * 1e3:.0f} ms); answers {by_cloud}, "
          f"duplicates {agent.duplicates}")
    assert seconds < 3 * FIRST_WAIT + 0.1
    assert agent.counts["failovers"] >= 1 and agent.counts["recoveries"] >= 1
    assert all(r.answered_by == PREFERRED for r in results[-20:]), "traffic returned"
    assert by_cloud[OTHER] > 0


def test_a_frozen_cloud_answering_late_counts_each_request_once(model, digits, model_file,
                                                                 tmp_path):
    """SIGSTOP: the preferred server keeps the requests it got and answers them after
    SIGCONT, when the other cloud has answered them already: duplicates, not strays."""
    port = free_udp_port()
    with CloudServers(model_file, port, tmp_path) as servers:
        servers.start(PREFERRED)
        servers.start(OTHER)
        pid = servers.procs[PREFERRED].pid
        agent, results, fault_at = run_with_fault(
            model, digits, servers, port,
            fault=lambda: os.kill(pid, signal.SIGSTOP),
            recover=lambda: os.kill(pid, signal.SIGCONT))
    by_cloud = check_counted_once(agent, results, servers)
    seconds = failover_seconds(results, fault_at)
    print(f"\nfailover after a frozen cloud server: {seconds * 1e3:.1f} ms; answers "
          f"{by_cloud}, duplicates {agent.duplicates}")
    assert agent.duplicates >= 3, "the requests the frozen server held, answered twice"
    assert seconds < 3 * FIRST_WAIT + 0.1
    assert all(r.answered_by == PREFERRED for r in results[-20:]), "traffic returned"


def test_a_single_cloud_that_stops_answering_still_ends_every_request(model, digits,
                                                                       model_file, tmp_path):
    """One cloud, stopped and not restarted: the requests end ``timeout``, then
    ``abandoned`` once a window of them went unanswered; exactly one result each."""
    port = free_udp_port()
    xs = model.quantize_input(digits.x_test[:100])
    with CloudServers(model_file, port, tmp_path) as servers:
        servers.start(PREFERRED)
        agent = EdgeAgent(model, PREFERRED, 1, port=port, bind=(PREFERRED, 0), seed=3,
                          retry=RetryPolicy(0.02, 2.0, 3), window=4, rate=RATE)
        seen = []

        def on_result(result):
            seen.append(result)
            if len(seen) == 20:
                servers.stop(PREFERRED)

        results = asyncio.run(agent.run(xs, on_result))
    statuses = [r.status for r in results]
    assert [r.index for r in results] == list(range(100))
    assert set(statuses) <= {"ok", "timeout", "abandoned"}
    assert statuses[:20] == ["ok"] * 20 and 4 <= statuses.count("timeout") <= 8
    assert statuses.count("abandoned") > 0


@pytest.mark.parametrize("kwargs, message", [
    (dict(clouds=[]), "one or more different cloud"),
    (dict(clouds=["127.0.0.1", "127.0.0.1"]), "one or more different cloud"),
    (dict(rate=0), "rate must be positive"),
])
def test_bad_settings_are_refused(model, kwargs, message):
    kwargs = {"clouds": "127.0.0.1", **kwargs}
    with pytest.raises(ValueError, match=message):
        EdgeAgent(model, kwargs.pop("clouds"), 1, **kwargs)


def test_a_failover_policy_needs_a_positive_hold_down_and_count():
    with pytest.raises(ValueError, match="down_after"):
        FailoverPolicy(down_after=0)
    with pytest.raises(ValueError, match="hold_down"):
        FailoverPolicy(hold_down=0)


def test_path_probes_measure_each_clouds_round_trip_and_are_not_requests(model, digits, model_file,
                                                                        tmp_path):
    port = free_udp_port()
    xs = model.quantize_input(digits.x_test[:200])
    with CloudServers(model_file, port, tmp_path) as servers:
        servers.start(PREFERRED)
        servers.start(OTHER)
        agent = EdgeAgent(model, [PREFERRED, OTHER], 1, port=port, bind=(PREFERRED, 0), seed=5,
                          rate=100.0, path_probe_s=0.1)
        results = asyncio.run(agent.run(xs))
    assert [r.status for r in results] == ["ok"] * len(xs)
    assert [r.logits for r in results] == model.forward_int(xs).tolist()
    counts = agent.capability("edge")[1]
    assert counts["path_probes"] >= 2 * 10                  # two seconds, two clouds
    for cloud in (PREFERRED, OTHER):                         # loopback: well under 50 ms
        assert 0 < counts[path_rtt_key(cloud)] < 0.05, counts
    assert agent.strays == 0 and counts["requests"] == len(xs) == counts["answered"]
    # the servers saw the probes as requests that compute nothing (they start past the last layer)
    n = len(model.layers)
    assert all(s["arrivals"].get(str(n), 0) > 0 for s in servers.stats)
    assert sum(s["layers_computed"] for s in servers.stats) == len(xs) * (n - 1)


def test_without_answers_a_path_has_no_round_trip(model, digits, model_file, tmp_path):
    port = free_udp_port()
    xs = model.quantize_input(digits.x_test[:50])
    with CloudServers(model_file, port, tmp_path) as servers:
        servers.start(PREFERRED)
        agent = EdgeAgent(model, [PREFERRED, OTHER], 1, port=port, bind=(PREFERRED, 0), seed=6,
                          rate=100.0, path_probe_s=0.1, retry=RetryPolicy(FIRST_WAIT, 2.0, 5))
        asyncio.run(agent.run(xs))
    counts = agent.capability("edge")[1]
    assert path_rtt_key(PREFERRED) in counts and path_rtt_key(OTHER) not in counts
