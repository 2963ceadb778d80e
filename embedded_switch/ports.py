"""Real ports for the embedded switch: Linux interfaces opened as AF_PACKET raw sockets.

One receive thread waits on all sockets, runs each frame through `Switch.process` and
transmits what comes out. Frames arrive in each socket's receive ring (`RxRing`, memory
shared with the kernel), read without a system call per frame; they leave with `send`.
Frames to the CPU port go to the packet-in handler that the P4Runtime server installs;
packet-outs enter through `inject_from_cpu`. The switch's own transmitted frames
(PACKET_OUTGOING) are ignored. No frame stops the loop: a frame that cannot be handled
is dropped with a log line and a counter.

The same thread tells the switch whether each port is up (`Switch.set_port_status`, for
watch ports): a port is up while its interface is IFF_RUNNING, i.e. its operstate is
"up" or "unknown", the rule BMv2 applies to /sys/class/net/IF/operstate. The state is
read once at start (SIOCGIFFLAGS) and then followed through the kernel's link
notifications (an rtnetlink socket subscribed to RTMGRP_LINK), so a change reaches the
switch as soon as the kernel announces it, with no polling interval.

A port sees what BMv2 sees through libpcap: only its own interface's frames (the
socket receives nothing until it is bound to it), each as it was on the wire, with the
outer VLAN tag that Linux strips before a raw socket sees the frame put back
(`with_vlan_tag`).

    ports = PortSet(switch, {1: "veth1", 2: "veth3"})
    ports.start()
    ...
    ports.stop()
"""
from __future__ import annotations

import collections
import errno
import fcntl
import logging
import mmap
import os
import selectors
import socket
import struct
import threading
from collections.abc import Iterator
from typing import Callable

from embedded_switch.errors import InvalidArgument

log = logging.getLogger(__name__)

ETH_P_ALL = 0x0003
ETH_P_8021Q = 0x8100
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_AUXDATA = 8
PACKET_IGNORE_OUTGOING = 23
PACKET_OUTGOING = 4
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40
MAX_FRAME = 65536
MAC_ADDRS = 12
"""Bytes of destination and source MAC address, after which a VLAN tag sits."""

# struct tpacket_auxdata (<linux/if_packet.h>), the PACKET_AUXDATA control message, read
# by hand with struct because no library exposes it: Python's socket module has neither
# the option nor the struct (nor SOL_PACKET), and scapy parses it only inside its own
# socket classes (SuperSocket._recv_raw), not for a socket of ours. Fields: tp_status,
# tp_len, tp_snaplen, tp_mac, tp_net, tp_vlan_tci, tp_vlan_tpid.
TPACKET_AUXDATA = struct.Struct("=IIIHHHH")
AUXDATA_SPACE = socket.CMSG_SPACE(TPACKET_AUXDATA.size)

# The receive ring (PACKET_MMAP, TPACKET_V2; <linux/if_packet.h> and the kernel's
# Documentation/networking/packet_mmap.rst): frame slots in memory shared with the kernel,
# each a struct tpacket2_hdr (tp_status, tp_len, tp_snaplen, tp_mac, tp_net, tp_sec,
# tp_nsec, tp_vlan_tci, tp_vlan_tpid, padding), then at 32 bytes a struct sockaddr_ll whose
# sll_pkttype is its 11th byte, then the frame at tp_mac. A slot is the reader's while
# TP_STATUS_USER is set and the kernel's again when tp_status is 0. A frame longer than a
# slot is cut to it; with PACKET_COPY_THRESH the kernel also queues it whole on the
# socket (TP_STATUS_COPY), where recvmsg reads it.
PACKET_RX_RING = 5
PACKET_COPY_THRESH = 7
PACKET_VERSION = 10
TPACKET_V2 = 1
TP_STATUS_USER = 0x1
TP_STATUS_COPY = 0x2
TPACKET_REQ = struct.Struct("=IIII")  # tp_block_size, tp_block_nr, tp_frame_size, tp_frame_nr
TPACKET2_HDR = struct.Struct("=IIIHHIIHH")
SLL_PKTTYPE = 32 + 10
RING_SLOT = 2048
"""Bytes per slot: frames up to 1,982 bytes (an Ethernet MTU of 1,500, tags, headroom)."""
RING_BLOCK = 1 << 16
RING_SLOTS = 2048
"""Frames a port holds while the pipeline is busy: 4 MB of ring per port."""

