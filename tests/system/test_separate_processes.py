"""Switches as separate processes on separate "machines", deployed by the ordinary commands.

topologies/standalone.toml is the linear network (h1 - s1 - s2 - s3 - h2) with every
switch's P4Runtime server at an address of its own on a management network
(198.18.0.11-13, all on port 9559). mininet_topos.standalone emulates the machines: a
network namespace per node, veth links between them, one switch process per switch
namespace, started without a program and not by Mininet. Everything a user does goes
through the commands a user types, from the root namespace (the controller's machine)
or in a host's namespace (as over ssh):

    python -m mininet_topos.standalone routes --topology topologies/standalone.toml
    dcia deploy --topology topologies/standalone.toml --model model.json ...
    ip netns exec <h2> python -m hosts.cloud_server ...
    ip netns exec <h1> python -m hosts.edge_agent ...
    dcia status --topology topologies/standalone.toml

The plan puts one layer on each of h1, s1 and s2 and the last on the cloud, so every
request crosses all three switch machines and the cloud, and the answer comes back over
the switches' IPv4 routes. Each answer must equal the integer reference.

Runs on the embedded switch and on BMv2 where installed. Needs root (``pytest -m system``).
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from controller.demo_model import load_demo
from controller.deployment import endpoints
from controller.session import switch_status
from controller.topology import load_topology
from dcia.targets import TargetError, find_bmv2, process_start_time
from mininet_topos import standalone as sa

pytestmark = [
    pytest.mark.system,
    pytest.mark.netns,
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
]

REPO = Path(__file__).resolve().parents[2]
TOPOLOGY = REPO / "topologies" / "standalone.toml"
DCIA = Path(sys.executable).parent / "dcia"
PLAN = ["--max-layers-per-switch", "1", "--forbid", "s3", "--forbid", "h1:1-3", "--forbid", "h2:1-2"]
"""h1 layer 0, s1 layer 1, s2 layer 2, s3 forwards, the cloud h2 layer 3 and answers."""
REQUESTS = 120
PREFIX = "dsa-test"


def command(*argv: str | Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """``argv`` run to its end; rich prints dcia's tables 300 columns wide (no wrapped cells)."""
    return subprocess.run([str(a) for a in argv], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "COLUMNS": "300"})


