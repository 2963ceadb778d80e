"""A switch process running programs/selector.p4 on veth ports, programmed over
P4Runtime, and flows of IPv4/UDP frames through it.

Frames enter port 1 from host 1; the `SelIngress.lb` table sends those for `DST` to a
member of an action selector group, which forwards them out of its port with its own
source MAC address (`member_mac`). A receiving thread records every frame the hosts
of the other ports get, with the time it arrived, so that a test can tell which member
took each frame, and when.

    with SelectorSwitch("embedded", tmp_path) as sw:
        sw.client.write(*sw.members({1: 2, 2: 3}), +sw.group(1, {1: 3, 2: 1}), +sw.entry(1))
        taken = sw.send(frames(flows(2000)))      # frame index -> (port, member id)
"""
from __future__ import annotations

import contextlib
import errno
import random
import select
import socket
import struct
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import finsy as fy
import pytest
from finsy.proto import p4r

from dcia.targets import SwitchConfig, SwitchProcess, TargetError, free_tcp_port
from tests.conformance.loader import PROGRAMS
from tests.netlab import PACKET_OUTGOING, NetLab
from tests.p4rt_client import CPU_PORT, DEVICE_ID, Client

P4INFO = PROGRAMS / "selector.p4info.txtpb"
BMV2_JSON = PROGRAMS / "selector.json"
LB = "SelIngress.lb"
SELECTOR = "SelIngress.lb_sel"
FORWARD = "SelIngress.forward"
DST = "10.0.0.1"
PORTS = 4
SO_RCVBUFFORCE = 33
UDP_PAYLOAD = 42  # Ethernet 14 + IPv4 20 + UDP 8: where the frame's index starts


def member_mac(member_id: int) -> int:
    """The source MAC address member `member_id` stamps on the frames it forwards."""
    return 0x02_00_00_00_00_00 | member_id


def flows(count: int, seed: int = 11) -> list[tuple[str, int]]:
    """`count` distinct (source address, source port) pairs, drawn as real flows would
    be: crc16 is linear, so addresses and ports that count up together would fill only
    part of its output's low bits."""
    rng = random.Random(seed)
    seen: set[tuple[str, int]] = set()
    while len(seen) < count:
        seen.add((f"10.1.{rng.randrange(256)}.{rng.randrange(1, 255)}", rng.randrange(1024, 65536)))
    return sorted(seen)


def frame(flow: tuple[str, int], index: int) -> bytes:
    """An IPv4/UDP frame of `flow` for `DST`, carrying `index` as its payload."""
    src, sport = flow
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 32, 0, 0, 64, 17, 0,
                     socket.inet_aton(src), socket.inet_aton(DST))
    udp = struct.pack("!HHHH", sport, 4791, 12, 0)
    eth = bytes.fromhex("020000000001" "020000000099" "0800")
    return eth + ip + udp + struct.pack("!I", index)


def frames(flow_list: list[tuple[str, int]]) -> list[bytes]:
    return [frame(f, i) for i, f in enumerate(flow_list)]


@dataclass
class Arrival:
    at: float
    port: int
    index: int
    member: int


