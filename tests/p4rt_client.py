"""A raw P4Runtime test client: a bare `P4RuntimeStub`, messages built by finsy's schema.

The integration tests of the embedded switch's P4Runtime server drive it (and BMv2, for
parity) with this client, close to the wire: every status code, trailer and stream
message stays visible, which a full controller library would hide.

    client = Client(port, P4INFO, BMV2_JSON)
    client.connect(election_id=10).next("arbitration")
    client.set_pipeline()
    client.write(+fy.P4TableEntry("l2", match=..., action=...))
    client.read(fy.P4TableEntry("l2"))          # decoded finsy entities
    client.close()
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from pathlib import Path

import finsy as fy
import grpc
import pytest
from finsy.p4entity import decode_entity
from finsy.proto import p4r, p4r_grpc, rpc_status

from dcia.targets import SwitchConfig, SwitchProcess, find_bmv2, free_tcp_port

DEVICE_ID = 1
CPU_PORT = 255

Action = p4r.SetForwardingPipelineConfigRequest


class Stream:
    """A StreamChannel: send requests, wait for responses of a kind."""

    def __init__(self, stub: p4r_grpc.P4RuntimeStub, device_id: int = DEVICE_ID):
        self.device_id = device_id
        self._requests: queue.Queue = queue.Queue()
        self._responses: queue.Queue = queue.Queue()
        self.error: grpc.RpcError | None = None
        self._call = stub.StreamChannel(iter(self._requests.get, None))
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        try:
            for response in self._call:
                self._responses.put(response)
        except grpc.RpcError as exc:
            self.error = exc
        self._responses.put(None)

    def send(self, **kind) -> None:
        self._requests.put(p4r.StreamMessageRequest(**kind))

    def arbitrate(self, election_id: int | None, device_id: int | None = None) -> None:
        update = p4r.MasterArbitrationUpdate(
            device_id=self.device_id if device_id is None else device_id
        )
        if election_id is not None:
            update.election_id.low = election_id
        self.send(arbitration=update)

    def next(self, kind: str, timeout: float = 5.0):
        """The next response carrying `kind` (other kinds are skipped); EOFError when
        the stream ends first (`error` then holds its status), queue.Empty on timeout."""
        while True:
            response = self._responses.get(timeout=timeout)
            if response is None:
                raise EOFError(f"stream ended: {self.error}")
            if response.WhichOneof("update") == kind:
                return getattr(response, kind)

    def status(self, timeout: float = 5.0) -> int:
        """Status code of the next arbitration notice."""
        return self.next("arbitration", timeout).status.code

    def close(self) -> None:
        self._requests.put(None)
        self._call.cancel()
        self._thread.join(timeout=5)


class Client:
    """A controller: stub, streams, finsy's schema of the program for names.

    `credentials` (grpc.ssl_channel_credentials) makes the channel TLS; the server's
    certificate must then name 127.0.0.1. `timeout` (seconds) bounds every unary call:
    one that takes longer fails with DEADLINE_EXCEEDED.
    """

    def __init__(
        self,
        port: int,
        p4info: Path,
        device_config: Path,
        *,
        device_id: int = DEVICE_ID,
        credentials: grpc.ChannelCredentials | None = None,
        timeout: float | None = None,
    ):
        target = f"127.0.0.1:{port}"
        if credentials is None:
            self.channel = grpc.insecure_channel(target)
        else:
            self.channel = grpc.secure_channel(target, credentials)
        self.stub = p4r_grpc.P4RuntimeStub(self.channel)
        self.schema = fy.P4Schema(p4info)
        self.device_config = device_config
        self.device_id = device_id
        self.timeout = timeout
        self.election_id: int | None = None
        self.streams: list[Stream] = []

    def connect(self, election_id: int | None) -> Stream:
        """Open a StreamChannel and bid with `election_id`; later requests carry it."""
        stream = Stream(self.stub, self.device_id)
        self.streams.append(stream)
        stream.arbitrate(election_id)
        self.election_id = election_id
        return stream

    def _election(self, request) -> None:
        if self.election_id is not None:
            request.election_id.low = self.election_id

    def set_pipeline(
        self, action=Action.VERIFY_AND_COMMIT, p4info=None, device_config=None, cookie=None
    ) -> None:
        request = p4r.SetForwardingPipelineConfigRequest(device_id=self.device_id, action=action)
        if action != Action.COMMIT:
            request.config.p4info.CopyFrom(p4info or self.schema.p4info)
            request.config.p4_device_config = device_config or self.device_config.read_bytes()
            if cookie is not None:
                request.config.cookie.cookie = cookie
        self._election(request)
        self.stub.SetForwardingPipelineConfig(request, timeout=self.timeout)

    def write(self, *updates, atomicity=p4r.WriteRequest.CONTINUE_ON_ERROR, device_id=None):
        """Send a batch; updates are finsy entities with +/~/- or raw p4r.Update."""
        request = p4r.WriteRequest(
            device_id=self.device_id if device_id is None else device_id, atomicity=atomicity
        )
        for update in updates:
            if not isinstance(update, p4r.Update):
                update = update.encode_update(self.schema)
            request.updates.append(update)
        self._election(request)
        self.stub.Write(request, timeout=self.timeout)

    def read(self, *entities) -> list:
        """Decoded entities (finsy objects) the filters select."""
        request = p4r.ReadRequest(device_id=self.device_id)
        for entity in entities:
            request.entities.append(
                entity if isinstance(entity, p4r.Entity) else entity.encode(self.schema)
            )
        return [
            decode_entity(e, self.schema)
            for response in self.stub.Read(request, timeout=self.timeout)
            for e in response.entities
        ]

    def read_raw(self, *entities: p4r.Entity) -> list[p4r.Entity]:
        request = p4r.ReadRequest(device_id=self.device_id, entities=entities)
        responses = self.stub.Read(request, timeout=self.timeout)
        return [e for response in responses for e in response.entities]

    def close(self) -> None:
        for stream in self.streams:
            stream.close()
        self.channel.close()


def rpc_error(call, *args, **kwargs) -> grpc.RpcError:
    """The RpcError `call` raises (fails the test if it succeeds)."""
    with pytest.raises(grpc.RpcError) as info:
        call(*args, **kwargs)
    return info.value


def batch_errors(error: grpc.RpcError) -> list[p4r.Error]:
    """The per-update `p4.v1.Error`s of a failed Write's status details."""
    assert error.code() == grpc.StatusCode.UNKNOWN, error
    details = dict(error.trailing_metadata())["grpc-status-details-bin"]
    status = rpc_status.Status.FromString(details)
    errors = []
    for detail in status.details:
        err = p4r.Error()
        assert detail.Unpack(err)
        errors.append(err)
    return errors


def update_codes(error: grpc.RpcError) -> list[int]:
    """Per-update canonical codes from a failed Write's status details."""
    return [err.canonical_code for err in batch_errors(error)]


def observed(call) -> object:
    """What a client can observe of a call: "OK", an RPC code, or per-update codes."""
    try:
        call()
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.UNKNOWN:
            return update_codes(exc)
        return exc.code()
    return "OK"


@contextlib.contextmanager
def running_bmv2(tmp_path: Path, *, tls_args: tuple[str, ...] = ()) -> Iterator[int]:
    """BMv2 simple_switch_grpc without a program, as the embedded server under test
    starts, on a free loopback port; yields that port. Skips where BMv2 is not installed."""
    if find_bmv2() is None:
        pytest.skip("simple_switch_grpc (BMv2) is not installed")
    config = SwitchConfig(ports={}, grpc_addr=f"127.0.0.1:{free_tcp_port()}",
                          device_id=DEVICE_ID, cpu_port=CPU_PORT, log_level="off",
                          tls_args=tls_args)
    with SwitchProcess("bmv2", config, stdout_path=tmp_path / "bmv2.log"):
        yield int(config.grpc_addr.rsplit(":", 1)[1])
