"""The embedded switch's P4Runtime server under hostile or careless clients.

Idle streams must not starve other clients, the number of controllers is bounded as in
BMv2, and an error never carries more than a bounded part of the request it reports on:
gRPC clients refuse trailers above 8 KB by default, and echoing a value costs memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator

import finsy as fy
import grpc
import pytest
from finsy.proto import p4r, p4r_grpc

from embedded_switch.p4runtime.arbitration import MAX_CONTROLLERS
from embedded_switch.p4runtime.server import ECHOED_PAYLOAD_BYTES, serve
from embedded_switch.p4runtime.status import MAX_MESSAGE_CHARS, MAX_STATUS_BYTES, Code
from embedded_switch.ports import PortSet
from embedded_switch.switch import Switch
from tests.integration.test_p4runtime_server import features_client, l2_entry, raw_l2
from tests.p4rt_client import (
    CPU_PORT,
    DEVICE_ID,
    batch_errors,
    observed,
    rpc_error,
    running_bmv2,
)

#: gRPC's default limit on the metadata a client accepts (soft limit, bytes).
CLIENT_METADATA_LIMIT = 8 * 1024

#: Entries the l2 table of p4rt_features holds.
L2_SIZE = 256


@pytest.fixture
def switch():
    return Switch(device_id=DEVICE_ID, cpu_port=CPU_PORT)


@pytest.fixture
def server(switch):
    server = serve(switch, PortSet(switch, {}), "127.0.0.1:0", device_id=DEVICE_ID)
    yield server
    server.stop(grace=None)


#: The election id of the `client` fixture: higher than any backup's in these tests.
PRIMARY = 1000


@pytest.fixture
def client(server):
    """The primary controller, with the program pushed."""
    c = features_client(server.port)
    c.connect(election_id=PRIMARY).next("arbitration")
    c.set_pipeline()
    yield c
    c.close()


@contextlib.contextmanager
def idle_streams(port: int, count: int, connections: int = 4) -> Iterator[None]:
    """`count` StreamChannels, spread over `connections` TCP connections, that never send
    a message: opened (and given a second to reach the server) on entry, closed on exit."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="idle-streams", daemon=True)
    thread.start()
    never = asyncio.Event()

    async def silence():
        await never.wait()
        yield p4r.StreamMessageRequest()  # never reached

    async def open_streams():
        channels = [
            grpc.aio.insecure_channel(
                f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)]
            )
            for _ in range(connections)
        ]
        calls = [
            p4r_grpc.P4RuntimeStub(channels[i % connections]).StreamChannel(silence())
            for i in range(count)
        ]
        await asyncio.sleep(1.0)
        return channels, calls

    async def close_streams(channels, calls):
        for call in calls:
            call.cancel()
        for channel in channels:
            await channel.close()
        await asyncio.sleep(0.2)  # gRPC's last events for the calls, before the loop closes

    channels, calls = asyncio.run_coroutine_threadsafe(open_streams(), loop).result(30)
    try:
        yield
    finally:
        asyncio.run_coroutine_threadsafe(close_streams(channels, calls), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


# -- idle and abusive streams -----------------------------------------------------------


def test_idle_streams_do_not_starve_a_new_controller(server):
    with idle_streams(server.port, 200):
        c = features_client(server.port)
        c.timeout = 5.0
        try:
            start = time.monotonic()
            assert c.connect(election_id=10).status(timeout=2.0) == Code.OK
            c.set_pipeline()
            c.write(+l2_entry())
            assert len(c.read(fy.P4TableEntry("l2"))) == 1
            assert time.monotonic() - start < 5.0
        finally:
            c.close()


def test_unary_calls_are_served_while_every_controller_slot_is_taken(client, server):
    backups = [features_client(server.port) for _ in range(MAX_CONTROLLERS - 1)]
    try:
        for election_id, backup in enumerate(backups, start=1):
            assert backup.connect(election_id).status() == Code.ALREADY_EXISTS
        client.timeout = 5.0
        client.write(+l2_entry())
        assert len(client.read(fy.P4TableEntry("l2"))) == 1
    finally:
        for backup in backups:
            backup.close()


def test_a_controller_past_the_limit_is_refused_with_resource_exhausted(client, server):
    backups = [features_client(server.port) for _ in range(MAX_CONTROLLERS)]
    try:
        for election_id, backup in enumerate(backups[:-1], start=1):
            assert backup.connect(election_id).status() == Code.ALREADY_EXISTS
        refused = backups[-1].connect(election_id=100)
        with pytest.raises(EOFError):
            refused.next("arbitration")
        assert refused.error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        backups[0].streams[0].close()  # a slot is free again
        time.sleep(0.3)
        assert backups[-1].connect(election_id=100).status() == Code.ALREADY_EXISTS
    finally:
        for backup in backups:
            backup.close()


def _controller_limit_sequence(port: int) -> list:
    """Fill every controller slot, bid once more, free a slot, bid again."""
    clients = [features_client(port) for _ in range(MAX_CONTROLLERS + 1)]
    try:
        results = [clients[i].connect(i + 1).status() for i in range(MAX_CONTROLLERS)]
        extra = clients[-1].connect(election_id=100)
        with pytest.raises(EOFError):
            extra.next("arbitration")
        results.append(extra.error.code())
        clients[0].streams[0].close()
        time.sleep(0.3)
        results.append(clients[-1].connect(election_id=100).status())
        return results
    finally:
        for c in clients:
            c.close()


@pytest.mark.parity
def test_the_controller_limit_is_bmv2s(server, tmp_path):
    with running_bmv2(tmp_path) as port:
        assert _controller_limit_sequence(server.port) == _controller_limit_sequence(port)


# -- errors are bounded -----------------------------------------------------------------


def trailer_bytes(error: grpc.RpcError) -> int:
    return sum(len(key) + len(value) for key, value in error.trailing_metadata())


def test_a_huge_parameter_is_refused_with_a_short_error(client):
    huge = b"\x01" * (50 * 1024 * 1024)
    error = rpc_error(client.write, raw_l2(client.schema, b"\x0a", huge))
    [update] = batch_errors(error)
    assert update.canonical_code == Code.INVALID_ARGUMENT
    assert "52428800 bytes" in update.message and "9 bits" in update.message
    assert len(update.message) <= MAX_MESSAGE_CHARS
    assert trailer_bytes(error) < CLIENT_METADATA_LIMIT


def test_a_huge_key_of_an_exact_match_is_refused_with_a_short_error(client):
    error = rpc_error(client.write, raw_l2(client.schema, b"\xff" * (10 * 1024 * 1024)))
    [update] = batch_errors(error)
    assert update.canonical_code == Code.INVALID_ARGUMENT
    assert len(update.message) <= MAX_MESSAGE_CHARS and "10485760 bytes" in update.message


def test_a_huge_role_name_is_refused_with_a_short_error(client):
    request = p4r.WriteRequest(device_id=DEVICE_ID, role="r" * (1024 * 1024))
    request.election_id.low = PRIMARY
    error = rpc_error(client.stub.Write, request)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert len(error.details()) <= MAX_MESSAGE_CHARS


def test_a_batch_larger_than_the_table_reports_every_failure_in_a_bounded_trailer(client):
    updates = [+l2_entry(mac=i + 1) for i in range(L2_SIZE + 44)]
    error = rpc_error(client.write, *updates)
    assert error.details().startswith(f"44 of {len(updates)} updates failed")
    assert f"RESOURCE_EXHAUSTED: 44 (first update {L2_SIZE}" in error.details()
    assert trailer_bytes(error) < CLIENT_METADATA_LIMIT
    errors = batch_errors(error)
    assert 0 < len(errors) < len(updates)  # a prefix: error i still belongs to update i
    assert all(e.canonical_code == Code.OK for e in errors[:L2_SIZE])
    assert len(client.read(fy.P4TableEntry("l2"))) == L2_SIZE


def test_a_batch_whose_errors_fit_carries_one_error_per_update(client):
    updates = [+l2_entry(mac=1)] * 20
    errors = batch_errors(rpc_error(client.write, *updates))
    assert [e.canonical_code for e in errors] == [Code.OK] + [Code.ALREADY_EXISTS] * 19


def test_every_batch_status_fits_the_budget(client):
    long_failures = [raw_l2(client.schema, b"\xff" * 4096) for _ in range(400)]
    error = rpc_error(client.write, *long_failures)
    status_bytes = dict(error.trailing_metadata())["grpc-status-details-bin"]
    assert len(status_bytes) <= MAX_STATUS_BYTES
    assert error.details().startswith("400 of 400 updates failed")


def test_a_refused_packet_out_is_echoed_with_the_start_of_its_payload(client):
    stream = client.streams[0]
    unknown = p4r.PacketMetadata(metadata_id=99, value=b"\x01")
    stream.send(packet=p4r.PacketOut(payload=b"x" * (1024 * 1024), metadata=[unknown]))
    error = stream.next("error")
    assert error.canonical_code == Code.INVALID_ARGUMENT
    assert list(error.packet_out.packet_out.metadata) == [unknown]
    assert error.packet_out.packet_out.payload == b"x" * ECHOED_PAYLOAD_BYTES


def _huge_value_sequence(port: int) -> list:
    """What a default gRPC client sees of over-wide values and an over-full batch."""
    c = features_client(port)
    try:
        c.connect(election_id=10).next("arbitration")
        c.set_pipeline()
        huge = b"\x01" * (1024 * 1024)
        return [
            observed(lambda: c.write(raw_l2(c.schema, b"\x0a", huge))),
            observed(lambda: c.write(raw_l2(c.schema, huge))),
        ]
    finally:
        c.close()


@pytest.mark.parity
def test_over_wide_values_get_the_codes_bmv2_gives(server, tmp_path):
    with running_bmv2(tmp_path) as port:
        assert _huge_value_sequence(server.port) == _huge_value_sequence(port)
