"""Digests over P4Runtime: DigestEntry, DigestList and DigestListAck, with real gRPC clients.

Each test starts a `Switch` and its server on 127.0.0.1, pushes the `digests` test
program (tests/unit/p4runtime/programs: a packet with EtherType 0x88b5 reports its
EtherType, any other its source MAC address and ingress port) and sends packets
through `Switch.process`; the digests come back on the controller's StreamChannel.
"""

from __future__ import annotations

import asyncio
import json
import queue
import time
from pathlib import Path

import finsy as fy
import pytest
from finsy.proto import p4r

from embedded_switch.p4runtime.server import serve
from embedded_switch.p4runtime.status import Code
from embedded_switch.ports import PortSet
from embedded_switch.switch import Switch
from tests.p4rt_client import (
    CPU_PORT,
    DEVICE_ID,
    Action,
    Client,
    rpc_error,
    running_bmv2,
    update_codes,
)

PROGRAM = Path(__file__).resolve().parents[1] / "unit" / "p4runtime" / "programs"
P4INFO = PROGRAM / "digests.p4info.txtpb"
BMV2_JSON = PROGRAM / "digests.json"

pytestmark = pytest.mark.skipif(
    not (P4INFO.exists() and BMV2_JSON.exists()),
    reason="the digests program is not compiled (run p4c as its header says)",
)

#: How long a test waits to be sure that no digest list is coming.
QUIET = 0.3


def frame(src: int, ether_type: int = 0x0800) -> bytes:
    """An Ethernet frame from MAC address `src`."""
    dst = 0x0A00000000FF
    return dst.to_bytes(6, "big") + src.to_bytes(6, "big") + ether_type.to_bytes(2, "big")


class Controller(Client):
    """The primary controller of a test: the raw client (tests/p4rt_client.py) for the
    digests program, with its StreamChannel open and arbitrated."""

    def __init__(self, port: int, election_id: int = 10):
        super().__init__(port, P4INFO, BMV2_JSON)
        self.stream = self.connect(election_id)
        self.stream.next("arbitration")

    def digest_list(self, timeout: float = 5.0) -> fy.P4DigestList:
        message = self.stream.next("digest", timeout)
        return fy.P4DigestList.decode(p4r.StreamMessageResponse(digest=message), self.schema)

    def no_digest_list(self) -> bool:
        try:
            self.stream.next("digest", QUIET)
        except queue.Empty:
            return True
        return False

    def ack(self, digest_list: fy.P4DigestList) -> None:
        self.stream.send(digest_ack=digest_list.ack().encode_update(self.schema).digest_ack)

    def ack_and_wait(self, digest_list: fy.P4DigestList) -> None:
        """Ack, then wait until the server has handled it: the stream is served in order,
        and an ack for a digest the P4Info lacks comes back as a stream error."""
        self.ack(digest_list)
        self.stream.send(digest_ack=p4r.DigestListAck(digest_id=99, list_id=1))
        assert self.stream.next("error").canonical_code == Code.INVALID_ARGUMENT


# -- fixtures ---------------------------------------------------------------------------


@pytest.fixture
def switch():
    return Switch(device_id=DEVICE_ID, cpu_port=CPU_PORT)


@pytest.fixture
def server(switch):
    server = serve(switch, PortSet(switch, {}), "127.0.0.1:0", device_id=DEVICE_ID)
    yield server
    server.stop(grace=None)


@pytest.fixture
def controller(server):
    c = Controller(server.port)
    c.set_pipeline()
    yield c
    c.close()


def learn(**config) -> fy.P4DigestEntry:
    return fy.P4DigestEntry("mac_learn_t", **config)


# -- DigestEntry ------------------------------------------------------------------------


def test_digest_entries_are_inserted_read_modified_and_deleted(controller):
    assert controller.read(fy.P4DigestEntry()) == []
    controller.write(+learn(max_list_size=4, max_timeout_ns=10**9, ack_timeout_ns=10**8))
    controller.write(+fy.P4DigestEntry("ether_type_t"))
    assert controller.read(learn()) == [
        learn(max_list_size=4, max_timeout_ns=10**9, ack_timeout_ns=10**8)
    ]
    assert len(controller.read(fy.P4DigestEntry())) == 2  # digest_id 0: every digest
    controller.write(~learn(max_list_size=1))
    assert controller.read(learn()) == [learn(max_list_size=1)]
    controller.write(-learn())
    assert controller.read(fy.P4DigestEntry()) == [fy.P4DigestEntry("ether_type_t")]


