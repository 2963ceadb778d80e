"""The P4Runtime gRPC service of the embedded switch, served like `simple_switch_grpc`.

    from embedded_switch.p4runtime.server import serve
    server = serve(switch, ports, "127.0.0.1:0", device_id=1)
    server.port          # the TCP port actually bound (useful with port 0)
    ...
    server.stop(grace=None)

The service only moves messages: P4Runtime semantics live in `device.Device`.
Errors become gRPC statuses; a failed Write batch carries one `p4.v1.Error` per update
in the status details, under code UNKNOWN, as the spec's error reporting asks.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

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

_END = object()  # ends a StreamChannel response stream


class P4RuntimeService(p4r_grpc.P4RuntimeServicer):
    """gRPC servicer: each RPC delegates to the Device and reports its errors."""

    def __init__(self, device: Device):
        self.device = device

    def Write(self, request: p4r.WriteRequest, context) -> p4r.WriteResponse:
        try:
            errors = self.device.write(request)
        except P4RuntimeError as exc:
            abort(context, exc)
        if errors:
            failures = [e for e in errors if e.canonical_code not in (Code.OK, Code.ABORTED)]
            first = failures[0]
            message = (
                f"{len(failures)} of {len(errors)} updates failed;"
                f" first: {Code.Name(first.canonical_code)}: {first.message}"
            )
            context.abort_with_status(batch_status(message, errors))
        return p4r.WriteResponse()

    def Read(self, request: p4r.ReadRequest, context) -> Iterator[p4r.ReadResponse]:
        try:
            entities = self.device.read(request)
        except P4RuntimeError as exc:
            abort(context, exc)
        yield p4r.ReadResponse(entities=entities[:READ_CHUNK])
        for start in range(READ_CHUNK, len(entities), READ_CHUNK):
            yield p4r.ReadResponse(entities=entities[start : start + READ_CHUNK])

    def SetForwardingPipelineConfig(self, request, context):
        try:
            self.device.set_pipeline(request)
        except P4RuntimeError as exc:
            abort(context, exc)
        return p4r.SetForwardingPipelineConfigResponse()

    def GetForwardingPipelineConfig(self, request, context):
        try:
            return self.device.get_pipeline(request)
        except P4RuntimeError as exc:
            abort(context, exc)

    def Capabilities(self, request: p4r.CapabilitiesRequest, context):
        if request.device_id:
            try:
                self.device.check_device(request.device_id)
            except P4RuntimeError as exc:
                abort(context, exc)
        return p4r.CapabilitiesResponse(p4runtime_api_version=P4RUNTIME_API_VERSION)

    def StreamChannel(self, request_iterator, context) -> Iterator[p4r.StreamMessageResponse]:
        """Arbitration, packet-out, packet-in and digests for one controller.

        A reader thread consumes the client's messages; this generator sends what
        the device queues for the controller (arbitration notices, packet-ins,
        digest lists, stream errors) until the stream ends or arbitration fails.
        """
        outbox: queue.Queue = queue.Queue()

        def offer(message: p4r.StreamMessageResponse) -> None:
            if outbox.qsize() < PACKET_IN_BACKLOG:
                outbox.put(message)
            else:
                kind = message.WhichOneof("update")
                log.debug("%s dropped: the controller is %d messages behind", kind, outbox.qsize())

        controller = Controller(send=outbox.put, offer=offer)
        context.add_callback(lambda: outbox.put(_END))
        reader = threading.Thread(
            target=self._read_stream,
            args=(request_iterator, context, controller, outbox),
            name="p4runtime-stream",
            daemon=True,
        )
        reader.start()
        try:
            while True:
                item = outbox.get()
                if item is _END:
                    return
                if isinstance(item, P4RuntimeError):
                    abort(context, item)
                yield item
        finally:
            self.device.leave(controller)

    def _read_stream(self, requests, context, controller: Controller, outbox: queue.Queue) -> None:
        try:
            for request in requests:
                which = request.WhichOneof("update")
                if which == "arbitration":
                    self.device.arbitrate(controller, request.arbitration)
                elif which == "packet":
                    packet = request.packet
                    self._serve(
                        lambda: self.device.packet_out(controller, packet),
                        outbox,
                        lambda: {"packet_out": p4r.PacketOutError(packet_out=packet)},
                    )
                elif which == "digest_ack":
                    ack = request.digest_ack
                    self._serve(
                        lambda: self.device.digest_ack(controller, ack),
                        outbox,
                        lambda: {"digest_list_ack": p4r.DigestListAckError(digest_list_ack=ack)},
                    )
                else:
                    outbox.put(
                        _stream_error(
                            Code.UNIMPLEMENTED,
                            f"stream message '{which}' is not supported",
                            other=p4r.StreamOtherError(other=request.other),
                        )
                    )
        except P4RuntimeError as exc:
            outbox.put(exc)  # arbitration failures end the stream with their code
            return
        except Exception:  # noqa: BLE001 - whatever happens, the stream must end
            if context.is_active():
                log.exception("StreamChannel reader failed")
        outbox.put(_END)

    @staticmethod
    def _serve(call, outbox: queue.Queue, details) -> None:
        """Run a stream request; a failure becomes a StreamError whose `details()` name
        the request (built only then: a packet-out carries its whole payload)."""
        try:
            call()
        except SwitchError as exc:
            error = from_switch_error(exc)
        except P4RuntimeError as exc:
            error = exc
        else:
            return
        details = details()
        log.debug("%s refused: %s", next(iter(details)), error)
        outbox.put(_stream_error(error.code, error.message, **details))


def _stream_error(code: int, message: str, **details) -> p4r.StreamMessageResponse:
    return p4r.StreamMessageResponse(
        error=p4r.StreamError(canonical_code=code, message=message, **details)
    )


def serve(switch, ports, address: str, *, device_id: int, max_workers: int = 16) -> grpc.Server:
    """Start the P4Runtime server for `switch` on `address` ("host:port"; port 0 picks one).

    `ports` (an `embedded_switch.ports.PortSet`, or None without packet I/O) carries
    packet-out to the switch and packet-in from it. The returned server is started;
    its `port` attribute is the bound TCP port. Each open StreamChannel holds one of
    the `max_workers` threads.
    """
    device = Device(switch, ports, device_id)
    server = grpc.server(
        ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="p4runtime"),
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            # A second switch on the same port must fail, not share the port's clients.
            ("grpc.so_reuseport", 0),
        ],
    )
    p4r_grpc.add_P4RuntimeServicer_to_server(P4RuntimeService(device), server)
    try:
        port = server.add_insecure_port(address)
    except RuntimeError:
        port = 0
    if port == 0:
        raise OSError(f"P4Runtime server cannot listen on {address} (address in use?)")
    server.port = port
    server.start()
    log.info("P4Runtime server for device %d listening on port %d", device_id, port)
    return server
