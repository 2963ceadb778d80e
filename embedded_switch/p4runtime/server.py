"""The P4Runtime gRPC service of the embedded switch, served like `simple_switch_grpc`.

    from embedded_switch.p4runtime.server import serve
    server = serve(switch, ports, "127.0.0.1:0", device_id=1)
    server.port          # the TCP port actually bound (useful with port 0)
    ...
    server.stop()

The service only moves messages: P4Runtime semantics live in `device.Device`.
Errors become gRPC statuses; a failed Write batch carries one `p4.v1.Error` per update
in the status details, under code UNKNOWN, as the spec's error reporting asks (as many
as fit in a bounded trailer: see `status.batch_status`).

The server runs on grpc.aio in a thread of its own, so that an open StreamChannel
costs no thread: any number of idle or slow streams leave every other client served.
The work of an RPC runs in a pool of `max_workers` threads that only unary RPCs use;
stream messages (arbitration, packet-out, digest acks) run one at a time, in arrival
order, on one more thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import Executor, ThreadPoolExecutor

import grpc
from finsy.proto import p4r, p4r_grpc

from embedded_switch.errors import SwitchError
from embedded_switch.p4runtime.arbitration import Controller
from embedded_switch.p4runtime.device import Device
from embedded_switch.p4runtime.status import (
    Code,
    P4RuntimeError,
    abort,
    batch_status,
    from_switch_error,
)

log = logging.getLogger(__name__)

#: The P4Runtime version of the protos this server is built on (finsy's, v1.5).
P4RUNTIME_API_VERSION = "1.5.0"

#: Entities per ReadResponse message; the stream carries as many messages as needed.
READ_CHUNK = 1000

#: BMv2 JSON programs with unrolled layers are large: allow big messages both ways.
MAX_MESSAGE_BYTES = 256 * 1024 * 1024

#: Messages a controller may have waiting before further packet-ins and digest lists
#: are dropped.
PACKET_IN_BACKLOG = 10_000

#: Payload bytes of a refused packet-out that its StreamError echoes.
ECHOED_PAYLOAD_BYTES = 64

_END = object()  # ends a StreamChannel response stream


class _Outbox:
    """What the device queues for one controller, from any thread, for its stream."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue = asyncio.Queue()

    def put(self, item) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the server has stopped: nobody is listening
            pass

    def offer(self, message: p4r.StreamMessageResponse) -> None:
        """Queue a packet-in or digest list unless the controller is too far behind."""
        if self._queue.qsize() < PACKET_IN_BACKLOG:
            self.put(message)
        else:
            kind = message.WhichOneof("update")
            log.debug("%s dropped: the controller is %d messages behind", kind, self._queue.qsize())

    async def get(self):
        return await self._queue.get()


