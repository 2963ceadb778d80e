"""Switch targets: start a P4Runtime switch process, real BMv2 or the embedded switch.

Both take simple_switch_grpc's command line, so one launcher serves tests, benchmarks and
the Mininet switch class; only the program differs.

    >>> cmd = SwitchConfig(ports={1: "veth1", 2: "veth2"}, grpc_addr="127.0.0.1:50001",
    ...                    thrift_port=9091, device_id=1).command(["simple_switch_grpc"])
    >>> " ".join(cmd)
    'simple_switch_grpc --device-id 1 -i 1@veth1 -i 2@veth2 --thrift-port 9091 --log-level info --no-p4 -- --grpc-server-addr 127.0.0.1:50001 --cpu-port 255'

BMv2 built with Thrift (its default) also serves Thrift, on port 9090 unless told
otherwise, so two switches started without ``thrift_port`` collide; SwitchProcess gives a
BMv2 switch without one a free port.

A switch process dies with the process that started it (``die_with_parent``), also when
that one is SIGKILLed and runs no clean-up of its own.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from dcia.errors import DciaError

log = logging.getLogger(__name__)

BMV2_SEARCH = ("/opt/p4/bin", "/usr/local/bin", "/usr/bin")
TARGETS = ("embedded", "bmv2")


class TargetError(DciaError):
    """A switch target is not installed, or its process did not start."""


def find_bmv2() -> Path | None:
    """BMv2's simple_switch_grpc: $SIMPLE_SWITCH_GRPC, PATH, then the usual prefixes."""
    explicit = os.environ.get("SIMPLE_SWITCH_GRPC")
    candidates = [explicit] if explicit else []
    candidates.append(shutil.which("simple_switch_grpc"))
    candidates += [f"{d}/simple_switch_grpc" for d in BMV2_SEARCH]
    for c in candidates:
        if c and os.access(c, os.X_OK):
            return Path(c)
    return None


def target_program(target: str) -> list[str]:
    """The argv prefix that starts ``target`` ('embedded' or 'bmv2')."""
    if target == "embedded":
        return [sys.executable, "-m", "embedded_switch.cli"]
    if target == "bmv2":
        path = find_bmv2()
        if path is None:
            raise TargetError(
                "BMv2 simple_switch_grpc is not installed (not on PATH, in $SIMPLE_SWITCH_GRPC "
                "or /opt/p4/bin); use the embedded switch (--target embedded) or install BMv2 "
                "with PI (https://github.com/p4lang/behavioral-model)"
            )
        return [str(path)]
    raise TargetError(f"unknown switch target {target!r}; choose one of {', '.join(TARGETS)}")


@dataclass(frozen=True)
class SwitchConfig:
    """How to start one switch: ports, P4Runtime address, Thrift port, device id, logs."""

    ports: dict[int, str]
    grpc_addr: str
    thrift_port: int | None = None
    """BMv2's Thrift server port (--thrift-port; the embedded switch ignores it). None: the
    flag is left out and BMv2 takes 9090, which only one switch on a machine can have."""
    device_id: int = 1
    cpu_port: int = 255
    json_path: Path | None = None
    log_file: Path | None = None
    log_level: str = "info"
    pcap_dir: Path | None = None
    extra: tuple[str, ...] = field(default=())
    tls_args: tuple[str, ...] = field(default=())
    """simple_switch_grpc's target options for TLS (--grpc-server-ssl, ...), after the --."""

    def command(self, program: list[str]) -> list[str]:
        cmd = [*program, "--device-id", str(self.device_id)]
        for port, ifname in sorted(self.ports.items()):
            cmd += ["-i", f"{port}@{ifname}"]
        if self.thrift_port is not None:
            cmd += ["--thrift-port", str(self.thrift_port)]
        if self.log_file:
            cmd += ["--log-file", str(self.log_file)]
        cmd += ["--log-level", self.log_level]
        if self.pcap_dir:
            cmd += ["--pcap", str(self.pcap_dir)]
        cmd += [*self.extra]
        cmd += [str(self.json_path)] if self.json_path else ["--no-p4"]
        cmd += ["--", "--grpc-server-addr", self.grpc_addr, "--cpu-port", str(self.cpu_port),
                *self.tls_args]
        return cmd