# Link state. rtnetlink (<linux/rtnetlink.h>, <linux/if_link.h>): a datagram holds
# messages, each a struct nlmsghdr (len, type, flags, seq, pid) and, for RTM_NEWLINK and
# RTM_DELLINK, a struct ifinfomsg (family, type, index, flags, change) and attributes
# (struct rtattr: len, type), 4-byte aligned. SIOCGIFFLAGS (<linux/sockios.h>) reads the
# same flags for one interface (struct ifreq: name, then a short).
NETLINK_ROUTE = 0
RTMGRP_LINK = 1
RTM_NEWLINK, RTM_DELLINK = 16, 17
IFLA_IFNAME = 3
IFF_RUNNING = 0x40
SIOCGIFFLAGS = 0x8913
NLMSGHDR = struct.Struct("=IHHII")
IFINFOMSG = struct.Struct("=BxHiII")
RTATTR = struct.Struct("=HH")
IFREQ_FLAGS = struct.Struct("16sH")


def link_events(data: bytes) -> Iterator[tuple[str, bool]]:
    """(interface name, whether it is running) of each link message in an rtnetlink
    datagram; a deleted interface is not running.

    >>> name = b"veth1\\0\\0\\0"
    >>> attr = RTATTR.pack(RTATTR.size + len(name), IFLA_IFNAME) + name
    >>> body = IFINFOMSG.pack(0, 1, 7, IFF_RUNNING, 0) + attr
    >>> msg = NLMSGHDR.pack(NLMSGHDR.size + len(body), RTM_NEWLINK, 0, 0, 0) + body
    >>> list(link_events(msg))
    [('veth1', True)]
    """
    offset = 0
    while offset + NLMSGHDR.size <= len(data):
        length, kind = NLMSGHDR.unpack_from(data, offset)[:2]
        if length < NLMSGHDR.size:
            return
        end = min(offset + length, len(data))
        body = offset + NLMSGHDR.size
        if kind in (RTM_NEWLINK, RTM_DELLINK) and body + IFINFOMSG.size <= end:
            flags = IFINFOMSG.unpack_from(data, body)[3]
            at = body + IFINFOMSG.size
            while at + RTATTR.size <= end:
                alen, atype = RTATTR.unpack_from(data, at)
                if alen < RTATTR.size:
                    break
                if atype == IFLA_IFNAME:
                    name = data[at + RTATTR.size:at + alen].split(b"\0", 1)[0].decode(errors="replace")
                    yield name, kind == RTM_NEWLINK and bool(flags & IFF_RUNNING)
                    break
                at += (alen + 3) & ~3
        offset += (length + 3) & ~3


def link_running(sock: socket.socket, ifname: str) -> bool:
    """Whether ``ifname`` is IFF_RUNNING (operstate up or unknown), asked through ``sock``
    (any socket of the switch's network namespace)."""
    req = IFREQ_FLAGS.pack(ifname.encode(), 0)
    flags = IFREQ_FLAGS.unpack(fcntl.ioctl(sock.fileno(), SIOCGIFFLAGS, req))[1]
    return bool(flags & IFF_RUNNING)


def _link_socket() -> socket.socket:
    """An rtnetlink socket that receives every link change of this network namespace."""
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
    try:
        s.bind((0, RTMGRP_LINK))
        s.setblocking(False)
    except OSError:
        s.close()
        raise
    return s


def parse_port_spec(spec: str) -> tuple[int, str]:
    """`N@ifname` as simple_switch takes it with `-i`.

    >>> parse_port_spec("3@veth3")
    (3, 'veth3')
    """
    num, sep, name = spec.partition("@")
    if not sep or not num.isdigit() or not name:
        raise InvalidArgument(f"port '{spec}' must look like N@ifname, e.g. 1@veth0")
    return int(num), name


