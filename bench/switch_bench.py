"""Packets per second through the embedded switch and BMv2: in process and over veth pairs.

Programs: (a) plain Ethernet/IPv4 forwarding (tests/conformance/programs/basic_fwd.json)
and (b) the DCIA program (p4src/build/dcia.json) computing a 16x16 int8 dense layer
with ReLU; its outputs are checked bit for bit against dcia.arithmetic. For each it
measures `Switch.process` in this process, then whole switch processes set up over
P4Runtime with the same entries, dcia-switch and BMv2 simple_switch_grpc (where
installed), alternating, in the same run, each checked to forward the frame as
`Switch.process` does. Prints a table and the embedded switch's rate over BMv2's against
issue 10's targets, and writes the figures as JSON.

A switch process is measured over veth pairs: a sender process of its own in host 1's
namespace offers frames at a fixed rate, and the figure is the growth of the kernel's
transmit counter of the switch's port 2 over a window, so neither the sender's speed
(the table shows the rate it achieved under overload) nor a receiver's is measured. The
offered rate doubles from 1,000 frames/s until doubling it no longer adds 10% to what
the switch forwards (`process_rates`): a row gives the peak rate, and the rate with `--overload` frames/s
offered, each the median of `--repeats` fresh processes, the two switches alternating.

    .venv/bin/python -m bench.switch_bench [--seconds 2] [--overload 100000] [--repeats 3] [--no-veth] [--out results]

Over veth needs root (it creates namespaces and veth pairs and removes them after).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from embedded_switch.match import Exact, Lpm
from embedded_switch.switch import Switch

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger(__name__)

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


SENDER = """
import socket, sys, time
ifname, frame, rate, seconds = sys.argv[1], bytes.fromhex(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)  # protocol 0: it receives nothing
s.bind((ifname, 0))
send, sleep, clock = s.send, time.sleep, time.perf_counter
print("sending", flush=True)
sent, start = 0, clock()
while True:
    elapsed = clock() - start
    if elapsed >= seconds:
        break
    ahead = sent / rate - elapsed
    if ahead > 0:
        sleep(ahead)
    for _ in range(16):
        send(frame)
    sent += 16
print(sent / (clock() - start), flush=True)
"""
"""A paced sender, run in host 1's namespace: `rate` frames per second in bursts of 16."""


def tx_packets(ifname: str) -> int:
    """Frames transmitted on ``ifname`` (a switch port, in this namespace), the kernel's count."""
    return int(Path(f"/sys/class/net/{ifname}/statistics/tx_packets").read_text())


def window_pps(lab, frame: bytes, offer: float, seconds: float) -> tuple[float, float]:
    """Frames per second the switch on ``lab`` sends out of port 2 in ``seconds`` while host 1
    offers ``frame`` at ``offer`` per second: (forwarded, offered).

    The sender is a process of its own and the count is the kernel's (the switch's port 2
    transmit counter), so neither the sender's nor a receiver's speed is measured, as long
    as the offered rate stays above the forwarded one. The window opens 0.5 s after the
    sender starts, when the switch's receive queue is full.
    """
    warm = 0.5
    sender = subprocess.Popen(["ip", "netns", "exec", lab.ns(1), sys.executable, "-c", SENDER, lab.host_ifname(1),
                               frame.hex(), str(offer), str(seconds + warm + 0.5)],
                              stdout=subprocess.PIPE, text=True)
    try:
        if sender.stdout.readline().strip() != "sending":
            raise SystemExit("the bench's sender did not start")
        time.sleep(warm)
        n0, t0 = tx_packets(lab.switch_ifname(2)), time.perf_counter()
        time.sleep(seconds)
        n1, t1 = tx_packets(lab.switch_ifname(2)), time.perf_counter()
        offered = float(sender.communicate(timeout=seconds + 30)[0].strip())
    finally:
        if sender.poll() is None:
            sender.kill()
            sender.wait()
    return (n1 - n0) / (t1 - t0), offered


def process_rates(lab, frame: bytes, expected: bytes, top: float, seconds: float) -> dict:
    """The switch on ``lab`` at offered rates doubling from 1,000 frames/s, below ``top``,
    until doubling the offer no longer adds 10% to what it forwards, then at ``top`` (overload),
    one window (`window_pps`) each, after a check that it forwards ``frame`` as
    ``expected`` (what `Switch.process` gives): its peak rate, its rate under overload
    and the ladder [(offered, forwarded, offered as achieved)]."""
    h1, h2 = lab.host_socket(1), lab.host_socket(2)
    h2.drain()
    for _ in range(20):  # also warms up: the first frames through a fresh process are slow
        h1.send(frame)
        out = h2.receive_count(1, timeout=2.0)
        if out != [expected]:
            raise SystemExit(f"switch process forwarded {out[0].hex() if out else 'nothing'}, "
                             f"expected {expected.hex()}")
    h1.close(), h2.close()
    ladder, offer, last = [], 1000.0, 0.0
    while offer < top:
        pps, achieved = window_pps(lab, frame, offer, seconds)
        ladder.append((offer, pps, achieved))
        if pps < 1.1 * last:  # twice the offer, not 10% more forwarded: past the peak
            break
        offer, last = offer * 2, pps
    pps, achieved = window_pps(lab, frame, top, seconds)
    ladder.append((top, pps, achieved))
    return {"peak": max(f for _, f, _ in ladder), "overload": pps, "overload_offered": achieved, "ladder": ladder}


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


