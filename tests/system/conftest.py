"""What the system tests share: the linear topology and free P4Runtime ports for it."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.topology import Topology, load_topology
from dcia.targets import free_tcp_port

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def linear() -> Topology:
    return load_topology(REPO / "topologies" / "linear.toml")


@pytest.fixture(scope="session")
def free_ports(linear):
    """A function giving each switch a free P4Runtime port: tests must not meet a `make run`."""
    def ports() -> dict[str, str]:
        return {name: f"127.0.0.1:{free_tcp_port()}" for name in linear.switches}
    return ports