@dataclass
class Receiver:
    """A thread that records every frame for `DST` arriving at the hosts' sockets."""

    socks: dict[int, socket.socket]
    arrivals: list[Arrival] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Receiver:
        self._thread = threading.Thread(target=self._run, name="selector-rx", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        by_sock = {s: p for p, s in self.socks.items()}
        dst = socket.inet_aton(DST)
        while not self._stop.is_set():
            ready, _, _ = select.select(list(by_sock), [], [], 0.05)
            for s in ready:
                try:
                    data, addr = s.recvfrom(65535)
                except OSError as exc:  # ENETDOWN once when the host's link goes down
                    if exc.errno not in (errno.ENETDOWN, errno.ENXIO):
                        raise
                    continue
                if addr[2] == PACKET_OUTGOING or len(data) < UDP_PAYLOAD + 4 or data[30:34] != dst:
                    continue
                self.arrivals.append(Arrival(time.monotonic(), by_sock[s],
                                             struct.unpack_from("!I", data, UDP_PAYLOAD)[0],
                                             int.from_bytes(data[6:12], "big") & 0xFF))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


class SelectorSwitch:
    """`target` ("embedded" or "bmv2") started on a NetLab of `PORTS` ports with no
    program, selector.p4 pushed by a primary controller (`client`)."""

    def __init__(self, target: str, tmp_path: Path):
        self.target = target
        self.tmp_path = tmp_path
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> SelectorSwitch:
        if not (P4INFO.exists() and BMV2_JSON.exists()):
            pytest.fail("selector.p4 is not compiled: run tests/conformance/compile_programs.sh selector")
        self.tmp_path.mkdir(parents=True, exist_ok=True)
        try:
            self.lab = self._stack.enter_context(NetLab("sel", ports=PORTS))
            config = SwitchConfig(ports={p: self.lab.switch_ifname(p) for p in range(1, PORTS + 1)},
                                  grpc_addr=f"127.0.0.1:{free_tcp_port()}", device_id=DEVICE_ID,
                                  cpu_port=CPU_PORT, log_level="error",
                                  log_file=self.tmp_path / f"{self.target}.log")
            self.process = SwitchProcess(self.target, config,
                                         stdout_path=self.tmp_path / f"{self.target}.out")
            try:
                self._stack.enter_context(self.process)
            except TargetError as exc:
                pytest.fail(str(exc))
            self.client = Client(int(config.grpc_addr.rsplit(":", 1)[1]), P4INFO, BMV2_JSON)
            self._stack.callback(self.client.close)
            self.client.connect(election_id=1).next("arbitration")
            self.client.set_pipeline()
            self.hosts = {p: self.lab.host_socket(p) for p in range(1, PORTS + 1)}
            for h in self.hosts.values():
                h.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    # -- P4Runtime
    def members(self, ports: dict[int, int]) -> list:
        """INSERTs of members {member id: port}, each forwarding out of its port."""
        return [+fy.P4ActionProfileMember(SELECTOR, member_id=m, action=self.forward(m, port))
                for m, port in ports.items()]

    @staticmethod
    def forward(member_id: int, port: int) -> fy.P4TableAction:
        return fy.P4TableAction(FORWARD, port=port, smac=member_mac(member_id))

    @staticmethod
    def group(group_id: int, weights: dict[int, int], *, max_size: int = 0,
              watch: dict[int, int] | None = None) -> p4r.Update:
        """An INSERT of group `group_id`, members {id: weight}; `watch` {id: port} sets
        their watch ports (as `watch_port` bytes)."""
        group = fy.P4ActionProfileGroup(
            SELECTOR, group_id=group_id, max_size=max_size,
            members=[fy.P4Member(m, weight=(w, watch[m]) if watch and m in watch else w)
                     for m, w in weights.items()])
        return +group

    @staticmethod
    def entry(group_id: int) -> fy.P4TableEntry:
        return fy.P4TableEntry(LB, match=fy.P4TableMatch({"hdr.ipv4.dstAddr": DST}),
                               action=fy.P4IndirectAction(group_id=group_id))

    # -- traffic
    def receiver(self) -> Receiver:
        return Receiver({p: h.sock for p, h in self.hosts.items() if p != 1}).start()

    def send(self, batch: list[bytes], *, burst: int = 10, pause: float = 0.01,
             quiet: float = 1.0, rounds: int = 3) -> dict[int, tuple[int, int]]:
        """Send `batch` into port 1 (paced), wait until as many frames came out (or none
        for `quiet` seconds): frame index -> (port, member) of each frame that came out.

        The pace, `burst` frames every `pause` seconds, is one BMv2 keeps up with here:
        with bursts of 50 it dropped the last ten or so of each (measured, 2 cores). On a
        loaded machine it still drops some: the frames that did not come out are sent again,
        slower, up to `rounds` times in all (a frame's member depends on the frame alone,
        so a resent frame must take the same one; both copies arriving must agree)."""
        taken: dict[int, tuple[int, int]] = {}
        todo = list(range(len(batch)))
        for round_ in range(rounds):
            rx = self.receiver()
            try:
                for start in range(0, len(todo), burst):
                    for i in todo[start:start + burst]:
                        self.hosts[1].send(batch[i])
                    time.sleep(pause * (1 + round_))
                last, seen = time.monotonic(), 0
                while len(rx.arrivals) < len(todo) and time.monotonic() - last < quiet:
                    time.sleep(0.02)
                    if len(rx.arrivals) != seen:
                        last, seen = time.monotonic(), len(rx.arrivals)
                time.sleep(0.1)  # anything more (a duplicate) would show
            finally:
                rx.stop()
            this_round: dict[int, tuple[int, int]] = {}
            for a in rx.arrivals:
                assert a.index not in this_round or round_, f"frame {a.index} came out twice"
                got = (a.port, a.member)
                assert taken.get(a.index, got) == this_round.get(a.index, got) == got, (
                    f"frame {a.index} came out on {got} and on {taken.get(a.index) or this_round[a.index]}")
                this_round[a.index] = got
            taken.update(this_round)
            todo = [i for i in todo if i not in taken]
            if not todo:
                break
        return taken

    def set_link(self, port: int, up: bool, *, side: str = "host") -> float:
        """`ip link set dev ... up|down` on port `port`'s host end (the peer) or on the
        switch's own interface; the time the command returned."""
        state = "up" if up else "down"
        if side == "host":
            cmd = ["ip", "netns", "exec", self.lab.ns(port), "ip", "link", "set", "dev",
                   self.lab.host_ifname(port), state]
        else:
            cmd = ["ip", "link", "set", "dev", self.lab.switch_ifname(port), state]
        subprocess.run(cmd, check=True, capture_output=True)
        return time.monotonic()


class Traffic:
    """Frames of `flow_list`, round robin, into port 1 at `rate` per second while the
    `with` block runs; `sent[i]` is when frame i left, `arrivals` what came out."""

    def __init__(self, sw: SelectorSwitch, flow_list: list[tuple[str, int]], rate: float = 2000.0):
        self.sw, self.flows, self.rate = sw, flow_list, rate
        self.sent: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="selector-tx", daemon=True)
        self._rx: Receiver | None = None

    def flow_of(self, index: int) -> int:
        return index % len(self.flows)

    @property
    def arrivals(self) -> list[Arrival]:
        return self._rx.arrivals if self._rx else []

    def __enter__(self) -> Traffic:
        self._rx = self.sw.receiver()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        time.sleep(0.3)  # the last frames come out
        self._rx.stop()

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.is_set():
            index = len(self.sent)
            wait = start + index / self.rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self.sent.append(time.monotonic())
            self.sw.hosts[1].send(frame(self.flows[self.flow_of(index)], index))