def switch_process(target: str, bmv2_json: Path, p4info: Path, writes: list, frame: bytes, expected: bytes,
                   top: float, seconds: float) -> dict:
    """A switch process (`embedded` dcia-switch or `bmv2` simple_switch_grpc) given the
    program and `writes` over P4Runtime, measured over veth pairs: `process_rates`."""
    import asyncio

    import finsy as fy

    from dcia.targets import SwitchConfig, SwitchProcess, free_tcp_port
    from tests.netlab import NetLab
    with NetLab("bproc", ports=2) as lab:
        config = SwitchConfig(ports={1: lab.switch_ifname(1), 2: lab.switch_ifname(2)},
                              grpc_addr=f"127.0.0.1:{free_tcp_port()}", log_level="error")
        with SwitchProcess(target, config) as proc:
            async def configure():
                opts = fy.SwitchOptions(p4info=p4info, p4blob=bmv2_json, device_id=1)
                async with fy.Switch("s1", config.grpc_addr, opts) as sw:
                    await sw.write(writes)

            asyncio.run(configure())
            return process_rates(lab, frame, expected, top, seconds)


LABELS = {"embedded": "embedded", "bmv2": "BMv2"}
TARGETS = {"plain forwarding": 1.0, "DCIA dense 16x16": 3.0}
"""Issue 10: the embedded switch process at least this many times BMv2's rate."""


def processes(dcia_json: Path, top: float, seconds: float, repeats: int) -> list[dict]:
    """Both switch processes on each program, with the same P4Runtime entries and frames,
    ``repeats`` fresh processes each, alternating between them; each row has the medians of
    their peak rates and of their rates under overload (`process_rates`)."""
    from dcia.targets import find_bmv2
    sw, fwd_frame, _ = setup_forwarding(FWD_JSON)
    [(_, fwd_out)] = sw.process(1, fwd_frame)
    cases = [("plain forwarding", FWD_JSON, forwarding_writes(), fwd_frame, fwd_out)]
    if dcia_json.exists():
        layer, dcia_frame, expected = dcia_case()
        sw, _, _ = setup_dcia(dcia_json)
        out = sw.process(1, dcia_frame)
        check_dcia(out, expected)
        cases.append(("DCIA dense 16x16", dcia_json, dcia_writes(layer), dcia_frame, out[0][1]))
    targets = ["embedded"] + (["bmv2"] if find_bmv2() is not None else [])
    rows = []
    for name, bmv2_json, writes, frame, out in cases:
        runs: dict[str, list[dict]] = {t: [] for t in targets}
        for _ in range(repeats):
            for target in targets:
                runs[target].append(switch_process(target, bmv2_json, bmv2_json.with_suffix(".p4info.txtpb"),
                                                   writes, frame, out, top, seconds))
        for target in targets:
            peaks = [r["peak"] for r in runs[target]]
            offered = min(r["overload_offered"] for r in runs[target])
            if offered < 1.2 * max(peaks):
                log.warning("%s, %s: the sender offered only %.0f frames/s; the rate may be the sender's",
                            name, target, offered)
            rows.append({"program": name, "mode": f"{LABELS[target]} process, P4Runtime, veth",
                         "pps": statistics.median(peaks), "min": min(peaks), "max": max(peaks),
                         "overload": statistics.median(r["overload"] for r in runs[target]),
                         "overload_offered_min": offered, "runs": runs[target]})
        if "bmv2" not in targets:
            rows.append({"program": name, "mode": f"{LABELS['bmv2']} process, P4Runtime, veth",
                         "skipped": "simple_switch_grpc not found"})
    return rows


def target_rows(rows: list[dict]) -> list[dict]:
    """The embedded switch process's rate over BMv2's, per program, against issue 10's targets."""
    out = []
    for program, target in TARGETS.items():
        pps = {r["mode"].split()[0].lower(): r["pps"] for r in rows if r["program"] == program and "pps" in r
               and r["mode"].endswith("process, P4Runtime, veth")}
        if "embedded" in pps and "bmv2" in pps:
            ratio = pps["embedded"] / pps["bmv2"]
            out.append({"program": program, "ratio": ratio, "target": target, "met": ratio >= target})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="seconds per figure (a window)")
    ap.add_argument("--overload", type=float, default=100_000,
                    help="the highest rate offered to a switch process, frames/s (above what either forwards)")
    ap.add_argument("--repeats", type=int, default=3, help="switch processes started per target and program")
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
        rows += processes(args.dcia_json, args.overload, args.seconds, args.repeats)
        rows.sort(key=lambda r: [name for name, _, _ in programs].index(r["program"]))
    table = Table(title=f"Packets per second ({args.seconds:g} s windows; switch processes: peak over offered "
                        f"rates, median of {args.repeats} processes, and at {args.overload:,.0f}/s offered)")
    for column in ("program", "mode", "packets/s", "min-max", "overloaded", "offered (least)"):
        table.add_column(column, justify="left" if column in ("program", "mode") else "right")
    for r in rows:
        figure = f"{r['pps']:,.0f}" if "pps" in r else f"skipped: {r['skipped']}"
        spread = f"{r['min']:,.0f}-{r['max']:,.0f}" if "min" in r else ""
        overload = f"{r['overload']:,.0f}" if "overload" in r else ""
        offered = f"{r['overload_offered_min']:,.0f}" if "overload_offered_min" in r else ""
        table.add_row(r["program"], r["mode"], figure, spread, overload, offered)
    console = Console(width=120)
    console.print(table)
    targets = target_rows(rows)
    for t in targets:
        console.print(f"{t['program']}: embedded process {t['ratio']:.2f}x BMv2's rate "
                      f"(target at least {t['target']:g}x): {'met' if t['met'] else 'NOT met'}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "switch_bench.json").write_text(json.dumps({"rows": rows, "targets": targets}, indent=2) + "\n")
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
