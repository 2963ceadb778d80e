"""`dcia steer` against running switch processes (topologies/redundant.toml on free ports):
the first round deploys, a killed switch is failed over from, the restarted one gets the
traffic back; `--once --explain` changes nothing. Every decision is a JSON line."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from controller.demo_model import load_demo
from controller.deployment import SwitchEndpoint
from controller.session import SwitchStatus, switch_status
from dcia.targets import SwitchConfig, SwitchProcess, find_bmv2
from tests.topology_files import on_free_ports

REDUNDANT = Path("topologies/redundant.toml")
MODEL = load_demo().quantized
KEY = (MODEL.model_id, MODEL.version)


class Network:
    def __init__(self, target: str, tmp: Path):
        self.target, self.tmp = target, tmp
        self.topology = tmp / "redundant.toml"
        self.addr = on_free_ports(REDUNDANT, self.topology)
        self.procs: dict[str, SwitchProcess] = {}

    def start(self, name: str) -> None:
        config = SwitchConfig(ports={}, grpc_addr=self.addr[name], device_id=int(name[1:]))
        self.procs[name] = SwitchProcess(self.target, config,
                                         stdout_path=self.tmp / f"{name}.out").start()

    def stop(self, name: str) -> None:
        self.procs.pop(name).stop()

    def status(self, name: str) -> SwitchStatus:
        return asyncio.run(switch_status(SwitchEndpoint(name, self.addr[name], int(name[1:]))))

    def held(self, name: str) -> list[int]:
        status = self.status(name)
        assert status.error is None, status.error
        return status.models.get(KEY, [])


@pytest.fixture(params=["embedded", "bmv2"])
def network(request, tmp_path):
    if request.param == "bmv2" and find_bmv2() is None:
        pytest.skip("BMv2 simple_switch_grpc is not installed here")
    net = Network(request.param, tmp_path)
    try:
        for name in net.addr:
            net.start(name)
        yield net
    finally:
        for name in list(net.procs):
            net.stop(name)


def steer(network: Network, *args: str, **kw) -> subprocess.Popen:
    model = MODEL.save(network.tmp / "model.json")
    return subprocess.Popen([sys.executable, "-m", "controller.cli", "steer", "--topology",
                             str(network.topology), "--model", str(model), "--interval", "0.3",
                             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def decisions(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def wait_for(log: Path, action: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [d for d in decisions(log) if d["action"] == action]
        if found:
            return found[-1]
        time.sleep(0.2)
    raise AssertionError(f"no {action!r} decision in {timeout} s: {decisions(log)}")


def test_deploys_fails_over_from_a_killed_switch_and_returns_when_it_is_back(network):
    log = network.tmp / "decisions.jsonl"
    loop = steer(network, "--log", str(log), "--dead-after", "2", "--rounds", "200")
    try:
        deployed = wait_for(log, "deploy")
        assert deployed["new"]["route"] == "primary"
        assert network.held("s1") and not network.held("s3")
        network.stop("s1")
        failover = wait_for(log, "failover")
        assert failover["dead"] == ["s1"] and failover["new"]["route"] == "backup"
        assert "s1" in failover["reason"] and failover["candidates"]["primary"] == "dead: s1"
        assert network.held("s3") and not network.held("s2")   # removed where it was
        network.start("s1")                                     # back, empty
        restore = wait_for(log, "restore")
        assert restore["new"]["route"] == "primary"
        assert network.held("s1") and not network.held("s3")
    finally:
        loop.terminate()
        loop.wait(30)
    actions = [d["action"] for d in decisions(log)]
    assert actions.count("deploy") == 1 and "failed" not in actions, actions


def test_once_explain_reports_one_round_and_changes_nothing(network):
    loop = steer(network, "--once", "--explain")
    out, err = loop.communicate(timeout=120)
    assert loop.returncode == 0, err
    line = json.loads(next(x for x in out.splitlines() if x.startswith("{")))
    assert line["action"] == "deploy" and line["round"] == 1
    assert "steering round 1: deploy" in out and "primary" in out
    for name in network.addr:  # no pipeline pushed, nothing installed
        assert "has no P4 program" in (network.status(name).error or ""), name
