"""dcia.targets: switch processes started side by side on one machine.

BMv2 built with Thrift (its default) opens a Thrift server, on port 9090 unless given
--thrift-port; a second switch on the same port exits ("Could not bind to port 9090").
"""
import socket
import time

import pytest

from dcia.targets import SwitchConfig, SwitchProcess, find_bmv2, free_tcp_port

needs_bmv2 = pytest.mark.skipif(find_bmv2() is None, reason="BMv2 simple_switch_grpc is not "
                                "installed (PATH, $SIMPLE_SWITCH_GRPC or /opt/p4/bin)")


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _still_up(procs: list[SwitchProcess], seconds: float = 1.5) -> None:
    """Every switch keeps running and serving P4Runtime for ``seconds`` (a Thrift bind
    failure can end a switch just after its gRPC port opened)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for p in procs:
            assert p.proc.poll() is None, f"{' '.join(p.argv)} exited with {p.proc.returncode}"
        time.sleep(0.1)
    for p in procs:
        assert _listening(int(p.config.grpc_addr.rsplit(":", 1)[1])), p.config.grpc_addr


@needs_bmv2
def test_two_bmv2_switches_without_a_thrift_port_both_come_up(tmp_path):
    configs = [SwitchConfig(ports={}, grpc_addr=f"127.0.0.1:{free_tcp_port()}", device_id=i)
               for i in (1, 2)]
    with SwitchProcess("bmv2", configs[0], stdout_path=tmp_path / "s1.out") as s1, \
            SwitchProcess("bmv2", configs[1], stdout_path=tmp_path / "s2.out") as s2:
        _still_up([s1, s2])
        assert s1.config.thrift_port != s2.config.thrift_port
        assert _listening(s1.config.thrift_port) and _listening(s2.config.thrift_port)


@needs_bmv2
def test_bmv2_serves_thrift_on_the_configured_port(tmp_path):
    thrift = free_tcp_port()
    config = SwitchConfig(ports={}, grpc_addr=f"127.0.0.1:{free_tcp_port()}", thrift_port=thrift)
    with SwitchProcess("bmv2", config, stdout_path=tmp_path / "s1.out") as s1:
        assert s1.argv[s1.argv.index("--thrift-port") + 1] == str(thrift)
        _still_up([s1], seconds=0.5)
        assert _listening(thrift)


def test_the_embedded_switch_accepts_a_thrift_port(tmp_path):
    config = SwitchConfig(ports={}, grpc_addr=f"127.0.0.1:{free_tcp_port()}",
                          thrift_port=free_tcp_port())
    with SwitchProcess("embedded", config, stdout_path=tmp_path / "s1.out") as s1:
        assert "--thrift-port" in s1.argv
        _still_up([s1], seconds=0.5)