def test_digest_entry_errors_follow_the_spec(controller):
    controller.write(+learn())
    unknown = p4r.Update(
        type=p4r.Update.INSERT, entity=p4r.Entity(digest_entry=p4r.DigestEntry(digest_id=99))
    )
    codes = [
        update_codes(rpc_error(controller.write, update))
        for update in (
            +learn(),
            ~fy.P4DigestEntry("ether_type_t"),
            -fy.P4DigestEntry("ether_type_t"),
            unknown,
            ~learn(max_list_size=-1),
        )
    ]
    assert codes == [
        [Code.ALREADY_EXISTS],
        [Code.NOT_FOUND],
        [Code.NOT_FOUND],
        [Code.INVALID_ARGUMENT],
        [Code.INVALID_ARGUMENT],
    ]
    assert controller.read(learn()) == [learn()]  # the failed MODIFY changed nothing


def test_reconcile_keeps_digest_entries_and_commit_clears_them(controller, switch):
    controller.write(+learn(max_list_size=1))
    reformatted = json.dumps(json.loads(BMV2_JSON.read_bytes())).encode()  # a "new" program
    controller.set_pipeline(Action.RECONCILE_AND_COMMIT, device_config=reformatted)
    assert controller.read(fy.P4DigestEntry()) == [learn(max_list_size=1)]
    switch.process(3, frame(1))
    assert controller.digest_list().data == [{"src_addr": 1, "ingress_port": 3}]
    controller.set_pipeline()
    assert controller.read(fy.P4DigestEntry()) == []
    switch.process(3, frame(1))
    assert controller.no_digest_list()


# -- delivery ---------------------------------------------------------------------------


def test_an_enabled_digest_arrives_with_the_packet_fields(controller, switch):
    controller.write(+learn())
    before = time.time_ns()
    switch.process(3, frame(0x0A0000000002))
    digest_list = controller.digest_list()
    assert digest_list.digest_id == "mac_learn_t"
    assert digest_list.list_id == 1
    assert digest_list.data == [{"src_addr": 0x0A0000000002, "ingress_port": 3}]
    assert before <= digest_list.timestamp <= time.time_ns()


def test_members_are_canonical_bytestrings(controller, switch):
    controller.write(+learn())
    switch.process(3, frame(0x02))
    [data] = controller.stream.next("digest").data
    assert [m.bitstring for m in data.struct.members] == [b"\x02", b"\x03"]


def test_no_digest_entry_means_no_digest_list(controller, switch):
    switch.process(3, frame(0x01))
    assert controller.no_digest_list()
    controller.write(+fy.P4DigestEntry("ether_type_t"))
    switch.process(3, frame(0x01))  # mac_learn_t: still not enabled
    assert controller.no_digest_list()
    switch.process(3, frame(0x01, ether_type=0x88B5))
    assert controller.digest_list().data == [{"ether_type": 0x88B5}]
    controller.write(-fy.P4DigestEntry("ether_type_t"))
    switch.process(3, frame(0x01, ether_type=0x88B5))
    assert controller.no_digest_list()


def test_max_list_size_batches_distinct_digests(controller, switch):
    controller.write(+learn(max_list_size=3, max_timeout_ns=60 * 10**9))
    for src in (1, 2, 1):  # the second 1 duplicates one already waiting
        switch.process(3, frame(src))
    assert controller.no_digest_list()
    switch.process(4, frame(3))
    digest_list = controller.digest_list()
    assert [d["src_addr"] for d in digest_list.data] == [1, 2, 3]
    assert [d["ingress_port"] for d in digest_list.data] == [3, 3, 4]


def test_max_timeout_sends_a_partial_list(controller, switch):
    controller.write(+learn(max_list_size=100, max_timeout_ns=200_000_000))
    start = time.monotonic()
    switch.process(3, frame(1))
    switch.process(3, frame(2))
    digest_list = controller.digest_list()
    assert time.monotonic() - start >= 0.15
    assert [d["src_addr"] for d in digest_list.data] == [1, 2]


def test_unacknowledged_data_is_not_sent_again_until_acked(controller, switch):
    controller.write(+learn(ack_timeout_ns=60 * 10**9))
    switch.process(3, frame(1))
    first = controller.digest_list()
    switch.process(3, frame(1))
    assert controller.no_digest_list()
    switch.process(3, frame(2))  # other data is sent
    assert controller.digest_list().data == [{"src_addr": 2, "ingress_port": 3}]
    controller.ack_and_wait(first)
    switch.process(3, frame(1))
    again = controller.digest_list()
    assert again.data == first.data and again.list_id == 3


