"""Topology files for tests and benchmarks that start their own switch processes."""

from __future__ import annotations

from pathlib import Path

from controller.topology import load_topology
from dcia.targets import free_tcp_port


def on_free_ports(source: Path, out: Path, extra: str = "") -> dict[str, str]:
    """Write ``source`` to ``out`` with every switch's P4Runtime address moved to a free
    local port, and ``extra`` (more TOML) appended; returns switch name -> address."""
    text = Path(source).read_text()
    addresses = {}
    for name, switch in load_topology(source).switches.items():
        addresses[name] = f"127.0.0.1:{free_tcp_port()}"
        text = text.replace(f'"{switch.grpc}"', f'"{addresses[name]}"')
    Path(out).write_text(text + extra)
    return addresses
