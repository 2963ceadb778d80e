"""The testbed's clean-up bookkeeping: recorded processes, and who owns a topology."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("mininet.net", reason="Mininet is not importable (scripts/bootstrap.sh links it)")

from controller.topology import parse_topology  # noqa: E402
from mininet_topos import testbed as tb  # noqa: E402
from dcia.targets import process_start_time  # noqa: E402

TOPOLOGY = parse_topology({
    "name": "dcia-unit-test",
    "hosts": {"h1": {"kind": "edge", "ip": "10.9.1.1/24", "mac": "08:00:00:00:09:11"},
              "h2": {"kind": "cloud", "ip": "10.9.2.2/24", "mac": "08:00:00:00:09:22"}},
    "switches": {"s1": {"grpc": "127.0.0.1:1", "device_id": 1}},
    "links": [{"endpoints": ["h1", "s1:1"]}, {"endpoints": ["s1:2", "h2"]}],
    "paths": {"main": ["h1", "s1", "h2"]},
})


@pytest.fixture
def sleeper():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


@pytest.fixture
def state_file(tmp_path):
    return tmp_path / "state.json"


def record(state_file, processes, owner):
    state_file.write_text(json.dumps({
        "processes": [[p.pid, process_start_time(p.pid)] for p in processes],
        "owner": [owner.pid, process_start_time(owner.pid)],
    }))


def test_a_crashed_runs_processes_are_stopped_by_id(state_file, sleeper):
    owner = subprocess.Popen([sys.executable, "-c", "pass"])
    record(state_file, [sleeper], owner)
    owner.wait()  # the run that wrote the state is gone; its switch process is not
    assert tb.leftovers(TOPOLOGY, [(sleeper.pid, process_start_time(sleeper.pid))])
    tb.clean_stale(TOPOLOGY, state_file)
    assert sleeper.wait(timeout=5) is not None
    assert not state_file.exists()


def test_a_running_testbed_of_the_same_topology_is_left_alone(state_file, sleeper):
    record(state_file, [sleeper], owner=sleeper)
    with pytest.raises(tb.TestbedError, match="running in process"):
        tb.clean_stale(TOPOLOGY, state_file)
    assert sleeper.poll() is None and state_file.exists()


def test_a_reused_process_id_is_not_killed(state_file, sleeper):
    state_file.write_text(json.dumps({"processes": [[sleeper.pid, 1]], "owner": [sleeper.pid, 1]}))
    tb.clean_stale(TOPOLOGY, state_file)  # start time 1: another process had that id
    assert sleeper.poll() is None


def test_a_running_testbed_of_another_topology_with_the_same_interface_names_is_left_alone(
        state_file, sleeper):
    other = state_file.parent / "other-topology.json"
    other.write_text(json.dumps({
        "processes": [], "owner": [sleeper.pid, process_start_time(sleeper.pid)],
        "interfaces": ["s1-eth1", "s9-eth1"]}))
    with pytest.raises(tb.TestbedError, match="topology other-topology is running in process "
                                              rf"{sleeper.pid} with interfaces of the same names \(s1-eth1"):
        tb.clean_stale(TOPOLOGY, state_file)
    other.write_text(json.dumps({"processes": [], "interfaces": ["s9-eth1"],
                                 "owner": [sleeper.pid, process_start_time(sleeper.pid)]}))
    tb.clean_stale(TOPOLOGY, state_file)  # no name in common: both may run