def test_unacknowledged_data_is_sent_again_after_ack_timeout(controller, switch):
    controller.write(+learn(ack_timeout_ns=200_000_000))
    switch.process(3, frame(1))
    controller.digest_list()
    switch.process(3, frame(1))
    assert controller.no_digest_list()
    time.sleep(0.2)
    switch.process(3, frame(1))
    assert controller.digest_list().data == [{"src_addr": 1, "ingress_port": 3}]


def test_without_ack_timeout_every_digest_is_sent(controller, switch):
    controller.write(+learn())
    switch.process(3, frame(1))
    switch.process(3, frame(1))
    assert [controller.digest_list().list_id for _ in range(2)] == [1, 2]


def test_acks_for_unknown_digests_or_from_backups_are_stream_errors(controller, server):
    controller.stream.send(digest_ack=p4r.DigestListAck(digest_id=99, list_id=1))
    error = controller.stream.next("error")
    assert error.canonical_code == Code.INVALID_ARGUMENT and error.HasField("digest_list_ack")
    backup = Controller(server.port, election_id=5)
    try:
        digest_id = controller.schema.digests["mac_learn_t"].id
        backup.stream.send(digest_ack=p4r.DigestListAck(digest_id=digest_id, list_id=1))
        assert backup.stream.next("error").canonical_code == Code.PERMISSION_DENIED
    finally:
        backup.close()


def test_only_the_primary_receives_digest_lists(controller, server, switch):
    backup = Controller(server.port, election_id=5)
    try:
        controller.write(+learn())
        switch.process(3, frame(1))
        assert controller.digest_list().data == [{"src_addr": 1, "ingress_port": 3}]
        assert backup.no_digest_list()
    finally:
        backup.close()


def test_finsy_switch_reads_and_acks_digests(server, switch):
    async def scenario():
        options = fy.SwitchOptions(p4info=P4INFO, p4blob=BMV2_JSON, device_id=DEVICE_ID)
        async with fy.Switch("s1", f"127.0.0.1:{server.port}", options) as sw:
            await sw.write([+learn(ack_timeout_ns=60 * 10**9)])
            lists = sw.read_digests("mac_learn_t")
            first_list = asyncio.ensure_future(anext(lists))
            await asyncio.sleep(0)  # finsy opens the digest queue when iteration starts
            await asyncio.to_thread(switch.process, 5, frame(7))
            first = await first_list
            await sw.write([first.ack()])
            await asyncio.sleep(0.3)  # the ack travels on the stream, the packet does not
            await asyncio.to_thread(switch.process, 5, frame(7))
            return first, await anext(lists)

    first, second = asyncio.run(asyncio.wait_for(scenario(), timeout=30))
    assert first.data == second.data == [{"src_addr": 7, "ingress_port": 5}]
    assert second.list_id == first.list_id + 1


# -- parity with BMv2 -------------------------------------------------------------------


def _parity_sequence(port: int) -> list:
    """Configure digests and send packets as packet-outs (the program has no controller
    header, so the payload enters on the CPU port); what the controller observes.

    Every config sets `max_list_size` and `ack_timeout_ns`, where BMv2 departs from the
    spec: with `max_list_size` 0 and no `max_timeout_ns` it waits for 1024 digests, and
    without `ack_timeout_ns` it sends a list only when `max_timeout_ns` expires.
    """
    controller = Controller(port)
    try:
        controller.set_pipeline()

        def send(*sources: int) -> None:
            for src in sources:
                controller.stream.send(packet=p4r.PacketOut(payload=frame(src)))

        def received() -> tuple[int, list]:
            digest_list = controller.digest_list()
            return digest_list.list_id, digest_list.data

        send(1)
        results = [controller.no_digest_list()]
        controller.write(+learn(max_list_size=1, ack_timeout_ns=60 * 10**9))
        send(1)
        first = controller.digest_list()
        results.append((first.list_id, first.data))
        send(1)
        results.append(controller.no_digest_list())
        controller.ack(first)
        time.sleep(0.2)
        send(1)
        results.append(received())
        controller.write(
            ~learn(max_list_size=2, max_timeout_ns=60 * 10**9, ack_timeout_ns=60 * 10**9)
        )
        send(2, 3)
        results.append(received())
        results.append(controller.read(learn()))
        controller.write(-learn())
        send(4)
        results.append(controller.no_digest_list())
        return results
    finally:
        controller.close()


@pytest.mark.parity
def test_the_same_digest_sequence_gives_the_same_results_as_bmv2(server, tmp_path):
    with running_bmv2(tmp_path) as port:
        assert _parity_sequence(server.port) == _parity_sequence(port)
