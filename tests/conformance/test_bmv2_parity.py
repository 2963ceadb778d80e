"""Differential parity: the conformance programs on real BMv2 simple_switch_grpc and on
the embedded switch must send the same frames out of the same ports. Only programs and
packets that need no control-plane state are used, so BMv2 runs without a controller.
Skips (saying why) where BMv2 or root is missing."""
import os
import random
import select

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from dcia.targets import SwitchConfig, SwitchProcess, TargetError, find_bmv2, free_tcp_port
from tests.conformance.loader import PROGRAMS, eth, load
from tests.netlab import PACKET_OUTGOING, NetLab

BMV2 = find_bmv2()
PORTS = 4

pytestmark = [
    pytest.mark.parity, pytest.mark.netns,
    pytest.mark.skipif(BMV2 is None, reason="BMv2 simple_switch_grpc is not installed"),
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces and veth pairs"),
]


def bmv2_outputs(program: str, frames: list[bytes], writes: list | None = None,
                 target: str = "bmv2") -> list[list[tuple[int, bytes]]]:
    """What BMv2 (or another `target` process) sends out of each port for each frame
    entering port 1 (after `writes`, finsy P4Runtime updates, if any)."""
    with NetLab("par", ports=PORTS) as lab:
        config = SwitchConfig(ports={p: lab.switch_ifname(p) for p in range(1, PORTS + 1)},
                              grpc_addr=f"127.0.0.1:{free_tcp_port()}", device_id=0, log_level="error",
                              json_path=PROGRAMS / f"{program}.json")
        try:
            proc = SwitchProcess(target, config).start(timeout=15)
        except TargetError as exc:
            pytest.fail(str(exc))
        try:
            if writes:
                _p4runtime_write(program, config.grpc_addr, writes)
            hosts = {p: lab.host_socket(p) for p in range(1, PORTS + 1)}
            for h in hosts.values():
                h.drain()
            results = []
            for frame in frames:
                hosts[1].send(frame)
                results.append(_collect(hosts))
            return results
        finally:
            proc.stop()


def _p4runtime_write(program: str, addr: str, writes: list) -> None:
    import asyncio

    import finsy as fy

    async def work():
        opts = fy.SwitchOptions(p4info=PROGRAMS / f"{program}.p4info.txtpb", p4blob=PROGRAMS / f"{program}.json",
                                device_id=0)
        async with fy.Switch("parity", addr, opts) as sw:
            await sw.write(writes)

    asyncio.run(work())


def _collect(hosts: dict, quiet: float = 0.12) -> list[tuple[int, bytes]]:
    by_sock = {h.sock: p for p, h in hosts.items()}
    out = []
    while True:
        ready, _, _ = select.select(list(by_sock), [], [], quiet)
        if not ready:
            return sorted(out)
        for s in ready:
            data, addr = s.recvfrom(65535)
            if addr[2] != PACKET_OUTGOING:
                out.append((by_sock[s], data))


def embedded_outputs(program: str, frames: list[bytes]) -> list[list[tuple[int, bytes]]]:
    sw = load(program)
    return [sorted((p, d) for p, d in sw.process(1, f) if 1 <= p <= PORTS) for f in frames]


def check(program: str, frames: list[bytes]) -> None:
    assert embedded_outputs(program, frames) == bmv2_outputs(program, frames)


def test_arith_matches_bmv2():
    rng = random.Random(4)
    frames = [eth(0x1234) + bytes(rng.randrange(256) for _ in range(7)) for _ in range(8)]
    frames.append(eth(0x1234) + bytes([255, 255, 0x80, 0x80, 0xFF, 0xFF, 0xF0]))
    check("arith", frames)


def test_parser_matches_bmv2():
    tags = lambda *ps: b"".join(bytes(p) for p in ps)  # noqa: E731
    frames = [eth(0x9000) + tags((1, 0), (2, 0), (0, 0)) + b"PAY", eth(0x9000) + tags((1, 0), (2, 0), (3, 0), (4, 0)),
              eth(0x9000) + tags((1, 0)) + b"\x05", eth(0x9000) + b"\x80\x01", eth(0x91AB) + b"\x00",
              eth(0x9001) + tags((5, 1)), eth(0x9001) + tags((0xFF, 1)), eth(0x9001) + tags((5, 3)),
              eth(0x1234) + b"\xAA\xBB" + tags((9, 9))]
    check("parser", frames)


def test_misc_matches_bmv2():
    frames = [eth(0x1234) + bytes([op, 1, 0x33, sel]) + b"\x11\x22" + (b"\xA1\xA2" if sel == 0 else b"\xB1")
              for op in range(6) for sel in (0, 1)]
    check("misc", frames)


def test_traffic_matches_bmv2():
    frames = [eth(0x1234) + bytes([op, arg]) + b"payload!" for op, arg in
              ((1, 2), (1, 4), (4, 0), (5, 2), (6, 0), (8, 0), (9, 0), (2, 0))]
    check("traffic", frames)


def test_tables_defaults_const_entries_and_registers_match_bmv2():
    frames = [eth(0x1234) + bytes([e, 0, 0, t, 0, 0, 0, 0]) for e, t in ((1, 0x11), (1, 0x25), (2, 0x05), (1, 0x1F))]
    check("tables", frames)


