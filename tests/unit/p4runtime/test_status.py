"""Errors are bounded: messages are cut, a batch's status fits what gRPC clients accept,
and its message still counts every failure."""

from finsy.proto import p4r, rpc_status

from embedded_switch.p4runtime.status import (
    MAX_MESSAGE_CHARS,
    MAX_STATUS_BYTES,
    Code,
    P4RuntimeError,
    batch_status,
    error_message,
)


def details(status) -> list[p4r.Error]:
    [(key, value)] = status.trailing_metadata
    assert key == "grpc-status-details-bin"
    decoded = rpc_status.Status.FromString(value)
    assert decoded.code == Code.UNKNOWN and decoded.message == status.message
    errors = []
    for detail in decoded.details:
        errors.append(p4r.Error())
        assert detail.Unpack(errors[-1])
    return errors


def test_long_messages_are_cut_and_say_how_long_they_were():
    error = P4RuntimeError(Code.INVALID_ARGUMENT, "v" * 10**6)
    assert len(error.message) == MAX_MESSAGE_CHARS
    assert error.message.endswith("... (1000000 characters)")
    assert len(error_message(Code.INTERNAL, "w" * 10**6).message) == MAX_MESSAGE_CHARS


def test_a_small_batch_carries_one_error_per_update():
    errors = [error_message(Code.OK), error_message(Code.NOT_FOUND, "no entry")]
    status = batch_status(errors)
    assert details(status) == errors
    assert status.message == "1 of 2 updates failed: NOT_FOUND: 1 (first update 1: no entry)"


def test_a_large_batch_is_cut_at_an_update_boundary_and_counted_in_full():
    ok = error_message(Code.OK)
    full = error_message(Code.RESOURCE_EXHAUSTED, "table 'l2' is full (1024 entries)")
    errors = [ok] * 1024 + [full] * 76
    status = batch_status(errors)
    [(_, value)] = status.trailing_metadata
    assert len(value) <= MAX_STATUS_BYTES
    shown = details(status)
    assert 0 < len(shown) < len(errors) and shown == errors[: len(shown)]
    assert status.message.startswith(
        "76 of 1100 updates failed: RESOURCE_EXHAUSTED: 76 (first update 1024: table 'l2' is full"
    )
    assert f"Details of updates 0..{len(shown) - 1} only" in status.message


def test_failures_are_counted_by_code_and_aborted_updates_apart():
    errors = [
        error_message(Code.ABORTED, "rolled back"),
        error_message(Code.ALREADY_EXISTS, "exists"),
        error_message(Code.INVALID_ARGUMENT, "bad"),
        error_message(Code.ALREADY_EXISTS, "exists"),
    ]
    assert batch_status(errors).message == (
        "3 of 4 updates failed: ALREADY_EXISTS: 2 (first update 1: exists);"
        " INVALID_ARGUMENT: 1 (first update 2: bad); 1 not applied (ABORTED)"
    )


def test_the_status_stays_in_budget_whatever_the_messages():
    errors = [error_message(Code.INVALID_ARGUMENT, "x" * 10_000)] * 500
    status = batch_status(errors)
    [(_, value)] = status.trailing_metadata
    assert len(value) <= MAX_STATUS_BYTES
    assert status.message.startswith("500 of 500 updates failed")
