"""Packets per second through the embedded switch: in process and over veth pairs.

Programs: (a) plain Ethernet/IPv4 forwarding (tests/conformance/programs/basic_fwd.json)
and (b) the DCIA program (p4src/build/dcia.json) computing a 16x16 int8 dense layer
with ReLU; its outputs are checked bit for bit against dcia.arithmetic. For both it also
compares whole switch processes set up over P4Runtime with the same entries: dcia-switch
against BMv2 simple_switch_grpc (where installed), in the same run. Prints a table and
writes the figures as JSON.

    .venv/bin/python -m bench.switch_bench [--seconds 3] [--no-veth] [--out results]

Over veth needs root (it creates namespaces and veth pairs and removes them after).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import select
import sys
import threading
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from embedded_switch.match import Exact, Lpm
from embedded_switch.ports import PACKET_OUTGOING, PortSet
from embedded_switch.switch import Switch

ROOT = Path(__file__).resolve().parents[1]

FWD_JSON = ROOT / "tests/conformance/programs/basic_fwd.json"
DCIA_JSON = ROOT / "p4src/build/dcia.json"
H1 = dict(mac="08:00:00:00:01:11", ip="10.0.1.1")
H2 = dict(mac="08:00:00:00:02:22", ip="10.0.2.2")


def _ip(s: str) -> int:
    return int.from_bytes(bytes(int(x) for x in s.split(".")), "big")


def _mac(s: str) -> int:
    return int(s.replace(":", ""), 16)


def setup_forwarding(path: Path) -> tuple[Switch, bytes, None]:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    sw = Switch()
    sw.load_pipeline(path.read_bytes())
    sw.table_add("FwdIngress.ipv4_lpm", [Lpm(_ip(H2["ip"]) & 0xFFFFFF00, 24)], "FwdIngress.route",
                 [_mac(H2["mac"]), 2])
    frame = bytes(Ether(src=H1["mac"], dst="08:00:00:00:01:00") / IP(src=H1["ip"], dst=H2["ip"]) /
                  UDP(sport=1234, dport=5678) / (b"x" * 32))
    return sw, frame, None


def dcia_case():
    """A 16x16 int8 dense layer with ReLU, one tensor packet for it and the expected output."""
    from dcia.arithmetic import Activation
    from dcia.layers import DenseLayer
    from dcia.wire import tensor_packet
    rng = random.Random(5)
    n = 16
    layer = DenseLayer(weights=[[rng.randint(-128, 127) for _ in range(n)] for _ in range(n)],
                       bias=[rng.randint(-5000, 5000) for _ in range(n)],
                       mult=[rng.randint(1, 1 << 14) for _ in range(n)],
                       shift=[rng.randint(14, 20) for _ in range(n)], act=Activation.RELU)
    x = [rng.randint(-128, 127) for _ in range(n)]
    frame = bytes(tensor_packet(src_mac=H1["mac"], dst_mac="08:00:00:00:01:00", src_ip=H1["ip"],
                                dst_ip=H2["ip"], model_id=7, model_version=1, request_id=1, elems=x))
    return layer, frame, layer.forward(x)


def setup_dcia(path: Path) -> tuple[Switch, bytes, list[int]]:
    layer, frame, expected = dcia_case()
    sw = Switch()
    sw.load_pipeline(path.read_bytes())
    key = [Exact(7), Exact(1), Exact(0)]
    sw.table_add("DciaIngress.layers", key, "DciaIngress.dense_layer", [layer.n_in, layer.n_out, int(layer.act), 0])
    for j, row in enumerate(layer.weights):
        w = int.from_bytes(bytes(v & 0xFF for v in row), "big")
        sw.table_add(f"DciaIngress.dense_{j}", key, f"DciaIngress.dense_neuron_{j}",
                     [w, layer.bias[j] & 0xFFFFFFFF, layer.mult[j], layer.shift[j]])
    sw.table_add("DciaIngress.ipv4_lpm", [Lpm(_ip(H2["ip"]) & 0xFFFFFF00, 24)], "DciaIngress.ipv4_forward",
                 [_mac(H2["mac"]), 2])
    return sw, frame, expected


def check_dcia(out: list[tuple[int, bytes]], expected: list[int]) -> None:
    from dcia.wire import DCIA
    from scapy.layers.l2 import Ether
    [(port, data)] = out
    got = [v - 256 if v > 127 else v for v in bytes(Ether(data)[DCIA].elems)]
    if port != 2 or got != expected:
        raise SystemExit(f"DCIA output differs from dcia.arithmetic: port {port}, {got} != {expected}")


def in_process(sw: Switch, frame: bytes, seconds: float) -> float:
    n, start = 0, time.perf_counter()
    while True:
        for _ in range(20):
            sw.process(1, frame)
        n += 20
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return n / elapsed


def closed_loop_pps(h1, h2, frame: bytes, seconds: float, in_flight: int = 32) -> float:
    """Frames per second delivered from host 1 to host 2 with at most `in_flight` outstanding."""
    received = 0
    stop = threading.Event()
    window = threading.Semaphore(in_flight)

    def receiver():
        nonlocal received
        sock = h2.sock
        while not stop.is_set():
            if not select.select([sock], [], [], 0.05)[0]:
                continue
            _, addr = sock.recvfrom(65535)
            if addr[2] != PACKET_OUTGOING:
                received += 1
                window.release()

    h1.drain(), h2.drain()
    t = threading.Thread(target=receiver, daemon=True)
    t.start()
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        if window.acquire(timeout=0.5):
            h1.send(frame)
        else:
            window = threading.Semaphore(in_flight)  # frames were lost: open the window again
    elapsed = time.perf_counter() - start
    time.sleep(0.2)
    stop.set()
    t.join()
    return received / elapsed


def over_veth(sw: Switch, frame: bytes, seconds: float) -> float:
    """The switch in this process on veth pairs (PortSet), frames from namespaces."""
    from tests.netlab import NetLab
    with NetLab("bench", ports=2) as lab:
        ports = PortSet(sw, {1: lab.switch_ifname(1), 2: lab.switch_ifname(2)})
        ports.start()
        try:
            return closed_loop_pps(lab.host_socket(1), lab.host_socket(2), frame, seconds)
        finally:
            ports.stop()


def forwarding_writes() -> list:
    """The P4Runtime entries of `setup_forwarding`: H2's /24 routed to port 2."""
    import finsy as fy
    return [+fy.P4TableEntry("FwdIngress.ipv4_lpm", match=fy.P4TableMatch({"hdr.ipv4.dstAddr": "10.0.2.0/24"}),
                             action=fy.P4TableAction("FwdIngress.route", dst_mac=_mac(H2["mac"]), port=2))]


