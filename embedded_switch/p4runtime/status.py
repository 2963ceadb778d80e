"""P4Runtime errors and how they travel over gRPC.

Everything below the RPC handlers raises `P4RuntimeError(code, message)`; the handlers
turn it into a gRPC status. Batch errors (one per update of a Write) travel as
`google.rpc.Status` in the `grpc-status-details-bin` trailer, each detail a packed
`p4.v1.Error`, under the overall code UNKNOWN, as the P4Runtime spec asks.

What an error carries is bounded, whatever the request held: a message is cut to
`MAX_MESSAGE_CHARS`, and the details of a batch stop (at an update boundary, so that
detail i still belongs to update i) before the status passes `MAX_STATUS_BYTES`, since
gRPC clients refuse trailers above 8 KB by default. The status message always counts
every failure.

    >>> P4RuntimeError(Code.NOT_FOUND, "no entry").code == Code.NOT_FOUND
    True
    >>> len(P4RuntimeError(Code.INVALID_ARGUMENT, "x" * 10**6).message) == MAX_MESSAGE_CHARS
    True
    >>> show_bytes(bytes(range(40)))
    '0x0001020304050607... (40 bytes)'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import grpc
from finsy.proto import p4r, rpc_code, rpc_status
from google.protobuf import any_pb2

from embedded_switch import errors as switch_errors

Code = rpc_code.Code

#: Error space reported in `p4.v1.Error.space`.
ERROR_SPACE = "embedded-switch"

#: The longest message an error carries; a longer one is cut, saying how long it was.
MAX_MESSAGE_CHARS = 512

#: The largest serialized `google.rpc.Status` of a failed Write (message and details).
#: With the message repeated in `grpc-message`, the trailers stay below the 8 KB that
#: gRPC clients accept by default.
MAX_STATUS_BYTES = 4096

#: Bytes of a value that a message shows before eliding the rest.
SHOWN_BYTES = 8

_GRPC_CODES = {code.value[0]: code for code in grpc.StatusCode}


def bounded(message: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """`message`, cut to at most `limit` characters (the cut says how long it was)."""
    if len(message) <= limit:
        return message
    tail = f"... ({len(message)} characters)"
    return message[: limit - len(tail)] + tail


def show_bytes(data: bytes) -> str:
    """A bytestring for a message: in hex, only its first `SHOWN_BYTES` when longer."""
    if len(data) <= SHOWN_BYTES:
        return "0x" + data.hex()
    return f"0x{data[:SHOWN_BYTES].hex()}... ({len(data)} bytes)"


class P4RuntimeError(Exception):
    """A request (or one update of a batch) failed with a canonical gRPC code."""

    def __init__(self, code: int, message: str):
        message = bounded(message)
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{Code.Name(self.code)}: {self.message}"


# The executor's exceptions, most specific first.
_SWITCH_ERROR_CODES: tuple[tuple[type[Exception], int], ...] = (
    (switch_errors.NotFound, Code.NOT_FOUND),
    (switch_errors.AlreadyExists, Code.ALREADY_EXISTS),
    (switch_errors.InvalidArgument, Code.INVALID_ARGUMENT),
    (switch_errors.ResourceExhausted, Code.RESOURCE_EXHAUSTED),
    (switch_errors.Unimplemented, Code.UNIMPLEMENTED),
    (switch_errors.PipelineError, Code.INVALID_ARGUMENT),
)


def invalid(message: str) -> P4RuntimeError:
    return P4RuntimeError(Code.INVALID_ARGUMENT, message)


def not_found(message: str) -> P4RuntimeError:
    return P4RuntimeError(Code.NOT_FOUND, message)


def permission_denied(message: str) -> P4RuntimeError:
    return P4RuntimeError(Code.PERMISSION_DENIED, message)


def unimplemented(message: str) -> P4RuntimeError:
    return P4RuntimeError(Code.UNIMPLEMENTED, message)


def from_switch_error(exc: switch_errors.SwitchError) -> P4RuntimeError:
    """Translate an executor exception into the P4Runtime code it stands for."""
    for kind, code in _SWITCH_ERROR_CODES:
        if isinstance(exc, kind):
            return P4RuntimeError(code, str(exc))
    return P4RuntimeError(Code.UNKNOWN, str(exc))


def grpc_code(code: int) -> grpc.StatusCode:
    """The grpc.StatusCode with the canonical number `code`."""
    return _GRPC_CODES.get(code, grpc.StatusCode.UNKNOWN)


def error_message(code: int, message: str = "") -> p4r.Error:
    """A `p4.v1.Error` for one update; OK carries no other field."""
    if code == Code.OK:
        return p4r.Error(canonical_code=Code.OK)
    return p4r.Error(canonical_code=code, message=bounded(message), space=ERROR_SPACE)


@dataclass(frozen=True)
class BatchStatus:
    """How a failed Write ends: UNKNOWN, `message`, and the status in the trailers."""

    message: str
    trailing_metadata: tuple[tuple[str, bytes], ...]
    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN


def batch_status(errors: Sequence[p4r.Error]) -> BatchStatus:
    """UNKNOWN with one `p4.v1.Error` per update, in order, as many as `MAX_STATUS_BYTES`
    allows; the message counts the failures of every update by code.

    >>> ok, full = error_message(Code.OK), error_message(Code.RESOURCE_EXHAUSTED, "full")
    >>> batch_status([ok, full, full]).message
    '2 of 3 updates failed: RESOURCE_EXHAUSTED: 2 (first update 1: full)'
    """
    summary = _summary(errors)
    status = rpc_status.Status(code=Code.UNKNOWN, message=summary)
    room = MAX_STATUS_BYTES - status.ByteSize() - _NOTE_BYTES
    for index, error in enumerate(errors):
        detail = any_pb2.Any()
        detail.Pack(error)
        room -= detail.ByteSize() + _FIELD_OVERHEAD
        if room < 0:
            status.message = (
                f"{summary}. Details of updates 0..{index - 1} only"
                f" (the status is capped at {MAX_STATUS_BYTES} bytes)"
            )
            break
        status.details.append(detail)
    return BatchStatus(
        status.message, (("grpc-status-details-bin", status.SerializeToString()),)
    )


#: Bytes the note on cut details may add to the message; a detail's tag and length.
_NOTE_BYTES = 96
_FIELD_OVERHEAD = 4


def _summary(errors: Sequence[p4r.Error]) -> str:
    """'N of M updates failed: CODE: count (first update i: message); ...'."""
    by_code: dict[int, list[int]] = {}
    for index, error in enumerate(errors):
        by_code.setdefault(error.canonical_code, []).append(index)
    aborted = by_code.pop(Code.ABORTED, [])
    by_code.pop(Code.OK, None)
    failed = sum(len(indices) for indices in by_code.values())
    parts = []
    for code, indices in by_code.items():
        first = errors[indices[0]].message
        parts.append(
            f"{Code.Name(code)}: {len(indices)} (first update {indices[0]}: {bounded(first, 160)})"
        )
    message = f"{failed} of {len(errors)} updates failed: " + "; ".join(parts)
    if aborted:
        message += f"; {len(aborted)} not applied (ABORTED)"
    return bounded(message, MAX_MESSAGE_CHARS - _NOTE_BYTES)


async def abort(context: grpc.aio.ServicerContext, error: P4RuntimeError):
    """End the RPC with `error`'s code and message (raises)."""
    await context.abort(grpc_code(error.code), error.message)