def restore_vlan_tag(frame: bytes, ancdata: list[tuple[int, int, bytes]]) -> bytes:
    """``frame`` with the VLAN tag the kernel stripped (its PACKET_AUXDATA in ``ancdata``,
    as ``recvmsg`` returns it) put back after the MAC addresses; as libpcap does it: a tag
    is there if the TCI is non-zero or TP_STATUS_VLAN_VALID says so, and its TPID is
    tp_vlan_tpid if that is non-zero or TP_STATUS_VLAN_TPID_VALID says so, else 0x8100.

    >>> aux = TPACKET_AUXDATA.pack(TP_STATUS_VLAN_VALID | TP_STATUS_VLAN_TPID_VALID,
    ...                            18, 18, 0, 0, 0x002a, 0x88a8)
    >>> restore_vlan_tag(bytes(14), [(SOL_PACKET, PACKET_AUXDATA, aux)]).hex()
    '00000000000000000000000088a8002a0000'
    >>> restore_vlan_tag(b"untagged frame", [(SOL_PACKET, PACKET_AUXDATA, bytes(20))])
    b'untagged frame'
    """
    for level, kind, data in ancdata:
        if level != SOL_PACKET or kind != PACKET_AUXDATA or len(data) < TPACKET_AUXDATA.size:
            continue
        status, _len, _snaplen, _mac, _net, tci, tpid = TPACKET_AUXDATA.unpack_from(data)
        return with_vlan_tag(frame, status, tci, tpid)
    return frame


def with_vlan_tag(frame: bytes, status: int, tci: int, tpid: int) -> bytes:
    """``frame`` with the VLAN tag that the kernel reports beside it (the tp_status,
    tp_vlan_tci and tp_vlan_tpid of PACKET_AUXDATA or of a receive ring's slot) put back,
    by libpcap's rule (`restore_vlan_tag`).

    >>> with_vlan_tag(bytes(14), TP_STATUS_VLAN_VALID, 0, 0).hex()
    '000000000000000000000000810000000000'
    """
    if not (tci or status & TP_STATUS_VLAN_VALID) or len(frame) < MAC_ADDRS:
        return frame
    if not (tpid or status & TP_STATUS_VLAN_TPID_VALID):
        tpid = ETH_P_8021Q
    return frame[:MAC_ADDRS] + struct.pack("!HH", tpid, tci) + frame[MAC_ADDRS:]