def dcia_writes(layer) -> list:
    """The P4Runtime entries of `setup_dcia`: the dense layer and H2's route."""
    from controller import entries
    return ([+e for e in entries.dense_entries(layer, model_id=7, version=1, index=0)]
            + [+entries.route_entry(prefix="10.0.2.0/24", port=2, dst_mac=H2["mac"])])


def switch_process(target: str, bmv2_json: Path, p4info: Path, writes: list, frame: bytes, seconds: float) -> float:
    """A switch process (`embedded` dcia-switch or `bmv2` simple_switch_grpc) given the
    program and `writes` over P4Runtime, measured over veth pairs."""
    import asyncio

    import finsy as fy

    from dcia.targets import SwitchConfig, SwitchProcess, free_tcp_port
    from tests.netlab import NetLab
    with NetLab("bproc", ports=2) as lab:
        config = SwitchConfig(ports={1: lab.switch_ifname(1), 2: lab.switch_ifname(2)},
                              grpc_addr=f"127.0.0.1:{free_tcp_port()}", log_level="error")
        with SwitchProcess(target, config):
            async def configure():
                opts = fy.SwitchOptions(p4info=p4info, p4blob=bmv2_json, device_id=1)
                async with fy.Switch("s1", config.grpc_addr, opts) as sw:
                    await sw.write(writes)

            asyncio.run(configure())
            return closed_loop_pps(lab.host_socket(1), lab.host_socket(2), frame, seconds)


def processes(seconds: float, dcia_json: Path) -> list[dict]:
    """Both switch processes on each program, with the same P4Runtime entries and frames."""
    from dcia.targets import find_bmv2
    _, fwd_frame, _ = setup_forwarding(FWD_JSON)
    layer, dcia_frame, _ = dcia_case()
    cases = [("plain forwarding", FWD_JSON, FWD_JSON.with_suffix(".p4info.txtpb"), forwarding_writes(), fwd_frame)]
    if dcia_json.exists():
        cases.append(("DCIA dense 16x16", dcia_json, dcia_json.with_suffix(".p4info.txtpb"), dcia_writes(layer),
                      dcia_frame))
    rows = []
    for name, bmv2_json, p4info, writes, frame in cases:
        for target in ("embedded", "bmv2"):
            mode = f"{target} process, P4Runtime, veth"
            if target == "bmv2" and find_bmv2() is None:
                rows.append({"program": name, "mode": mode, "skipped": "simple_switch_grpc not found"})
                continue
            rows.append({"program": name, "mode": mode,
                         "pps": switch_process(target, bmv2_json, p4info, writes, frame, seconds)})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--no-veth", action="store_true", help="skip the measurements over veth pairs")
    ap.add_argument("--out", type=Path, default=Path("results"))
    ap.add_argument("--dcia-json", type=Path, default=DCIA_JSON, help="the compiled DCIA program")
    args = ap.parse_args(argv)
    veth = not args.no_veth and os.geteuid() == 0
    rows = []
    programs = (("plain forwarding", FWD_JSON, setup_forwarding),
                ("DCIA dense 16x16", args.dcia_json, setup_dcia))
    for name, path, setup in programs:
        if not path.exists():
            rows.append({"program": name, "mode": "-", "skipped": f"{path} missing (compile it with p4c)"})
            continue
        sw, frame, expected = setup(path)
        if expected is not None:
            check_dcia(sw.process(1, frame), expected)
        rows.append({"program": name, "mode": "Switch.process", "pps": in_process(sw, frame, args.seconds)})
        if veth:
            rows.append({"program": name, "mode": "PortSet over veth", "pps": over_veth(sw, frame, args.seconds)})
    if veth:
        rows += processes(args.seconds, args.dcia_json)
        rows.sort(key=lambda r: [name for name, _, _ in programs].index(r["program"]))
    table = Table(title=f"Packets per second ({args.seconds:g} s per figure)")
    for column in ("program", "mode", "packets/s"):
        table.add_column(column, justify="right" if column == "packets/s" else "left")
    for r in rows:
        figure = f"{r['pps']:,.0f}" if "pps" in r else f"skipped: {r['skipped']}"
        table.add_row(r["program"], r["mode"], figure)
    Console().print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "switch_bench.json").write_text(json.dumps(rows, indent=2) + "\n")
    _plot([r for r in rows if "pps" in r], args.out / "switch_bench.png")
    print(f"saved {args.out / 'switch_bench.json'} and {args.out / 'switch_bench.png'}")
    return 0


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    labels = [f"{r['program']}\n{r['mode']}" for r in rows]
    ax.barh(labels, [r["pps"] for r in rows], color="tab:blue")
    ax.set_xlabel("packets per second")
    ax.tick_params(axis="y", labelsize=7)
    ax.set_title("Switch packet rates, same run")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    sys.exit(main())
