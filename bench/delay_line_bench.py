"""How well the delay line (mininet_topos.delay_line) keeps a link's delay, and how many
frames per second its relay carries.

Two Mininet hosts, one link between them, in the same run: a plain veth (TCLink without
delay: the floor), the delay line at 0, 1 and 10 ms one way, and netem at 1 and 10 ms
where the kernel has it. For each: ``--pings`` pings 10 ms apart and the error of their
round trips against twice the configured delay (median, p99, max). Then UDP floods
through the delay line (64- and 1400-byte payloads, ``--seconds`` each, from one and from
``--senders`` Python processes, to one receiver): the frames per second that arrive, and
what share of the offered frames was lost. Prints a table and writes ``delay_line_bench.json``.

    .venv/bin/python -m bench.delay_line_bench [--pings 200] [--seconds 2] [--senders 2] [--out results]

Needs root and Mininet. The relay, the sender and the receiver share the machine's cores:
the rates are what this machine sustains with all three busy, not the relay alone.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
A_IP, B_IP, PORT = "10.9.1.1", "10.9.1.2", 9000

RECEIVER = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
s.bind(("0.0.0.0", {port}))
print("listening", flush=True)
s.settimeout(10)
s.recv(2048)
first = last = time.monotonic(); n = 1
s.settimeout(1.0)
try:
    while True:
        s.recv(2048); last = time.monotonic(); n += 1
except socket.timeout:
    pass
print(n, last - first, flush=True)
"""

SENDER = """
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
payload = bytes({size}); n = 0
end = time.monotonic() + {seconds}
while time.monotonic() < end:
    for _ in range(100):
        try:
            s.sendto(payload, ("{dst}", {port})); n += 1
        except OSError:
            pass
print(n, flush=True)
"""


@contextlib.contextmanager
def two_hosts(link_cls, **link) -> Iterator:
    """Hosts ``dla`` and ``dlb`` over one link of ``link_cls``; static ARP, no IPv6."""
    from mininet.net import Mininet
    net = Mininet(controller=None, build=False, autoSetMacs=True, waitConnected=False)
    a, b = net.addHost("dla", ip=f"{A_IP}/24"), net.addHost("dlb", ip=f"{B_IP}/24")
    net.addLink(a, b, cls=link_cls, **link)
    try:
        net.build()
        for host in (a, b):
            host.cmd("sysctl -qw net.ipv6.conf.all.disable_ipv6=1")
            host.cmd(f"ethtool -K {host.defaultIntf()} tx off")
        net.staticArp()
        yield net
    finally:
        net.stop()


def ping_errors(net, delay_ms: float, pings: int) -> dict:
    """Round-trip error against ``2 * delay_ms`` over ``pings`` pings, in ms."""
    out = net.get("dla").cmd(f"ping -n -c {pings} -i 0.01 -W 2 {B_IP}")
    rtts = np.array([float(t) for t in re.findall(r"time=([0-9.]+) ms", out)])
    err = rtts - 2 * delay_ms
    return {"pings": pings, "answered": len(rtts), "rtt_median_ms": float(np.median(rtts)),
            "error_median_ms": float(np.median(err)), "error_p99_ms": float(np.percentile(err, 99)),
            "error_max_ms": float(err.max()), "error_min_ms": float(err.min())}


def flood(net, size: int, seconds: float, senders: int) -> dict:
    """UDP datagrams of ``size`` bytes from dla to dlb, as fast as ``senders`` Python
    processes go."""
    receiver = net.get("dlb").popen([sys.executable, "-c", RECEIVER.format(port=PORT)], text=True)
    sender = f"{sys.executable} -c '{SENDER.format(size=size, seconds=seconds, dst=B_IP, port=PORT)}'"
    try:
        assert receiver.stdout.readline().startswith("listening")
        out = net.get("dla").cmd(" & ".join([sender] * senders) + " & wait")
        sent = sum(int(n) for n in re.findall(r"^(\d+)\s*$", out, re.MULTILINE))
        received, took = receiver.communicate(timeout=30)[0].split()
    finally:
        if receiver.poll() is None:
            receiver.kill()
    received, took = int(received), float(took)
    return {"payload_bytes": size, "senders": senders, "sent": sent, "received": received,
            "fps": received / took if took else 0.0, "lost_share": 1 - received / sent if sent else 0.0}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pings", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=2.0, help="length of each flood")
    ap.add_argument("--senders", type=int, default=2, help="sender processes per flood")
    ap.add_argument("--out", type=Path, default=Path("results"))
    args = ap.parse_args(argv)
    from mininet.link import TCLink
    from mininet.log import setLogLevel

    from mininet_topos.delay_line import DelayLineLink
    from mininet_topos.topos import netem_available

    setLogLevel("warning")
    logs = args.out / "delay_line_bench"
    cases = [("veth, no delay", TCLink, 0.0), *(("delay line", DelayLineLink, d) for d in (0.0, 1.0, 10.0))]
    if netem_available():
        cases += [("netem", TCLink, d) for d in (1.0, 10.0)]
    accuracy = []
    for name, cls, delay in cases:
        with two_hosts(cls, **(dict(delay=f"{delay}ms") if delay else {}),
                       **(dict(log_dir=logs) if cls is DelayLineLink else {})) as net:
            accuracy.append(dict(link=name, delay_ms=delay, **ping_errors(net, delay, args.pings)))
    with two_hosts(DelayLineLink, delay="0ms", log_dir=logs) as net:
        rates = [flood(net, size, args.seconds, n) for size in (64, 1400) for n in (1, args.senders)]

    console = Console()
    table = Table(title=f"Round trip against twice the one-way delay ({args.pings} pings, 10 ms apart)")
    for col in ("link", "one-way delay", "answered", "RTT median", "error median", "error p99", "error max"):
        table.add_column(col, justify="left" if col == "link" else "right")
    for r in accuracy:
        table.add_row(r["link"], f"{r['delay_ms']:g} ms", f"{r['answered']}/{r['pings']}",
                      f"{r['rtt_median_ms']:.3f} ms", f"{r['error_median_ms']:+.3f} ms",
                      f"{r['error_p99_ms']:+.3f} ms", f"{r['error_max_ms']:+.3f} ms")
    console.print(table)
    table = Table(title=f"UDP through the delay line at 0 ms ({args.seconds:g} s floods)")
    for col in ("payload", "senders", "sent", "received", "frames/s received", "lost"):
        table.add_column(col, justify="right")
    for r in rates:
        table.add_row(f"{r['payload_bytes']} B", str(r["senders"]), str(r["sent"]), str(r["received"]),
                      f"{r['fps']:,.0f}", f"{r['lost_share']:.1%}")
    console.print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / "delay_line_bench.json"
    out.write_text(json.dumps({"accuracy": accuracy, "throughput": rates}, indent=2) + "\n")
    print(f"saved {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