def succeeded(done: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert done.returncode == 0, f"{' '.join(done.args)}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done


def topology_copy(tmp_path: Path, subnet: int, tls: str = "") -> Path:
    """standalone.toml with its management addresses in 198.18.<subnet>.0/24 (beside a lab
    of the original) and, given, a ``tls`` line for every switch."""
    text = TOPOLOGY.read_text().replace("198.18.0.", f"198.18.{subnet}.")
    if tls:
        for n in (1, 2, 3):
            text = text.replace(f"device_id = {n}\n", f"device_id = {n}\n{tls}\n")
    path = tmp_path / f"standalone-{subnet}{'-tls' if tls else ''}.toml"
    path.write_text(text)
    return path


def nothing_left(prefix: str) -> list[str]:
    namespaces = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    left = [f"namespace {n}" for n in namespaces if n.startswith(f"{prefix}-")]
    left += [f"interface {i}" for i in os.listdir("/sys/class/net") if i.startswith(f"{prefix}-")]
    if (sa.STATE_DIR / f"{prefix}.json").exists():
        left.append("state file")
    return left


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    demo = load_demo()
    model = demo.quantized
    run_dir = tmp_path_factory.mktemp("standalone")
    x = demo.split.x_test[:REQUESTS]
    np.save(run_dir / "inputs.npy", x)
    reference = [model.forward_int(q, 0, len(model.layers)).tolist() for q in model.quantize_input(x)]
    return dict(model=model, model_file=model.save(run_dir / "model.json"),
                inputs_file=run_dir / "inputs.npy", reference=reference, run_dir=run_dir)


@pytest.fixture(scope="module", params=["embedded", "bmv2"])
def lab(request, demo):
    """The machines up, routes installed and the model deployed, by the commands."""
    if request.param == "bmv2" and find_bmv2() is None:
        pytest.skip("BMv2 simple_switch_grpc is not installed here (PATH, $SIMPLE_SWITCH_GRPC, "
                    "/opt/p4/bin); the embedded switch runs the same tests")
    topology = load_topology(TOPOLOGY)
    with sa.StandaloneLab(topology, target=request.param, prefix=PREFIX,
                          run_dir=demo["run_dir"] / request.param) as lab:
        routes = succeeded(command(sys.executable, "-m", "mininet_topos.standalone", "routes",
                                   "--topology", TOPOLOGY))
        deploy = succeeded(command(DCIA, "deploy", "--topology", TOPOLOGY, "--model",
                                   demo["model_file"], *PLAN))
        lab.outputs = {"routes": routes.stdout, "deploy": deploy.stdout}
        yield lab
    assert nothing_left(PREFIX) == []


@pytest.fixture(scope="module")
def run(lab, demo):
    """One run of the edge agent against the cloud server, both in their machines."""
    stats_file = lab.run_dir / "h2-stats.json"
    with open(lab.run_dir / "h2-cloud.log", "wb") as err:
        cloud = lab.popen("h2", [sys.executable, "-m", "hosts.cloud_server", "--model",
                                 str(demo["model_file"]), "--stats", str(stats_file)],
                          cwd=REPO, stdout=subprocess.PIPE, stderr=err)
    ready, _, _ = select.select([cloud.stdout], [], [], 60)
    assert ready and b"listening" in cloud.stdout.readline(), (lab.run_dir / "h2-cloud.log").read_text()
    cloud_address = lab.topology.host_address("h2")
    edge = command(*lab.command("h1", [sys.executable, "-m", "hosts.edge_agent", "--model",
                                       str(demo["model_file"]), "--cloud", cloud_address,
                                       "--edge-layers", "1", "--inputs", str(demo["inputs_file"]),
                                       "--window", "8", "--timeout", "3"]))
    results = [json.loads(line) for line in edge.stdout.splitlines()]
    cloud.send_signal(signal.SIGTERM)
    cloud.wait(timeout=30)
    status = command(DCIA, "status", "--topology", TOPOLOGY)

    async def read_all():
        return [await switch_status(e) for e in endpoints(lab.topology).values()]

    counters = {s.name: s for s in asyncio.run(read_all())}
    (lab.run_dir / "summary.json").write_text(json.dumps({  # for a person reading a failure
        "statuses": sorted({r["status"] for r in results}), "attempts": sum(r["attempts"] for r in results),
        "counters": {n: [s.stats, s.layers_computed, s.error] for n, s in counters.items()},
        "cloud": json.loads(stats_file.read_text())}, indent=1, default=str))
    return dict(results=results, edge=edge, cloud=json.loads(stats_file.read_text()),
                status=status, counters=counters)


def test_each_switch_is_a_process_in_a_machine_of_its_own(lab):
    root = os.readlink("/proc/self/ns/net")
    seen = set()
    for name, switch in lab.switches.items():
        netns = os.readlink(f"/proc/{switch.proc.pid}/ns/net")
        assert netns != root and netns not in seen
        seen.add(netns)
        # its P4Runtime server listens at the topology's address, inside its namespace
        host, port = lab.topology.switches[name].grpc.rsplit(":", 1)
        listening = Path(f"/proc/{switch.proc.pid}/net/tcp").read_text() + \
            Path(f"/proc/{switch.proc.pid}/net/tcp6").read_text()
        want = "".join(f"{int(b):02X}" for b in reversed(host.split("."))) + f":{int(port):04X}"
        assert want in listening or f"0000000000000000FFFF0000{want}" in listening \
            or f"00000000:{int(port):04X}" in listening
        ports = succeeded(command("ip", "-n", lab.layout.namespace(name), "-br", "link")).stdout
        assert {"eth1", "eth2", "mgmt0"} <= {line.split("@")[0].split()[0] for line in ports.splitlines()}
    assert len({s.grpc.rsplit(":", 1)[1] for s in lab.topology.switches.values()}) == 1  # all on 9559


def test_routes_and_the_model_go_over_the_management_network(lab):
    assert lab.outputs["routes"].strip() == "s1: 2 routes, s2: 2 routes, s3: 2 routes"
    assert "Deployed digits as model" in lab.outputs["deploy"]


def test_ping_crosses_the_switch_machines(lab):
    done = command(*lab.command("h1", ["ping", "-c", "3", "-W", "3", lab.topology.host_address("h2")]),
                   timeout=60)
    assert " 3 received" in done.stdout, done.stdout


def test_every_answer_equals_the_integer_reference(run, demo):
    results = run["results"]
    assert len(results) == REQUESTS, run["edge"].stderr[-2000:]
    assert [r["status"] for r in results] == ["ok"] * REQUESTS
    assert [r["logits"] for r in results] == demo["reference"]
    assert {(r["net_layers"], r["cloud_from"]) for r in results} == {(2, 3)}


def test_each_machine_computed_its_planned_layers(run):
    sends = sum(r["attempts"] for r in run["results"])
    s1, s2, s3 = (run["counters"][n] for n in ("s1", "s2", "s3"))
    assert all(s.error is None for s in (s1, s2, s3))
    assert s1.layers_computed == {1: sends} and s2.layers_computed == {2: sends}
    assert s3.layers_computed == {} and s3.stats["computed"] == 0
    assert s3.stats["pass-through"] >= sends
    assert run["cloud"]["requests"] == REQUESTS
    assert run["cloud"]["arrivals"] == {"3": REQUESTS}
    assert run["cloud"]["errors"] == 0


def test_dcia_status_reads_every_switch_at_its_address(run):
    out = succeeded(run["status"]).stdout
    for address in ("198.18.0.11:9559", "198.18.0.12:9559", "198.18.0.13:9559"):
        assert address in out


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=120)


