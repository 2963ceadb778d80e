"""One switch process (BMv2 or the embedded switch) on two veth ports, for the data-plane
tests: host 1 (10.0.1.1) on port 1, host 2 (10.0.2.2) on port 2, routes to both installed.

The ``rig`` fixture (tests/dataplane/conftest.py) starts the committed pipeline on each
target in turn; BMv2 runs skip, saying why, where simple_switch_grpc is not installed.
"""

from __future__ import annotations

import asyncio

import finsy as fy
from scapy.layers.inet import IP
from scapy.layers.l2 import Ether

from controller import entries
from dcia.artifacts import Pipeline
from dcia.targets import SwitchProcess
from tests.dataplane_model import InstalledModel
from tests.netlab import NetLab

HOST1 = dict(mac="08:00:00:00:01:11", ip="10.0.1.1")
HOST2 = dict(mac="08:00:00:00:02:22", ip="10.0.2.2")
SWITCH_MAC = "08:00:00:00:01:00"


class Rig:
    def __init__(self, lab: NetLab, proc: SwitchProcess):
        self.lab, self.proc = lab, proc
        self.addr = proc.config.grpc_addr
        self.h1, self.h2 = lab.host_socket(1), lab.host_socket(2)

    async def _session(self, work):
        pipeline = Pipeline.default()
        opts = fy.SwitchOptions(p4info=pipeline.p4info, p4blob=pipeline.bmv2_json, device_id=1)
        async with fy.Switch("s1", self.addr, opts) as sw:
            return await work(sw)

    def write(self, updates: list) -> None:
        async def work(sw):
            await sw.write(updates)
        asyncio.run(self._session(work))

    def counters(self, name: str) -> dict[int, int]:
        async def work(sw):
            return {c.index: c.data.packet_count async for c in sw.read(fy.P4CounterEntry(name))}
        return asyncio.run(self._session(work))

    def install_routes(self) -> None:
        self.write([
            +entries.route_entry(prefix="10.0.1.0/24", port=1, dst_mac=HOST1["mac"]),
            +entries.route_entry(prefix="10.0.2.0/24", port=2, dst_mac=HOST2["mac"]),
        ])

    def install(self, models: list[InstalledModel]) -> None:
        updates = []
        for m in models:
            updates += entries.version_entries(m.model_id, [m.version])
            for index, layer in m.layers.items():
                updates += entries.layer_entries(layer, model_id=m.model_id, version=m.version,
                                                 index=index, more=m.more.get(index, False))
        self.write([+u for u in updates])


def frame(payload, *, ttl=64, **ip) -> Ether:
    """Host 1 to host 2 through the switch; ``ip``: further IPv4 fields (options, flags...)."""
    return (Ether(src=HOST1["mac"], dst=SWITCH_MAC)
            / IP(src=HOST1["ip"], dst=HOST2["ip"], ttl=ttl, **ip) / payload)


def assert_forwarded(sent: Ether, got: Ether) -> None:
    """Routed to host 2: MACs rewritten, TTL decremented once, lengths and the IPv4 header
    checksum (options included) right."""
    sent = Ether(bytes(sent))
    assert got[Ether].dst == HOST2["mac"] and got[Ether].src == SWITCH_MAC
    assert got[IP].ttl == sent[IP].ttl - 1
    assert got[IP].ihl == sent[IP].ihl and got[IP].options == sent[IP].options
    assert got[IP].len == len(got[IP])
    recomputed = IP(bytes(got[IP]))
    del recomputed.chksum
    assert IP(bytes(recomputed))[IP].chksum == got[IP].chksum, "IPv4 checksum not updated"