class P4RuntimeService(p4r_grpc.P4RuntimeServicer):
    """gRPC servicer: each RPC delegates to the Device and reports its errors.

    `requests` runs the device work of unary RPCs; `streams` (one thread) that of
    stream messages, so a stream's messages are handled in order, its departure last.
    """

    def __init__(self, device: Device, requests: Executor, streams: Executor):
        self.device = device
        self._requests = requests
        self._streams = streams

    async def _call(self, context, function, *args):
        """`function(*args)` on the unary pool; a P4RuntimeError ends the RPC."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._requests, function, *args)
        except P4RuntimeError as exc:
            await abort(context, exc)

    async def Write(self, request: p4r.WriteRequest, context) -> p4r.WriteResponse:
        errors = await self._call(context, self.device.write, request)
        if errors:
            status = batch_status(errors)
            await context.abort(status.code, status.message, status.trailing_metadata)
        return p4r.WriteResponse()

    async def Read(self, request: p4r.ReadRequest, context):
        entities = await self._call(context, self.device.read, request)
        for start in range(0, max(len(entities), 1), READ_CHUNK):
            yield p4r.ReadResponse(entities=entities[start : start + READ_CHUNK])

    async def SetForwardingPipelineConfig(self, request, context):
        await self._call(context, self.device.set_pipeline, request)
        return p4r.SetForwardingPipelineConfigResponse()

    async def GetForwardingPipelineConfig(self, request, context):
        return await self._call(context, self.device.get_pipeline, request)

    async def Capabilities(self, request: p4r.CapabilitiesRequest, context):
        if request.device_id:
            try:
                self.device.check_device(request.device_id)
            except P4RuntimeError as exc:
                await abort(context, exc)
        return p4r.CapabilitiesResponse(p4runtime_api_version=P4RUNTIME_API_VERSION)

    async def StreamChannel(self, request_iterator, context):
        """Arbitration, packet-out, packet-in and digests for one controller.

        A task consumes the client's messages; this generator sends what the device
        queues for the controller (arbitration notices, packet-ins, digest lists,
        stream errors) until the stream ends or arbitration fails.
        """
        outbox = _Outbox()
        controller = Controller(send=outbox.put, offer=outbox.offer)
        reader = asyncio.create_task(self._read_stream(request_iterator, controller, outbox))
        try:
            while True:
                item = await outbox.get()
                if item is _END:
                    return
                if isinstance(item, P4RuntimeError):
                    await abort(context, item)
                yield item
        finally:
            reader.cancel()
            try:
                self._streams.submit(self.device.leave, controller)
            except RuntimeError:  # the server is stopping: the device goes with it
                pass

    async def _read_stream(self, requests, controller: Controller, outbox: _Outbox) -> None:
        loop = asyncio.get_running_loop()

        async def run(function, *args) -> None:
            await loop.run_in_executor(self._streams, function, controller, *args)

        try:
            async for request in requests:
                which = request.WhichOneof("update")
                if which == "arbitration":
                    await run(self.device.arbitrate, request.arbitration)
                elif which == "packet":
                    packet = request.packet
                    await self._serve(
                        run(self.device.packet_out, packet),
                        outbox,
                        lambda: {"packet_out": p4r.PacketOutError(packet_out=_echo(packet))},
                    )
                elif which == "digest_ack":
                    ack = request.digest_ack
                    await self._serve(
                        run(self.device.digest_ack, ack),
                        outbox,
                        lambda: {"digest_list_ack": p4r.DigestListAckError(digest_list_ack=ack)},
                    )
                else:
                    other = p4r.StreamOtherError()
                    other.other.type_url = request.other.type_url  # not its value: unbounded
                    outbox.put(
                        _stream_error(
                            Code.UNIMPLEMENTED,
                            f"stream message '{which}' is not supported",
                            other=other,
                        )
                    )
        except P4RuntimeError as exc:
            outbox.put(exc)  # arbitration failures end the stream with their code
            return
        except grpc.RpcError as exc:
            log.debug("StreamChannel ended by the client: %s", exc)
        except Exception:  # noqa: BLE001 - whatever happens, the stream must end
            log.exception("StreamChannel reader failed")
        outbox.put(_END)

    @staticmethod
    async def _serve(call, outbox: _Outbox, details) -> None:
        """Await a stream request; a failure becomes a StreamError whose `details()` name
        the request (built only then: a packet-out carries its whole payload)."""
        try:
            await call
        except SwitchError as exc:
            error = from_switch_error(exc)
        except P4RuntimeError as exc:
            error = exc
        else:
            return
        details = details()
        log.debug("%s refused: %s", next(iter(details)), error)
        outbox.put(_stream_error(error.code, error.message, **details))


def _echo(packet: p4r.PacketOut) -> p4r.PacketOut:
    """A refused packet-out as its StreamError names it: metadata, start of the payload."""
    return p4r.PacketOut(payload=packet.payload[:ECHOED_PAYLOAD_BYTES], metadata=packet.metadata)


def _stream_error(code: int, message: str, **details) -> p4r.StreamMessageResponse:
    return p4r.StreamMessageResponse(
        error=p4r.StreamError(canonical_code=code, message=message, **details)
    )


class P4RuntimeServer:
    """A running P4Runtime server: the TCP `port` it listens on; `stop()` ends it."""

    def __init__(self, device: Device, max_workers: int):
        self.device = device
        self.port = 0
        self._requests = ThreadPoolExecutor(max_workers, thread_name_prefix="p4runtime")
        self._streams = ThreadPoolExecutor(1, thread_name_prefix="p4runtime-stream")
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="p4runtime-server", daemon=True
        )
        self._server: grpc.aio.Server | None = None

    def start(self, address: str, credentials: grpc.ServerCredentials | None) -> None:
        self._thread.start()
        try:
            self.port = self._run(self._start(address, credentials))
        except BaseException:
            self._close()
            raise

    async def _start(self, address: str, credentials) -> int:
        self._server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                # A second switch on the same port must fail, not share the port's clients.
                ("grpc.so_reuseport", 0),
            ],
        )
        service = P4RuntimeService(self.device, self._requests, self._streams)
        p4r_grpc.add_P4RuntimeServicer_to_server(service, self._server)
        try:
            if credentials is None:
                port = self._server.add_insecure_port(address)
            else:
                port = self._server.add_secure_port(address, credentials)
        except RuntimeError:
            port = 0
        if port == 0:
            raise OSError(f"P4Runtime server cannot listen on {address} (address in use?)")
        await self._server.start()
        return port

    def stop(self, grace: float | None = None) -> None:
        """Stop serving (letting RPCs in progress finish for `grace` seconds); returns
        once the server and its threads are gone."""
        if self._server is not None:
            self._run(self._server.stop(grace))
            self._server = None
        self._close()

    def _run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def _close(self) -> None:
        self._streams.shutdown(wait=True)
        self._requests.shutdown(wait=True)
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
        if not self._loop.is_closed():
            self._loop.close()


def serve(
    switch,
    ports,
    address: str,
    *,
    device_id: int,
    credentials: grpc.ServerCredentials | None = None,
    max_workers: int = 16,
) -> P4RuntimeServer:
    """Start the P4Runtime server for `switch` on `address` ("host:port"; port 0 picks one).

    `ports` (an `embedded_switch.ports.PortSet`, or None without packet I/O) carries
    packet-out to the switch and packet-in from it. `credentials`
    (`grpc.ssl_server_credentials`) makes it a TLS server. The returned server is
    started; its `port` attribute is the bound TCP port. `max_workers` threads serve
    unary RPCs; streams take none.
    """
    server = P4RuntimeServer(Device(switch, ports, device_id), max_workers)
    server.start(address, credentials)
    log.info("P4Runtime server for device %d listening on port %d", device_id, server.port)
    return server
