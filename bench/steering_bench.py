"""Load in the data plane, measured: overload splitting by the layer meters, and the
steering selector's shares, on each switch target in the same run.

Overload: the demo model with its three in-network layers on one switch, the edge agent
(hosts.edge_agent) in one namespace keeping ``--window`` requests in flight (far more than
the switch computes), the cloud server (hosts.cloud_server) in another finishing whatever
reaches it. Twice per target, the same requests: with the switch's layers unmetered (it
computes every layer it is offered, however long its queue) and with each layer metered
at ``--rate`` layers per second (what is over the rate goes on uncomputed to the cloud).
Every answer is checked against the integer reference. Reported: answered requests per
second, latency percentiles, lost requests, and who computed the layers.

Shares: one steering group with two members, weights 1:1 and 3:1, ``--flows`` distinct
requests: each member's share.

    .venv/bin/python -m bench.steering_bench [--requests 600] [--rate 300] [--out results]

Needs root (namespaces and veth pairs, created and removed here).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from bench.plots import figure

ROOT = Path(__file__).resolve().parents[1]
EDGE = dict(mac="08:00:00:00:01:11", ip="10.0.1.1")
CLOUD = dict(mac="08:00:00:00:02:22", ip="10.0.2.2")
GATEWAY_MAC = "08:00:00:00:01:00"
CLOUD_GATEWAY_MAC = "08:00:00:00:02:00"


def _write(address: str, updates: list) -> None:
    import finsy as fy

    from dcia.artifacts import Pipeline

    pipeline = Pipeline.default()

    async def go():
        opts = fy.SwitchOptions(p4info=pipeline.p4info, p4blob=pipeline.bmv2_json, device_id=1)
        async with fy.Switch("s1", address, opts) as sw:
            await sw.write(updates)

    asyncio.run(go())


def overload(target: str, rate: float | None, requests: int, window: int, tmp: Path,
             offered: float | None = None) -> dict:
    """One overload run: the switch's layers metered at ``rate`` layers per second in all
    (None: unmetered); the edge keeps ``window`` requests in flight and, with
    ``offered``, starts at most that many requests per second."""
    from controller import entries as E
    from controller.deployment import Deployment, SwitchAssignment, SwitchEndpoint
    from controller.demo_model import load_demo
    from controller.session import apply
    from dcia.targets import SwitchConfig, SwitchProcess, free_tcp_port
    from tests.netlab import NetLab

    demo = load_demo()
    model = demo.quantized
    n = len(model.layers)
    x = demo.split.x_test[:requests]
    if len(x) < requests:
        x = np.resize(x, (requests, x.shape[1]))
    model_file = model.save(tmp / "model.json")
    np.save(tmp / "inputs.npy", x)
    with NetLab("ovl", ports=2) as lab:
        lab.configure_host(1, ip=EDGE["ip"] + "/24", mac=EDGE["mac"],
                           peers={CLOUD["ip"]: GATEWAY_MAC})
        lab.configure_host(2, ip=CLOUD["ip"] + "/24", mac=CLOUD["mac"],
                           peers={EDGE["ip"]: CLOUD_GATEWAY_MAC})
        config = SwitchConfig(ports={1: lab.switch_ifname(1), 2: lab.switch_ifname(2)},
                              grpc_addr=f"127.0.0.1:{free_tcp_port()}", log_level="error")
        with SwitchProcess(target, config):
            _write(config.grpc_addr, [
                +E.route_entry(prefix="10.0.1.0/24", port=1, dst_mac=EDGE["mac"]),
                +E.route_entry(prefix="10.0.2.0/24", port=2, dst_mac=CLOUD["mac"])])
            layers = {i: model.layers[i] for i in range(1, n)}
            answer = E.steering_entry(model_id=model.model_id, layer=n, hops=[
                E.NextHop(1, EDGE["mac"], EDGE["ip"], answer=True)])
            share = None if rate is None else rate / len(layers)
            asyncio.run(apply(Deployment(model.model_id, model.version, (SwitchAssignment(
                SwitchEndpoint("s1", config.grpc_addr), layers, (answer,), share),))))
            cloud = subprocess.Popen(
                ["ip", "netns", "exec", lab.ns(2), sys.executable, "-m", "hosts.cloud_server",
                 "--model", str(model_file), "--stats", str(tmp / "cloud.json")],
                cwd=ROOT, stdout=subprocess.PIPE, text=True)
            try:
                cloud.stdout.readline()  # "listening"
                started = time.perf_counter()
                edge = subprocess.run(
                    ["ip", "netns", "exec", lab.ns(1), sys.executable, "-m", "hosts.edge_agent",
                     "--model", str(model_file), "--cloud", CLOUD["ip"], "--edge-layers", "1",
                     "--inputs", str(tmp / "inputs.npy"), "--window", str(window),
                     "--timeout", "2", "--give-up-after", "0",
                     *(["--rate", str(offered)] if offered else [])],
                    cwd=ROOT, capture_output=True, text=True, timeout=600)
                elapsed = time.perf_counter() - started
            finally:
                cloud.terminate()
                cloud.wait(10)
            stats = _switch_stats(config.grpc_addr)
    results = [json.loads(line) for line in edge.stdout.splitlines() if line.startswith("{")]
    reference = model.forward_int(model.quantize_input(x))
    ok = [r for r in results if r["status"] == "ok"]
    wrong = sum(1 for r in ok if r["logits"] != [int(v) for v in reference[r["index"]]])
    latencies = sorted(r["latency_s"] for r in ok)
    by_switch = Counter(r["net_layers"] for r in ok)
    return {"target": target, "meter": "unmetered" if rate is None else f"{rate:g} layers/s",
            "requests": requests, "answered": len(ok), "lost": requests - len(ok),
            "wrong": wrong, "seconds": elapsed, "answered_per_s": len(ok) / elapsed,
            "p50_ms": 1e3 * statistics.median(latencies) if latencies else None,
            "p99_ms": 1e3 * latencies[int(0.99 * (len(latencies) - 1))] if latencies else None,
            "switch_computed_all": by_switch.get(n - 1, 0),
            "switch_computed_part": sum(v for k, v in by_switch.items() if 0 < k < n - 1),
            "cloud_computed_all": by_switch.get(0, 0),
            "deferred": stats.get("deferred", 0), "computed": stats.get("computed", 0),
            "computed_per_s": stats.get("computed", 0) / elapsed,
            "retries": sum(r["attempts"] - 1 for r in results)}


def _switch_stats(address: str) -> dict[str, int]:
    from controller.deployment import SwitchEndpoint
    from controller.session import switch_status

    return asyncio.run(switch_status(SwitchEndpoint("s1", address))).stats


def shares(target: str, flows: int, weights: tuple[int, int]) -> dict:
    """The share of member A of a weighted group over ``flows`` distinct requests."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    from controller import entries as E
    from dcia.targets import SwitchConfig, SwitchProcess, free_tcp_port
    from dcia.wire import DCIA, DCIA_UDP_PORT
    from tests.netlab import NetLab

    mac_a, mac_b = "08:00:00:00:0a:0a", "08:00:00:00:0b:0b"
    with NetLab("shr", ports=2) as lab:
        config = SwitchConfig(ports={1: lab.switch_ifname(1), 2: lab.switch_ifname(2)},
                              grpc_addr=f"127.0.0.1:{free_tcp_port()}", log_level="error")
        with SwitchProcess(target, config):
            _write(config.grpc_addr, [+E.steering_entry(model_id=9, layer=0, hops=[
                E.NextHop(2, mac_a, CLOUD["ip"], weight=weights[0]),
                E.NextHop(2, mac_b, CLOUD["ip"], weight=weights[1])])])
            h1, h2 = lab.host_socket(1), lab.host_socket(2)
            seen: Counter = Counter()
            for start in range(0, flows, 100):
                for rid in range(start, min(flows, start + 100)):
                    h1.send(bytes(Ether(src=EDGE["mac"], dst=GATEWAY_MAC)
                                  / IP(src=EDGE["ip"], dst=CLOUD["ip"])
                                  / UDP(sport=DCIA_UDP_PORT, dport=DCIA_UDP_PORT)
                                  / DCIA(model_id=9, model_version=1, request_id=rid * 7919,
                                         elems=[1, 2, 3, 4])))
                seen.update(Ether(f).dst for f in h2.receive_count(min(100, flows - start), 30))
    total = sum(seen.values())
    return {"target": target, "weights": f"{weights[0]}:{weights[1]}", "flows": flows,
            "received": total, "share_a": seen[mac_a] / total if total else None,
            "expected_a": weights[0] / sum(weights)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=600)
    ap.add_argument("--window", type=int, default=64, help="requests the edge keeps in flight")
    ap.add_argument("--rate", type=float, default=300.0,
                    help="the metered switch's layers per second (default %(default)s)")
    ap.add_argument("--flows", type=int, default=2000)
    ap.add_argument("--targets", default="embedded,bmv2")
    ap.add_argument("--out", type=Path, default=Path("results"))
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("steering_bench skipped: it needs root (namespaces and veth pairs)")
        return 0
    from dcia.targets import find_bmv2

    targets = [t for t in args.targets.split(",") if t != "bmv2" or find_bmv2() is not None]
    skipped = sorted(set(args.targets.split(",")) - set(targets))
    tmp = args.out / "steering_bench"
    tmp.mkdir(parents=True, exist_ok=True)
    over, spread = [], []
    for target in targets:
        for rate in (None, args.rate):
            over.append(overload(target, rate, args.requests, args.window, tmp))
        for weights in ((1, 1), (3, 1)):
            spread.append(shares(target, args.flows, weights))
    console = Console()
    table = Table(title=f"Overload: {args.requests} requests, {args.window} in flight, "
                        "3 layers on the switch")
    for column in ("target", "meter", "answered/s", "p50 ms", "p99 ms", "lost", "wrong",
                   "switch: all / part", "cloud: all", "deferred", "retries"):
        table.add_column(column, justify="left" if column in ("target", "meter") else "right")
    for r in over:
        table.add_row(r["target"], r["meter"], f"{r['answered_per_s']:.0f}",
                      f"{r['p50_ms']:.1f}" if r["p50_ms"] is not None else "-",
                      f"{r['p99_ms']:.1f}" if r["p99_ms"] is not None else "-",
                      str(r["lost"]), str(r["wrong"]),
                      f"{r['switch_computed_all']} / {r['switch_computed_part']}",
                      str(r["cloud_computed_all"]), str(r["deferred"]), str(r["retries"]))
    console.print(table)
    table = Table(title=f"Steering selector shares over {args.flows} requests")
    for column in ("target", "weights", "received", "share of A", "expected"):
        table.add_column(column, justify="left" if column in ("target", "weights") else "right")
    for r in spread:
        table.add_row(r["target"], r["weights"], str(r["received"]),
                      f"{r['share_a']:.1%}" if r["share_a"] is not None else "-",
                      f"{r['expected_a']:.1%}")
    console.print(table)
    if skipped:
        console.print(f"skipped: {', '.join(skipped)} (simple_switch_grpc not found)")
    (args.out / "steering_bench.json").write_text(json.dumps(
        {"overload": over, "shares": spread, "skipped": skipped}, indent=2) + "\n")
    _plot(over, args.out / "steering_bench.png")
    print(f"saved {args.out / 'steering_bench.json'} and {args.out / 'steering_bench.png'}")
    return 0


def _plot(rows: list[dict], path: Path) -> None:
    with figure(path, "Overload with and without meter splitting, same run") as ax:
        labels = [f"{r['target']}, {r['meter']}" for r in rows]
        ax.barh(labels, [r["answered_per_s"] for r in rows], color="tab:green")
        ax.set_xlabel("answered requests per second")


if __name__ == "__main__":
    sys.exit(main())