class RxRing:
    """A port socket's receive ring: the kernel writes frames into memory shared with the
    switch, which reads them there without a system call per frame (a `select` on the
    socket wakes it when frames wait). What `receive` returns is what `recvmsg` with
    PACKET_AUXDATA gives: the frame with its VLAN tag put back (`with_vlan_tag`), never
    one that the socket itself sent, and frames longer than a slot whole (from the
    socket's queue, where the kernel puts their copies).
    """

    def __init__(self, sock: socket.socket, stats: collections.Counter, slots: int = RING_SLOTS):
        sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V2)
        sock.setsockopt(SOL_PACKET, PACKET_RX_RING,
                        TPACKET_REQ.pack(RING_BLOCK, slots * RING_SLOT // RING_BLOCK, RING_SLOT, slots))
        sock.setsockopt(SOL_PACKET, PACKET_COPY_THRESH, 1)
        self.sock, self.stats = sock, stats
        self.mem = mmap.mmap(sock.fileno(), slots * RING_SLOT)
        self.end = slots * RING_SLOT
        self.at = 0  # the next slot to read

    def receive(self) -> bytes | None:
        """The next frame received, None if none waits."""
        mem, unpack = self.mem, TPACKET2_HDR.unpack_from
        while True:
            at = self.at
            status, length, snaplen, mac, _net, _sec, _nsec, tci, tpid = unpack(mem, at)
            if not status & TP_STATUS_USER:
                return None
            frame = None
            if status & TP_STATUS_COPY:
                frame = self._whole(length)
            elif snaplen == length:
                frame = mem[at + mac:at + mac + snaplen]
            else:
                self.stats["rx_truncated"] += 1  # longer than a slot, and no room for its copy
            outgoing = mem[at + SLL_PKTTYPE] == PACKET_OUTGOING
            mem[at:at + 4] = b"\0\0\0\0"  # the slot is the kernel's again
            self.at = at + RING_SLOT if at + RING_SLOT < self.end else 0
            if frame is not None and not outgoing:
                return with_vlan_tag(frame, status, tci, tpid)

    def _whole(self, length: int) -> bytes | None:
        """The whole frame of a slot that holds only its start, from the socket's queue."""
        try:
            data, ancdata, _flags, _addr = self.sock.recvmsg(MAX_FRAME, AUXDATA_SPACE)
        except OSError:
            self.stats["rx_truncated"] += 1
            return None
        if len(data) != length:
            self.stats["rx_truncated"] += 1
            return None
        return data  # the slot's tag fields say the same as this copy's auxiliary data

    def close(self) -> None:
        self.mem.close()


class PortSet:
    """The switch's ports: AF_PACKET sockets by port number, plus the CPU port."""

    def __init__(self, switch, ports: dict[int, str], *, pcap_dir: str | None = None):
        self.switch = switch
        self.ports = dict(ports)
        self.pcap_dir = pcap_dir
        self.stats = collections.Counter()
        self._socks: dict[int, socket.socket] = {}
        self._rings: dict[int, RxRing] = {}
        self._by_name = {name: port for port, name in self.ports.items()}
        self._links: socket.socket | None = None
        self._cpu_handler: Callable[[bytes], None] | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake_r, self._wake_w = -1, -1
        self._pcaps: dict[tuple[int, str], object] = {}
        self._tx_lock = threading.Lock()

    # -- life cycle
    def start(self) -> None:
        self._links = _link_socket()  # before the first reading: no change goes unseen
        for port, name in self.ports.items():
            self._socks[port], self._rings[port] = self._open(name, self.stats)
        self._read_link_states()
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._rx_loop, name="dcia-switch-rx", daemon=True)
        self._thread.start()
        log.info("ports up: %s", ", ".join(f"{p}@{n}" for p, n in sorted(self.ports.items())))

    def stop(self) -> None:
        self._stop.set()
        if self._wake_w >= 0:
            os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout=5)
        for ring in self._rings.values():
            ring.close()
        self._rings.clear()
        for s in self._socks.values():
            s.close()
        self._socks.clear()
        if self._links is not None:
            self._links.close()
            self._links = None
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1
        for w in self._pcaps.values():
            w.close()
        self._pcaps.clear()

    def __enter__(self) -> "PortSet":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @staticmethod
    def _open(ifname: str, stats: collections.Counter) -> tuple[socket.socket, RxRing]:
        """A raw socket on ``ifname`` only and its receive ring, opened as libpcap opens
        one: created with protocol 0 it receives nothing, not even from other interfaces,
        until the last bind gives it ETH_P_ALL on this interface, when everything else is
        set up."""
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        ring = None
        try:
            s.bind((ifname, 0))
            ifindex = socket.if_nametoindex(ifname)
            mreq = struct.pack("iHH8s", ifindex, PACKET_MR_PROMISC, 0, b"")
            s.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
            s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
            try:
                s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            except OSError:
                pass  # older kernels: outgoing frames are filtered by pkttype below
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)  # for frames longer than a slot
            s.setblocking(False)
            ring = RxRing(s, stats)
            s.bind((ifname, ETH_P_ALL))
        except OSError:
            if ring is not None:
                ring.close()
            s.close()
            raise
        return s, ring

    # -- CPU port
    def set_cpu_handler(self, fn: Callable[[bytes], None] | None) -> None:
        """Install the packet-in callback: called with each frame sent to the CPU port."""
        self._cpu_handler = fn

    def inject_from_cpu(self, data: bytes) -> None:
        """Run a packet-out through the pipeline as arriving on the CPU port."""
        cpu = self.switch.cpu_port
        if cpu is None:
            self.stats["packet_out_no_cpu_port"] += 1
            log.warning("packet-out dropped: the switch has no CPU port (--cpu-port)")
            return
        self.stats["packet_out"] += 1
        self._run(cpu, bytes(data))

    # -- packet path
    def _rx_loop(self) -> None:
        sel = selectors.DefaultSelector()
        for port, s in self._socks.items():
            sel.register(s, selectors.EVENT_READ, port)
        sel.register(self._wake_r, selectors.EVENT_READ, None)
        sel.register(self._links, selectors.EVENT_READ, "links")
        try:
            while not self._stop.is_set():
                for key, _ in sel.select(timeout=1.0):
                    if key.data is None:
                        continue
                    if key.data == "links":
                        self._link_changes()
                        continue
                    self._drain(key.data)
        finally:
            sel.close()

    # -- link state
    def _read_link_states(self) -> None:
        for port, name in self.ports.items():
            self.switch.set_port_status(port, link_running(self._socks[port], name))

    def _link_changes(self) -> None:
        for _ in range(64):
            try:
                data = self._links.recv(MAX_FRAME)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    self.stats["link_error"] += 1
                    log.warning("link notifications failed: %s", exc)
                    return
                self.stats["link_overrun"] += 1  # notifications were lost: read every port again
                log.warning("link notifications overran; reading every port's state again")
                self._read_link_states()
                continue
            for name, running in link_events(data):
                port = self._by_name.get(name)
                if port is not None:
                    self.stats["link_up" if running else "link_down"] += 1
                    self.switch.set_port_status(port, running)

    def _drain(self, port: int) -> None:
        """Run up to 64 frames waiting in ``port``'s ring through the pipeline."""
        receive, run, stats = self._rings[port].receive, self._run, self.stats
        pcap = self._pcap if self.pcap_dir is not None else None
        for _ in range(64):
            data = receive()
            if data is None:
                return
            stats["rx"] += 1
            if pcap is not None:
                pcap(port, "in", data)
            run(port, data)

    def _run(self, port: int, data: bytes) -> None:
        try:
            outputs = self.switch.process(port, data)
        except Exception as exc:  # noqa: BLE001 - the loop must survive any frame
            self.stats["process_error"] += 1
            log.warning("frame from port %d dropped: %s", port, exc)
            return
        for out_port, frame in outputs:
            self._transmit(out_port, frame)

    def _transmit(self, port: int, frame: bytes) -> None:
        s = self._socks.get(port)
        if s is not None and port != self.switch.cpu_port:  # the common case first
            try:
                with self._tx_lock:
                    s.send(frame)
            except OSError as exc:
                self.stats["tx_error"] += 1
                log.warning("transmit on port %d failed: %s", port, exc)
                return
            self.stats["tx"] += 1
            if self.pcap_dir is not None:
                self._pcap(port, "out", frame)
            return
        if port == self.switch.cpu_port:
            handler = self._cpu_handler
            if handler is None:
                self.stats["packet_in_no_handler"] += 1
                return
            self.stats["packet_in"] += 1
            try:
                handler(frame)
            except Exception as exc:  # noqa: BLE001
                self.stats["packet_in_error"] += 1
                log.warning("packet-in handler failed: %s", exc)
            return
        self.stats["tx_no_port"] += 1
        log.debug("frame to port %d dropped: no such port", port)

    def _pcap(self, port: int, direction: str, frame: bytes) -> None:
        if self.pcap_dir is None:
            return
        w = self._pcaps.get((port, direction))
        if w is None:
            from scapy.utils import PcapWriter
            path = os.path.join(self.pcap_dir, f"{self.ports.get(port, port)}_{direction}.pcap")
            w = self._pcaps[(port, direction)] = PcapWriter(path, sync=True, linktype=1)
        w.write(frame)