def die_with_parent(argv: Sequence[str], signal_name: str = "KILL") -> list[str]:
    """``argv`` run so that it gets ``signal_name`` when the process that starts it dies.

    Linux's parent-death signal (PR_SET_PDEATHSIG), set by ``setpriv --pdeathsig``
    (util-linux, an essential package on Debian and Ubuntu) just before it execs the
    program; it survives that exec, and mnexec's into a Mininet host's namespace. The kernel sends it when the *thread* that started
    the child ends: start long-lived children from the main thread.

    Not a ``preexec_fn``: Python then runs its at-fork handlers around the fork, in a
    process whose gRPC threads (finsy's) make them unsafe. That made children abort
    (gRPC's "epoll_wait error: Bad file descriptor") and swallowed a Ctrl-C that arrived
    in a handler.

    >>> die_with_parent(["sleep", "600"])
    ['setpriv', '--pdeathsig', 'KILL', 'sleep', '600']
    """
    return ["setpriv", "--pdeathsig", signal_name, *argv]


def process_start_time(pid: int) -> int | None:
    """The process's start time (clock ticks after boot), None if it is gone or a zombie.

    With the pid it names one process for good: a recorded (pid, start time) pair does not
    match a later process that reuses the pid.
    """
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(") ", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return None if fields[0] == "Z" else int(fields[19])


def free_tcp_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    return free_tcp_ports(1)[0]


def free_tcp_ports(n: int) -> list[int]:
    """``n`` different unused TCP ports on 127.0.0.1 (held together while chosen, so that
    two of them never are the same, as two calls of ``free_tcp_port`` may be).

    >>> a, b, c = free_tcp_ports(3)
    >>> len({a, b, c})
    3
    """
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


class SwitchProcess:
    """A running switch process; a context manager that always stops it.

    ``start`` returns once the P4Runtime port accepts connections. A BMv2 switch whose
    config names no Thrift port gets a free one (``config`` says which), so any number of
    them run side by side. The process is SIGKILLed when the thread that started it ends
    (``die_with_parent``): no switch outlives a crashed test or testbed.
    """

    def __init__(self, target: str, config: SwitchConfig, *, stdout_path: Path | None = None):
        if target == "bmv2" and config.thrift_port is None:
            # not the P4Runtime port: it is not bound until the switch starts
            grpc_port = int(config.grpc_addr.rsplit(":", 1)[1])
            config = replace(config, thrift_port=next(p for p in free_tcp_ports(2) if p != grpc_port))
        self.target = target
        self.config = config
        self.argv = config.command(target_program(target))
        self.stdout_path = stdout_path
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> SwitchProcess:
        out = open(self.stdout_path, "wb") if self.stdout_path else subprocess.DEVNULL
        log.info("starting %s: %s", self.target, " ".join(self.argv))
        self.proc = subprocess.Popen(die_with_parent(self.argv), stdout=out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        host, port = self.config.grpc_addr.rsplit(":", 1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise TargetError(
                    f"{self.target} switch exited with code {self.proc.returncode} at start-up"
                    f"{self._output_tail()}"
                )
            try:
                with socket.create_connection((host, int(port)), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise TargetError(f"{self.target} switch did not open {self.config.grpc_addr} "
                          f"within {timeout:.0f} s{self._output_tail()}")

    def _output_tail(self) -> str:
        if self.stdout_path and Path(self.stdout_path).exists():
            tail = Path(self.stdout_path).read_text(errors="replace").strip().splitlines()[-8:]
            return ":\n  " + "\n  ".join(tail) if tail else ""
        return ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        except ProcessLookupError:
            pass

    def __enter__(self) -> SwitchProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