def test_checksums_match_bmv2():
    frames = [bytes(Ether() / IP(src="10.0.1.1", dst="10.0.2.2", chksum=c) / UDP(sport=1, dport=2) / payload)
              for c in (None, 0xBEEF) for payload in (b"", b"odd", b"even")]
    check("checksum", frames)


def test_multicast_and_clone_sessions_match_bmv2():
    import finsy as fy
    from finsy.p4entity import P4Replica

    writes = [+fy.P4MulticastGroupEntry(5, replicas=[P4Replica(1, instance=10), P4Replica(2, instance=20)]),
              +fy.P4CloneSessionEntry(4, replicas=[P4Replica(4, instance=0)]),
              +fy.P4CloneSessionEntry(6, replicas=[P4Replica(3, instance=7)])]
    frames = [eth(0x1234) + bytes([op, arg]) + b"payload!" for op, arg in ((2, 5), (3, 4), (7, 0), (3, 9))]
    sw = load("traffic")
    sw.mc_group_set(5, [(1, 10), (2, 20)])
    sw.clone_session_set(4, [(4, 0)])
    sw.clone_session_set(6, [(3, 7)])
    ours = [sorted(sw.process(1, f)) for f in frames]
    assert ours == bmv2_outputs("traffic", frames, writes)


def test_table_entries_priorities_and_selector_choice_match_bmv2():
    import finsy as fy

    from embedded_switch.match import Exact, Lpm, OptionalMatch, Range, Ternary
    I = "TblIngress."
    sw = load("tables")
    writes = []

    def entry(table, match_fy, match_ours, action, args, priority=0):
        writes.append(+fy.P4TableEntry(I + table, match=fy.P4TableMatch(match_fy), priority=priority,
                                       action=fy.P4TableAction(I + action, **args)))
        sw.table_add(I + table, match_ours, I + action, list(args.values()), priority=priority)

    entry("t_lpm", {"hdr.k.l": (0xAB00, 8)}, [Lpm(0xAB00, 8)], "set_lpm", {"v": 1})
    entry("t_lpm", {"hdr.k.l": (0xABC0, 12)}, [Lpm(0xABC0, 12)], "set_lpm", {"v": 2})
    entry("t_ternary", {"hdr.k.t": (0x40, 0xC0), "hdr.k.e": 1}, [Ternary(0x40, 0xC0), Exact(1)], "set_ternary",
          {"v": 1}, priority=10)
    entry("t_ternary", {"hdr.k.t": (0x42, 0xFF), "hdr.k.e": 1}, [Ternary(0x42, 0xFF), Exact(1)], "set_ternary",
          {"v": 2}, priority=20)
    entry("t_range", {"hdr.k.r": (10, 20)}, [Range(10, 20)], "set_range", {"v": 1}, priority=1)
    entry("t_range", {"hdr.k.r": (15, 30)}, [Range(15, 30)], "set_range", {"v": 2}, priority=2)
    entry("t_optional", {"hdr.k.e": 1}, [OptionalMatch(None), Exact(1)], "set_optional", {"v": 1}, priority=1)
    for mid in (30, 10, 20):   # created out of order: BMv2 picks by creation order, not by id
        writes.append(+fy.P4ActionProfileMember(I + "sel_prof", member_id=mid,
                                                action=fy.P4TableAction(I + "set_selected", v=mid, port=1)))
        sw.member_add(I + "sel_prof", mid, I + "set_selected", [mid, 1])
    writes.append(+fy.P4ActionProfileGroup(I + "sel_prof", group_id=1, max_size=4,
                                           members=[fy.P4Member(m, weight=1) for m in (10, 20, 30)]))
    sw.group_set(I + "sel_prof", 1, [10, 20, 30], create=True, max_size=4)
    writes.append(+fy.P4TableEntry(I + "t_sel", match=fy.P4TableMatch({"hdr.k.e": 1}),
                                   action=fy.P4IndirectAction(group_id=1)))
    sw.table_add_indirect(I + "t_sel", [Exact(1)], group=1)
    frames = [eth(0x1234) + bytes([1]) + l.to_bytes(2, "big") + bytes([t, r, 0, sel, 0])
              for l, t, r, sel in ((0xABCD, 0x42, 16, 0), (0xAB01, 0x43, 12, 1), (0x1111, 0x80, 25, 2),
                                   (0xABC5, 0x41, 9, 3), *((0, 0, 0, s) for s in range(4, 20)))]
    ours = [sorted(sw.process(1, f)) for f in frames]
    assert ours == bmv2_outputs("tables", frames, writes)


def test_union_stacks_match_bmv2():
    """pop_front is left out: BMv2 leaves the last union of the stack valid after it (the
    P4 spec, which the embedded switch follows, makes it invalid)."""
    a1, b1, a2 = b"\x0a\x01", b"\x0b\x00\x02", b"\x0a\x03"
    frames = [eth(0x1234) + bytes([n, op]) + opts + b"tail"
              for n, op, opts in ((3, 0, a1 + b1 + a2), (2, 2, b1 + a2), (1, 2, a1),
                                  (4, 0, a1 + a1 + a1 + b1), (2, 0, a1))]
    check("unions", frames)