def test_deploy_over_mutual_tls_to_each_switch_address(tmp_path, demo):
    """Every switch has a certificate for its own management address; the controller
    verifies it and shows its client certificate; without one it is refused."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=dcia-test-ca",
            "-keyout", "ca.key", "-out", "ca.pem", cwd=tmp_path)
    for name, san in (("s1", "IP:198.18.5.11"), ("s2", "IP:198.18.5.12"), ("s3", "IP:198.18.5.13"),
                      ("client", "DNS:controller")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=tmp_path)
        (tmp_path / f"{name}.ext").write_text(f"subjectAltName={san}\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "1", "-extfile", f"{name}.ext", "-out", f"{name}.pem",
                cwd=tmp_path)
    mutual = topology_copy(tmp_path, 5, 'tls = { ca = "ca.pem", cert = "client.pem", key = "client.key" }')
    server_only = tmp_path / "server-only.toml"  # no client certificate
    server_only.write_text(mutual.read_text().replace(', cert = "client.pem", key = "client.key"', ""))
    tls_args = {s: ("--grpc-server-ssl", "--grpc-server-cert", str(tmp_path / f"{s}.pem"),
                    "--grpc-server-key", str(tmp_path / f"{s}.key"), "--grpc-server-cacert",
                    str(tmp_path / "ca.pem"), "--grpc-server-with-client-auth")
                for s in ("s1", "s2", "s3")}
    with sa.StandaloneLab(load_topology(mutual), target="embedded", prefix="dsa-tls",
                          management="198.18.5.1/24", run_dir=tmp_path / "run", tls_args=tls_args):
        succeeded(command(sys.executable, "-m", "mininet_topos.standalone", "routes", "--topology", mutual))
        succeeded(command(DCIA, "deploy", "--topology", mutual, "--model", demo["model_file"], *PLAN))
        status = succeeded(command(DCIA, "status", "--topology", mutual)).stdout
        assert "198.18.5.12:9559" in status and "1 v1: 2" in status
        refused = command(DCIA, "status", "--topology", server_only)
        assert refused.returncode == 2 and "switch s1" in refused.stderr, refused.stderr
    assert nothing_left("dsa-tls") == []


def test_a_failed_start_leaves_nothing_behind(tmp_path):
    topology = load_topology(topology_copy(tmp_path, 7))
    lab = sa.StandaloneLab(topology, target="embedded", prefix="dsa-fail", management="198.18.7.1/24",
                           run_dir=tmp_path, start_timeout=0)
    with pytest.raises(TargetError, match="did not open"):
        lab.start()
    assert nothing_left("dsa-fail") == []


def test_a_killed_lab_loses_its_switches_and_down_removes_the_rest(tmp_path):
    path = topology_copy(tmp_path, 6)
    output = tmp_path / "up.out"
    with open(output, "wb") as out:
        up = subprocess.Popen([sys.executable, "-m", "mininet_topos.standalone", "up", "--topology",
                               str(path), "--target", "embedded", "--prefix", "dsa-kill",
                               "--management", "198.18.6.1/24", "--run-dir", str(tmp_path)],
                              cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and "ready" not in output.read_text() and up.poll() is None:
            time.sleep(0.2)
        assert "ready" in output.read_text(), output.read_text()
        state = json.loads((sa.STATE_DIR / "dsa-kill.json").read_text())
        switches = [pid for pid, _ in state["processes"]]
        assert len(switches) == 3
        up.kill()
        up.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(process_start_time(p) for p in switches):
            time.sleep(0.1)
        assert not any(process_start_time(p) for p in switches)
        assert nothing_left("dsa-kill") != []  # namespaces and bridge outlive a SIGKILL
        down = succeeded(command(sys.executable, "-m", "mininet_topos.standalone", "down",
                                 "--prefix", "dsa-kill"))
        assert "namespace dsa-kill-s1" in down.stdout
        assert nothing_left("dsa-kill") == []
    finally:
        if up.poll() is None:
            up.kill()
            up.wait(timeout=10)
        command(sys.executable, "-m", "mininet_topos.standalone", "down", "--prefix", "dsa-kill")
