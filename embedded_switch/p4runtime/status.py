"""P4Runtime errors and how they travel over gRPC.

Everything below the RPC handlers raises `P4RuntimeError(code, message)`; the handlers
turn it into a gRPC status. Batch errors (one per update of a Write) travel as
`google.rpc.Status` in the `grpc-status-details-bin` trailer, each detail a packed
`p4.v1.Error`, under the overall code UNKNOWN, as the P4Runtime spec asks.

    >>> P4RuntimeError(Code.NOT_FOUND, "no entry").code == Code.NOT_FOUND
    True
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from finsy.proto import p4r, rpc_code, rpc_status

from embedded_switch import errors as switch_errors

Code = rpc_code.Code

#: Error space reported in `p4.v1.Error.space`.
ERROR_SPACE = "embedded-switch"

_GRPC_CODES = {code.value[0]: code for code in grpc.StatusCode}


class P4RuntimeError(Exception):
    """A request (or one update of a batch) failed with a canonical gRPC code."""

    def __init__(self, code: int, message: str):
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
    return p4r.Error(canonical_code=code, message=message, space=ERROR_SPACE)


class _Status(grpc.Status):
    """The concrete grpc.Status that `context.abort_with_status` takes."""

    def __init__(self, code: grpc.StatusCode, details: str, trailing_metadata):
        self.code = code
        self.details = details
        self.trailing_metadata = trailing_metadata


def batch_status(message: str, errors: Sequence[p4r.Error]) -> grpc.Status:
    """UNKNOWN with one `p4.v1.Error` per element of the batch, in order."""
    status = rpc_status.Status(code=Code.UNKNOWN, message=message)
    for error in errors:
        status.details.add().Pack(error)
    return _Status(
        grpc.StatusCode.UNKNOWN,
        message,
        (("grpc-status-details-bin", status.SerializeToString()),),
    )


def abort(context: grpc.ServicerContext, error: P4RuntimeError):
    """End the RPC with `error`'s code and message (raises)."""
    context.abort(grpc_code(error.code), error.message)
