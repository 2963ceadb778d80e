"""traffic.p4: unicast, multicast, clones, resubmit, recirculation, drop, truncate, exit
and the CPU port, with the instance types, replication ids and lengths BMv2 gives them."""
import pytest

from tests.conformance.loader import eth, load

CPU = 64
NORMAL, I2E, E2E, RECIRC, REPLICATION, RESUBMIT = 0, 1, 2, 4, 5, 6


@pytest.fixture
def sw():
    return load("traffic", cpu_port=CPU)


def frame(op: int, arg: int = 0) -> bytes:
    return eth(0x1234) + bytes([op & 0x7F, arg]) + b"payload!"


def info(data: bytes) -> dict:
    i = data[16:16 + 18]
    return dict(instance_type=int.from_bytes(i[0:4], "big"), rid=int.from_bytes(i[4:6], "big"),
                length=int.from_bytes(i[6:10], "big"), passes=i[10], resubmitted=i[11],
                ingress_port=int.from_bytes(i[12:14], "big"), egress_port=int.from_bytes(i[14:16], "big"),
                cloned=i[16])


def test_unicast(sw):
    [(port, data)] = sw.process(7, frame(1, 3))
    assert port == 3 and data[14] & 0x80
    assert info(data) | {} == dict(instance_type=NORMAL, rid=0, length=len(frame(1)), passes=0, resubmitted=0,
                                   ingress_port=7, egress_port=3, cloned=0)
    assert data.endswith(b"payload!")


def test_multicast_replicas_carry_their_rid(sw):
    sw.mc_group_set(5, [(1, 10), (2, 20)])
    out = sw.process(0, frame(2, 5))
    assert [(p, info(d)["rid"], info(d)["instance_type"]) for p, d in out] == \
        [(1, 10, REPLICATION), (2, 20, REPLICATION)]
    assert sw.process(0, frame(2, 6)) == []      # no such group


def test_ingress_clone(sw):
    sw.clone_session_set(4, [(4, 0)])
    out = sw.process(0, frame(3, 4))
    assert sorted((p, info(d)["instance_type"]) for p, d in out) == [(2, NORMAL), (4, I2E)]
    assert sw.process(0, frame(3, 9)) != []      # unknown session: no clone, original goes on


def test_resubmit_keeps_its_field_list(sw):
    [(port, data)] = sw.process(0, frame(4))
    assert port == 3
    assert (info(data)["resubmitted"], info(data)["instance_type"]) == (1, NORMAL)


def test_recirculation_keeps_its_field_list(sw):
    [(port, data)] = sw.process(0, frame(5, 2))
    i = info(data)
    assert (port, i["passes"], i["instance_type"], i["ingress_port"]) == (1, 2, NORMAL, 0)
    assert i["length"] == len(frame(5)) + 17    # the second pass saw the info header added by the first


def test_egress_clone(sw):
    sw.clone_session_set(6, [(5, 3)])
    out = sw.process(0, frame(7))
    assert [(p, info(d)["instance_type"], info(d)["cloned"], info(d)["rid"]) for p, d in out] == \
        [(1, NORMAL, 0x42, 0), (5, E2E, 0x42, 3)]


def test_drop_truncate_exit_and_cpu(sw):
    assert sw.process(0, frame(6)) == []
    [(_, data)] = sw.process(0, frame(8))
    assert len(data) == 20
    [(port, _)] = sw.process(0, frame(9))
    assert port == 3
    [(port, _)] = sw.process(0, frame(1, CPU))
    assert port == CPU


def test_clone_session_truncation(sw):
    sw.clone_session_set(4, [(4, 0)], packet_length_bytes=16)
    out = dict(sw.process(0, frame(3, 4)))
    assert len(out[4]) == 16 and len(out[2]) > 16


def test_digest_reaches_the_handler_after_processing(sw):
    got = []
    sw.set_digest_handler(lambda name, values: got.append((name, values)))
    [(port, _)] = sw.process(9, frame(10, 0x5A))
    assert port == 1
    assert got == [("learn_t", [0x020000000001, 9, 0x5A])]
    assert [f.bitwidth for f in sw.program.digests["learn_t"].fields] == [48, 9, 8]
    sw.set_digest_handler(None)
    sw.process(9, frame(10, 1))
    assert sw.stats["digest_no_handler"] == 1
