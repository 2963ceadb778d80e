"""Link delay and loss without netem: a userspace delay line in the middle of a Mininet link.

Some kernels (this machine's, some users' VMs) have no ``sch_netem``: ``tc`` can limit a
link's rate (tbf) but not delay it. ``DelayLineLink`` is a ``TCLink`` whose two ends are
not one veth pair but two, with a relay process between them:

    node1-intf <-veth-> A  [relay: A -> B and B -> A, each frame after the delay]  B <-veth-> node2-intf

A and B, the middle ends (``dl-`` and a hash: unique on the machine; their alias names the
node interface they face), sit in the root namespace, up, without IPv6 or ARP (the root namespace's own stack stays
off the link), TX checksum offload off. The node ends are TCIntfs as on any TCLink: the
rate limit (tbf) stays there, and their TX checksum offload is off too, since a frame the
relay copies must carry its finished checksums, as on a wire.

The relay (``python -m mininet_topos.delay_line A B --delay-ms D --loss-pct L --seed S``,
started with the project's interpreter) reads each middle end with an AF_PACKET socket
opened as the embedded switch opens its ports (``open_port``, with embedded_switch.ports'
constants and ``restore_vlan_tag``: only that interface's frames, VLAN tags put back, its
own transmissions ignored) and sends each
frame out of the other end once ``delay`` has passed since it read it, or drops it with
probability ``loss`` (a seeded RNG: a run is repeatable). (Not since the kernel's receive
timestamp: SO_TIMESTAMPNS on these veths gave stale stamps, up to a frame's gap early.) The delay is constant, so the frames of one direction leave in the order
they came: a queue per direction, no reordering. One direction is delayed and lossy
once, as netem on both ends of a TCLink makes it.

The relay dies with the process that built the link (a parent-death signal), stops when
the link is deleted (``delete``, which ``Mininet.stop`` calls through ``Link.stop``) or
when its interfaces vanish, and a relay that died is reported by ``lost()``, not left a
silently dead link.

    net.addLink(h1, h2, cls=DelayLineLink, delay="10ms", loss=1, bw=100, use_tbf=True,
                log_dir="logs")
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import ctypes
import json
import logging
import os
import random
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from mininet.link import TCLink

from dcia.errors import DciaError
from dcia.targets import die_with_parent
from embedded_switch.ports import (AUXDATA_SPACE, ETH_P_ALL, MAX_FRAME, PACKET_ADD_MEMBERSHIP,
                                   PACKET_AUXDATA, PACKET_IGNORE_OUTGOING, PACKET_MR_PROMISC,
                                   PACKET_OUTGOING, SOL_PACKET, restore_vlan_tag)

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent
PR_SET_TIMERSLACK = 29
REALTIME_PRIORITY = 1
DRAIN = 64
"""Frames read from one socket before the relay looks at the clock again."""
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0


class DelayLineError(DciaError):
    """A delay line could not be built or its relay did not start."""


def parse_delay(value: str | float | None) -> float:
    """A link delay as Mininet and tc write it (``"10ms"``, ``"250us"``, ``"1s"``; a bare
    number is milliseconds), in seconds.

    >>> parse_delay("10ms"), parse_delay("250us"), parse_delay(2), parse_delay(None)
    (0.01, 0.00025, 0.002, 0.0)
    """
    if value is None:
        return 0.0
    if isinstance(value, (int, float)):
        return float(value) / 1e3
    match = re.fullmatch(r"\s*([0-9.]+)\s*(us|usec|ms|msec|s|sec)?\s*", value)
    if not match:
        raise DelayLineError(f"link delay {value!r} is not a duration like '10ms' or '250us'")
    scale = {"us": 1e-6, "usec": 1e-6, "s": 1.0, "sec": 1.0}.get(match[2] or "ms", 1e-3)
    return float(match[1]) * scale


def middle_name(node_intf: str, node_pid: int) -> str:
    """The middle end facing ``node_intf`` of the node whose shell is process ``node_pid``:
    ``dl`` and a hash of both. Unique on the machine, so two networks that both have an
    ``h1-eth0`` (in their own namespaces) do not meet in the root namespace; the middle
    end's alias (``ip link``) names the interface it faces.

    >>> middle_name("s1-eth2", 4242)
    'dl-4c7101bc'
    """
    return f"dl-{zlib.crc32(f'{node_pid}/{node_intf}'.encode()):08x}"


# ------------------------------------------------------------------ the relay --

@dataclass
class Direction:
    """One direction of the line: frames read from ``rx``, held, sent on ``tx``."""

    name: str
    rx: socket.socket
    tx: socket.socket
    held: collections.deque = field(default_factory=collections.deque)
    """(departure time, frame), in arrival order; departures grow (the delay is constant)."""
    stats: collections.Counter = field(default_factory=collections.Counter)


class Relay:
    """Forwards every frame between two interfaces after ``delay_s``, losing each with
    probability ``loss`` (0..1) drawn from ``random.Random(seed)``."""

    def __init__(self, a: str, b: str, *, delay_s: float, loss: float, seed: int):
        self.interfaces = (a, b)
        self.delay_s = delay_s
        self.loss = loss
        self.rng = random.Random(seed)
        self.directions: list[Direction] = []

    def open(self) -> None:
        a, b = (open_port(name) for name in self.interfaces)
        self.directions = [Direction(f"{self.interfaces[0]}>{self.interfaces[1]}", a, b),
                           Direction(f"{self.interfaces[1]}>{self.interfaces[0]}", b, a)]

    def close(self) -> None:
        for d in self.directions:
            d.rx.close()

    def stats(self) -> dict[str, dict[str, int]]:
        return {d.name: dict(d.stats) for d in self.directions}

    def run(self) -> None:
        """Relay until an interface vanishes (the link was deleted) or a signal ends it."""
        by_fd = {d.rx.fileno(): d for d in self.directions}
        while True:
            due = self._send_due()
            timeout = None if due is None else max(0.0, due - time.monotonic())
            readable, _, _ = select.select(list(by_fd), [], [], timeout)
            for fd in readable:
                if not self._receive(by_fd[fd]):
                    return

    def _receive(self, d: Direction) -> bool:
        """Read what ``d.rx`` holds; False when its interface is gone."""
        for _ in range(DRAIN):
            try:
                frame, ancdata, _flags, addr = d.rx.recvmsg(MAX_FRAME, AUXDATA_SPACE)
            except (BlockingIOError, InterruptedError):
                return True
            except OSError as exc:  # ENETDOWN: the interface went down or away
                d.stats["rx_error"] += 1
                gone = [i for i in self.interfaces if not os.path.exists(f"/sys/class/net/{i}")]
                if gone:
                    log.info("%s is gone: the link was deleted", ", ".join(gone))
                    return False
                log.warning("receive on %s failed: %s", d.name, exc)
                return True
            if len(addr) > 2 and addr[2] == PACKET_OUTGOING:
                continue
            if self.loss and self.rng.random() < self.loss:
                d.stats["lost"] += 1
                continue
            d.held.append((time.monotonic() + self.delay_s, restore_vlan_tag(frame, ancdata)))
        return True

    def _send_due(self) -> float | None:
        """Send every frame whose time has come; the next departure, if any frame waits."""
        now = time.monotonic()
        for d in self.directions:
            while d.held and d.held[0][0] <= now:
                _, frame = d.held.popleft()
                try:
                    d.tx.send(frame)
                    d.stats["forwarded"] += 1
                except OSError as exc:  # ENOBUFS: the receiving end's backlog is full
                    d.stats["tx_error"] += 1
                    log.debug("send on %s failed: %s", d.name, exc)
        waiting = [d.held[0][0] for d in self.directions if d.held]
        return min(waiting) if waiting else None


def open_port(ifname: str) -> socket.socket:
    """A raw socket on ``ifname`` only, opened as libpcap (and embedded_switch.ports) opens
    one: created with protocol 0 it receives nothing, not even from other interfaces, until
    the last bind gives it ETH_P_ALL on this interface; with PACKET_AUXDATA, for the VLAN
    tag (``restore_vlan_tag``), and without its own transmissions where the kernel can.

    (The embedded switch's opener, ``PortSet._open``, is private and is becoming a receive
    ring's: the relay keeps to the module's public names.)"""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        s.bind((ifname, 0))
        mreq = struct.pack("iHH8s", socket.if_nametoindex(ifname), PACKET_MR_PROMISC, 0, b"")
        s.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
        s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
        with contextlib.suppress(OSError):  # older kernels: PACKET_OUTGOING is checked per frame
            s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.setblocking(False)
        s.bind((ifname, ETH_P_ALL))
    except OSError:
        s.close()
        raise
    return s


def _punctual() -> None:
    """Wake up on time. The kernel may defer a timer by its slack (50 µs): none here. And on
    a busy machine (the testbed's switches and hosts share a few cores) a relay that waits
    its turn adds the wait to the delay: the relay takes the lowest real-time priority
    (SCHED_FIFO 1), ahead of every ordinary process, as netem's work in the kernel is. It
    sleeps between frames, and the kernel's real-time throttling leaves the others 5 % of
    a core should it ever spin. (With the scheduler's default, the round trip's p99 error at
    10 ms was 5.6 ms on a loaded 2-core machine; with SCHED_FIFO, 0.6 ms.)"""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0)
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(REALTIME_PRIORITY))
    except OSError as exc:  # no CAP_SYS_NICE, or a cgroup without real-time time
        log.warning("no real-time priority (%s): the delay grows when the machine is busy", exc)


# ------------------------------------------------------------------ the link --

class DelayLineLink(TCLink):
    """A TCLink whose delay and loss come from a relay process, not netem (module docstring).

    ``delay`` (``"10ms"``) and ``loss`` (percent) are the one-way values of each direction,
    as for TCLink; ``bw`` and the other TCIntf options shape the node ends as usual.
    ``seed``: the loss RNG's (default: from the interface names, so a run is repeatable);
    ``log_dir``: where the relay logs (``delay-line-<intf1>.log``)."""

    def __init__(self, node1, node2, port1=None, port2=None, intfName1=None, intfName2=None,  # noqa: N803
                 *, delay: str | float | None = None, loss: float | None = None,
                 seed: int | None = None, log_dir: str | Path = "logs",
                 ready_timeout: float = READY_TIMEOUT, **params):
        self.delay_s = parse_delay(delay)
        self.loss_pct = float(loss or 0)
        if not 0 <= self.loss_pct <= 100:
            raise DelayLineError(f"link loss must be a percentage in 0..100, not {loss}")
        self.middle: tuple[str, ...] = ()
        self.relay: subprocess.Popen | None = None
        params.update(txo=False)  # the relay copies frames: their checksums must be finished
        try:
            super().__init__(node1, node2, port1, port2, intfName1, intfName2, **params)
            self.log_file = Path(log_dir) / f"delay-line-{self.intf1.name}.log"
            self._start_relay(zlib.crc32(f"{self.intf1.name} {self.intf2.name}".encode())
                              if seed is None else seed, ready_timeout)
        except BaseException:
            self.delete()
            raise

    def makeIntfPair(self, intfname1, intfname2, addr1=None, addr2=None,  # noqa: N802 (Mininet's)
                     node1=None, node2=None, deleteIntfs=True):  # noqa: N803
        """Two veth pairs, ``intfname1``–A and B–``intfname2``, A and B in the root namespace."""
        if node1 is None or node2 is None:
            raise DelayLineError("DelayLineLink needs Mininet's fast link set-up (fast=True)")
        self.middle = (middle_name(intfname1, node1.pid), middle_name(intfname2, node2.pid))
        for middle, name, addr, node in zip(self.middle, (intfname1, intfname2), (addr1, addr2),
                                            (node1, node2)):
            _make_middle_pair(middle, name, addr, node.pid)

    def _start_relay(self, seed: int, timeout: float) -> None:
        """Start the relay and wait (at most ``timeout`` s) until it has opened both ends."""
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "mininet_topos.delay_line", *self.middle,
                "--delay-ms", repr(self.delay_s * 1e3), "--loss-pct", repr(self.loss_pct),
                "--seed", str(seed)]
        with open(self.log_file, "wb") as err:
            self.relay = subprocess.Popen(die_with_parent(argv), cwd=str(REPO), stdin=subprocess.DEVNULL,
                                          stdout=subprocess.PIPE, stderr=err)
        ready, _, _ = select.select([self.relay.stdout], [], [], timeout)
        line = self.relay.stdout.readline().decode() if ready else ""
        if not line.startswith("ready"):
            if ready and not line:  # end of its output: the relay is exiting
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.relay.wait(STOP_TIMEOUT)
            code = self.relay.poll()
            why = f"exited with code {code}" if code is not None else f"not ready within {timeout:.0f} s"
            _stop(self.relay)
            self.relay.stdout.close()
            self.relay = None
            raise DelayLineError(f"the delay line relay of {self} did not start ({why}): "
                                 f"{self.log_file.read_text()[-800:] or 'no output'}")
        log.info("%s: delay line, %.3f ms, %.2f%% loss (relay pid %d)", self,
                 self.delay_s * 1e3, self.loss_pct, self.relay.pid)

    def lost(self) -> str | None:
        """Why the relay is gone, if it exited while the link was in use."""
        if self.relay is None or self.relay.poll() is None:
            return None
        return (f"the delay line relay (pid {self.relay.pid}) exited with code "
                f"{self.relay.returncode}; see {self.log_file}")

    def stop_relay(self) -> None:
        """Stop the relay (idempotent); a relay that had died is logged as an error."""
        if self.relay is None:
            return
        if reason := self.lost():
            log.error("%s: %s", self, reason)
        _stop(self.relay)
        self.relay.stdout.close()
        self.relay = None

    def delete(self) -> None:
        self.stop_relay()
        if getattr(self, "intf1", None) is not None:  # a half-built link has none yet
            super().delete()
        for middle in self.middle:  # gone with their peers; this removes what a failed start left
            if os.path.exists(f"/sys/class/net/{middle}"):
                subprocess.run(["ip", "link", "del", middle], capture_output=True)


def _make_middle_pair(middle: str, node_intf: str, addr: str | None, netns: int) -> None:
    """A veth pair: ``middle`` in the root namespace, up, silent; ``node_intf`` (MAC ``addr``)
    in the namespace of process ``netns``."""
    peer = ["name", node_intf] + (["address", addr] if addr else [])
    for argv in (["ip", "link", "add", "name", middle, "type", "veth", "peer", *peer, "netns", str(netns)],
                 ["sysctl", "-qw", f"net.ipv6.conf.{middle}.disable_ipv6=1"],
                 ["ethtool", "-K", middle, "tx", "off"],
                 ["ip", "link", "set", middle, "alias", f"delay line to {node_intf}", "arp", "off", "up"]):
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode:
            raise DelayLineError(f"{' '.join(argv)} failed: {done.stderr.strip()}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_TIMEOUT)


# ------------------------------------------------------------------ command line --

def main(argv: list[str] | None = None) -> int:
    """The relay of one delay line: prints ``ready`` once both ends are open, relays until
    SIGTERM or until an end vanishes, then logs its counters (JSON) to stderr."""
    parser = argparse.ArgumentParser(prog="python -m mininet_topos.delay_line",
                                     description="relay frames between two interfaces after a delay")
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="one-way delay of each direction")
    parser.add_argument("--loss-pct", type=float, default=0.0, help="loss of each direction, percent")
    parser.add_argument("--seed", type=int, default=0, help="the loss RNG's seed")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s delay line: %(message)s")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    _punctual()
    relay = Relay(args.a, args.b, delay_s=args.delay_ms / 1e3, loss=args.loss_pct / 100, seed=args.seed)
    relay.open()
    try:
        print("ready", flush=True)
        log.info("%s <-> %s: %.3f ms, %.2f%% loss", args.a, args.b, args.delay_ms, args.loss_pct)
        relay.run()
    finally:
        log.info("counters %s", json.dumps(relay.stats()))
        relay.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