@dataclass
class Failover:
    """What happened to traffic when a member's watch port went down and came back up.

    Flows are "moved" if the member on `port` took them before the link went down; the
    times are from the start of each `ip link` command to the send time of the last
    moved-flow frame still handled the old way (lost after down; on the other member
    after up); 0 when the first frame sent after the command was already handled anew."""

    moved_flows: int
    other_flows: int
    lost_after_down: int
    down_delay: float
    up_delay: float
    other_flows_disturbed: int  # frames of the other flows lost or on another port
    moved_not_on_survivor: int  # moved-flow frames sent once the delay had passed, not on the survivor
    not_back: int  # moved-flow frames sent once the up delay had passed, not back on `port`

    def __str__(self) -> str:
        return (f"{self.moved_flows} of {self.moved_flows + self.other_flows} flows on the member: "
                f"{self.lost_after_down} frames lost, moved within {1000 * self.down_delay:.1f} ms "
                f"of the link going down, back within {1000 * self.up_delay:.1f} ms of it coming up")


def measure_failover(sw: SelectorSwitch, flow_list: list[tuple[str, int]], *, port: int,
                     side: str, bound: float, settle: float = 0.4, rate: float = 2000.0) -> Failover:
    """Traffic of `flow_list` through the group; `port`'s link (its host end or the
    switch's interface, `side`) goes down, then up again, `2 * settle` seconds apart."""
    with Traffic(sw, flow_list, rate) as traffic:
        time.sleep(settle)
        down = time.monotonic()
        sw.set_link(port, False, side=side)
        time.sleep(2 * settle)
        up = time.monotonic()
        sw.set_link(port, True, side=side)
        time.sleep(2 * settle)
    sent = traffic.sent
    got = {a.index: a for a in traffic.arrivals}
    before: dict[int, int] = {}
    for i in range(len(sent)):
        if sent[i] < down and i in got:
            before.setdefault(traffic.flow_of(i), got[i].port)
    moved = {f for f, p in before.items() if p == port}
    assert moved and len(moved) < len(before), f"the member on port {port} took {len(moved)} flows"
    survivor = {p for f, p in before.items() if f not in moved}
    lost_down, late_down, late_up, disturbed, not_survivor, not_back = 0, 0.0, 0.0, 0, 0, 0
    for i, t in enumerate(sent):
        flow, arrival = traffic.flow_of(i), got.get(i)
        if flow not in before:
            continue
        if flow not in moved:
            disturbed += arrival is None or arrival.port != before[flow]
        elif down <= t < up:
            if arrival is None:
                lost_down += 1
                late_down = max(late_down, t - down)
            if t > down + bound:
                not_survivor += arrival is None or arrival.port not in survivor
        elif t >= up:
            if arrival is None or arrival.port != port:
                late_up = max(late_up, t - up)
            if t > up + bound:
                not_back += arrival is None or arrival.port != port
    return Failover(len(moved), len(before) - len(moved), lost_down, late_down, late_up, disturbed,
                    not_survivor, not_back)


def shares(taken: dict[int, tuple[int, int]]) -> dict[int, float]:
    """Each member's share of the frames, in percent."""
    counts: dict[int, int] = {}
    for _, member in taken.values():
        counts[member] = counts.get(member, 0) + 1
    return {m: 100.0 * c / len(taken) for m, c in sorted(counts.items())}
