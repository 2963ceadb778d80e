"""A throw-away network for tests: one veth pair per switch port, the host end of each
in a network namespace of its own (a "host", as in Mininet).

The switch under test opens the root-namespace ends (as in Mininet, switches stay in the
root namespace); the test sends and receives raw frames on the host ends, or gives the
hosts addresses and runs ordinary programs in them. Everything is removed on exit, also
when the test fails.

    with NetLab("dp", ports=2) as lab:
        lab.switch_ifname(1)        # 'ddp1234s1', for `-i 1@ddp1234s1`
        sock = lab.host_socket(1)   # raw socket on the peer, inside host 1's namespace
"""

from __future__ import annotations

import ctypes
import os
import select
import socket
import subprocess
import threading
import time
from collections.abc import Callable

CLONE_NEWNET = 0x40000000
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def _run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


def _in_netns(ns: str, fn: Callable[[], object]) -> object:
    """Run ``fn`` in a thread that has entered namespace ``ns``.

    setns(2) changes only the calling thread, and sockets keep the namespace they were
    created in. (os.setns arrives in Python 3.12; this project supports 3.11.)
    """
    result: dict[str, object] = {}

    def target() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(f"/var/run/netns/{ns}", os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns into {ns} failed")
            result["value"] = fn()
        except BaseException as exc:  # re-raised in the caller's thread
            result["error"] = exc
        finally:
            os.close(fd)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return result["value"]


class HostPort:
    """A raw socket on a host-side veth end: send frames, collect what arrives."""

    def __init__(self, sock: socket.socket, ifname: str):
        self.sock = sock
        self.ifname = ifname

    def send(self, frame: bytes) -> None:
        self.sock.send(frame)

    def receive(self, timeout: float) -> list[bytes]:
        """Frames received (not sent) until ``timeout`` seconds pass with nothing new."""
        frames = []
        while True:
            ready, _, _ = select.select([self.sock], [], [], timeout)
            if not ready:
                return frames
            data, addr = self.sock.recvfrom(65535)
            if addr[2] != PACKET_OUTGOING:
                frames.append(data)

    def receive_count(self, count: int, timeout: float) -> list[bytes]:
        """Up to ``count`` received frames, waiting at most ``timeout`` seconds in all."""
        frames: list[bytes] = []
        deadline = time.monotonic() + timeout
        while len(frames) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select([self.sock], [], [], left)
            if ready:
                data, addr = self.sock.recvfrom(65535)
                if addr[2] != PACKET_OUTGOING:
                    frames.append(data)
        return frames

    def drain(self) -> None:
        self.receive(0.05)

    def close(self) -> None:
        self.sock.close()


class NetLab:
    """``ports`` veth pairs: switch ends in the root ns, host ends in ``dcia-<tag>-<pid>-hN``."""

    def __init__(self, tag: str, ports: int):
        self.tag = tag
        self.uid = f"{os.getpid() % 100000}"
        self.ports = ports
        self._sockets: list[HostPort] = []

    def ns(self, port: int) -> str:
        return f"dcia-{self.tag}-{self.uid}-h{port}"

    def run_in_host(self, port: int, *cmd: str, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.ns(port), *cmd],
                              capture_output=True, text=True, **kwargs)

    def configure_host(self, port: int, *, ip: str, mac: str, peers: dict[str, str]) -> None:
        """Give host ``port`` an address (``10.0.1.1/24``), a MAC, a default route out of
        its interface and static ARP entries ``{peer ip: mac}``, and turn its transmit
        checksum offload off, as Mininet testbeds do (mininet_topos/host.py): a veth
        otherwise sends UDP checksums unfinished, and the switch counts them as bad."""
        ifname = self.host_ifname(port)
        _run("ip", "netns", "exec", self.ns(port), "ethtool", "-K", ifname, "tx", "off")
        _run("ip", "netns", "exec", self.ns(port), "ip", "link", "set", ifname, "address", mac)
        _run("ip", "netns", "exec", self.ns(port), "ip", "addr", "add", ip, "dev", ifname)
        _run("ip", "netns", "exec", self.ns(port), "ip", "route", "add", "default", "dev", ifname)
        for peer_ip, peer_mac in peers.items():
            _run("ip", "netns", "exec", self.ns(port), "ip", "neigh", "replace", peer_ip,
                 "lladdr", peer_mac, "dev", ifname, "nud", "permanent")

    def switch_ifname(self, port: int) -> str:
        return f"d{self.tag[:3]}{self.uid}s{port}"

    def host_ifname(self, port: int) -> str:
        return f"d{self.tag[:3]}{self.uid}h{port}"

    def __enter__(self) -> NetLab:
        self.close()  # a leftover of a crashed run with the same pid
        try:
            for port in range(1, self.ports + 1):
                ns, sw, host = self.ns(port), self.switch_ifname(port), self.host_ifname(port)
                _run("ip", "netns", "add", ns)
                _run("ip", "link", "add", sw, "type", "veth", "peer", "name", host)
                _run("ip", "link", "set", host, "netns", ns)
                _run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
                for ifname, prefix in ((sw, []), (host, ["ip", "netns", "exec", ns])):
                    _run(*prefix, "sysctl", "-qw", f"net.ipv6.conf.{ifname}.disable_ipv6=1")
                    _run(*prefix, "ip", "link", "set", ifname, "up")
        except BaseException:
            self.close()
            raise
        return self

    def host_socket(self, port: int) -> HostPort:
        ifname = self.host_ifname(port)

        def open_socket() -> socket.socket:
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            s.bind((ifname, 0))
            return s

        hp = HostPort(_in_netns(self.ns(port), open_socket), ifname)  # type: ignore[arg-type]
        self._sockets.append(hp)
        return hp

    def close(self) -> None:
        for hp in self._sockets:
            hp.close()
        self._sockets.clear()
        for port in range(1, self.ports + 1):  # deleting a namespace removes its pair
            subprocess.run(["ip", "netns", "del", self.ns(port)], capture_output=True)
            subprocess.run(["ip", "link", "del", self.switch_ifname(port)], capture_output=True)

    def __exit__(self, *exc) -> None:
        self.close()
