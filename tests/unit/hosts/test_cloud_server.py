"""The cloud server finishes whatever arrives, answers errors with a status, dedups retries."""

from __future__ import annotations

import numpy as np
import pytest

from dcia.wire import DCIA, Flag, Status
from hosts import messages
from hosts.cloud_server import CloudServer, CloudStats

EDGE = ("10.0.1.1", 56346)


def request(model, x, next_layer, request_id=1, **kw):
    act = model.forward_int(x, 0, next_layer)
    return messages.tensor_request(model_id=model.model_id, version=model.version,
                                   request_id=request_id, next_layer=next_layer,
                                   elems=act.tolist(), **kw)


def test_continues_from_the_next_layer_whatever_the_network_computed(model, digits):
    cloud = CloudServer([model])
    xs = model.quantize_input(digits.x_test[:20]).astype(np.int64)
    n = len(model.layers)
    for i, x in enumerate(xs):
        want = model.forward_int(x).tolist()
        for k in range(n + 1):
            answer = messages.parse(cloud.handle(request(model, x, k, request_id=i * 10 + k), EDGE))
            assert Flag(int(answer.flags)) == Flag.RESULT
            assert answer.status == Status.OK and answer.elems == want
            assert answer.request_id == i * 10 + k and answer.next_layer == n
    assert cloud.stats.requests == cloud.stats.answered == 20 * (n + 1)
    assert cloud.stats.arrivals == {k: 20 for k in range(n + 1)}
    assert cloud.stats.layers_computed == 20 * sum(n - k for k in range(n + 1))


def test_a_retry_gets_the_same_answer_and_is_not_counted_twice(model, digits):
    cloud = CloudServer([model])
    x = model.quantize_input(digits.x_test[:1])[0].astype(np.int64)
    first = cloud.handle(request(model, x, 1, request_id=77), EDGE)
    again = cloud.handle(request(model, x, 1, request_id=77), EDGE)
    other_source = cloud.handle(request(model, x, 1, request_id=77), ("10.0.9.9", 56346))
    assert first == again == other_source
    assert (cloud.stats.requests, cloud.stats.retries, cloud.stats.layers_computed) == (2, 1, 6)


def test_the_retry_cache_is_bounded(model, digits):
    cloud = CloudServer([model], cache_size=4)
    x = model.quantize_input(digits.x_test[:1])[0].astype(np.int64)
    for rid in range(10):
        cloud.handle(request(model, x, 1, request_id=rid), EDGE)
    assert len(cloud.cache) == 4
    cloud.handle(request(model, x, 1, request_id=0), EDGE)  # evicted: computed again
    assert (cloud.stats.requests, cloud.stats.retries) == (11, 0)


@pytest.mark.parametrize("mangle, status", [
    (lambda p: b"\x02" + p[1:], Status.MALFORMED),                       # version 2
    (lambda p: p[:-3], Status.MALFORMED),                                # truncated tensor
    (lambda p: p + b"\0\0", Status.MALFORMED),                           # bytes after it
    (lambda p: p[:13], Status.MALFORMED),                                # header cut short
    (lambda p: p[:1] + bytes([Flag.MALFORMED]) + p[2:], Status.MALFORMED),  # flagged by a switch
    (lambda p: p[:2] + b"\x00\x63" + p[4:], Status.UNKNOWN_MODEL),       # model 99
    (lambda p: p[:4] + b"\x00\x07" + p[6:], Status.UNKNOWN_MODEL),       # version 7
    (lambda p: p[:6] + b"\x03" + p[7:], Status.BAD_SHAPE),               # 64 elements for layer 3 (16)
    (lambda p: p[:6] + b"\x09" + p[7:], Status.BAD_SHAPE),               # beyond the last layer
], ids=["version", "truncated", "trailing", "short-header", "flagged", "model", "model-version",
        "layer-3-size", "layer-9"])
def test_malformed_and_unknown_requests_get_an_error_answer(model, digits, mangle, status):
    cloud = CloudServer([model])
    x = model.quantize_input(digits.x_test[:1])[0].astype(np.int64)
    payload = mangle(request(model, x, 0, request_id=0xABCDEF))   # 64 elements for layer 0
    answer = messages.parse(cloud.handle(payload, EDGE))
    if status == Status.BAD_SHAPE:
        assert answer.next_layer in (3, 9)
    assert Flag(int(answer.flags)) == Flag.ERROR
    assert answer.status == status and answer.elems == []
    assert answer.request_id == 0xABCDEF
    assert cloud.stats.errors == 1 and cloud.stats.errors_by_status == {status: 1}


def test_answers_that_stray_to_the_cloud_are_ignored(model):
    cloud = CloudServer([model])
    stray = bytes(DCIA(flags=Flag.RESULT, model_id=1, model_version=1, elems=[1]))
    assert cloud.handle(stray, EDGE) is None
    assert cloud.stats.ignored == 1 and cloud.stats.requests == 0


def test_stats_survive_json(model, digits):
    cloud = CloudServer([model])
    x = model.quantize_input(digits.x_test[:1])[0].astype(np.int64)
    cloud.handle(request(model, x, 2), EDGE)
    assert CloudStats.from_dict(cloud.stats.to_dict()) == cloud.stats


def test_a_spoofed_request_with_the_same_id_does_not_poison_the_real_answer(model, digits):
    cloud = CloudServer([model])
    real_x, forged_x = model.quantize_input(digits.x_test[:2]).astype(np.int64)
    forged, real = request(model, forged_x, 1, request_id=77), request(model, real_x, 1, request_id=77)
    assert messages.parse(cloud.handle(forged, EDGE)).elems == model.forward_int(forged_x).tolist()
    first = cloud.handle(real, EDGE)
    assert messages.parse(first).elems == model.forward_int(real_x).tolist()
    assert cloud.handle(real, EDGE) == first  # a retry gets the very same answer
    assert (cloud.stats.requests, cloud.stats.retries) == (2, 1)


def test_a_tensor_of_more_than_1024_elements_is_malformed_without_a_traceback(model, caplog):
    cloud = CloudServer([model])
    huge = bytes(DCIA(model_id=model.model_id, model_version=model.version, request_id=9,
                      elems=[1] * 2000))
    answer = messages.parse(cloud.handle(huge, EDGE))
    assert answer.status == Status.MALFORMED and answer.request_id == 9
    assert cloud.stats.errors_by_status == {Status.MALFORMED: 1}
    assert not [r for r in caplog.records if r.exc_info]


def test_the_server_survives_a_datagram_it_cannot_answer(model, digits):
    """UDP source port 0: the kernel refuses to send the answer; the next request is served."""
    import socket
    import struct
    import threading

    from hosts.cloud_server import serve

    server = CloudServer([model])
    x = model.quantize_input(digits.x_test[:1])[0].astype(np.int64)
    payload = request(model, x, 1, request_id=5)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        stop = [False]
        thread = threading.Thread(target=serve, args=(server, sock, stop))
        thread.start()
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP) as raw:
                udp = struct.pack("!HHHH", 0, port, 8 + len(payload), 0)  # source port 0
                raw.sendto(udp + payload, ("127.0.0.1", 0))
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
                client.settimeout(5)
                client.sendto(request(model, x, 1, request_id=6), ("127.0.0.1", port))
                answer = messages.parse(client.recv(65535))
        finally:
            stop[0] = True
            thread.join(5)
    assert answer.request_id == 6 and answer.status == Status.OK
    assert not thread.is_alive() and server.stats.send_errors == 1


def test_a_restricted_model_answers_its_tenants_only(model, digits):
    cloud = CloudServer([model], tenants={model.model_id: ["10.0.1.0/24"]})
    x = model.quantize_input(digits.x_test[:1])[0].astype(np.int64)
    req = request(model, x, 1, request_id=5)
    intruder = messages.parse(cloud.handle(req, ("10.0.7.7", 56346)))
    assert Flag(int(intruder.flags)) & Flag.ERROR and intruder.status == Status.UNAUTHORISED
    assert intruder.elems == [] and cloud.stats.layers_computed == 0
    # the same request id from the tenant: computed, not the cached error of the intruder
    tenant = messages.parse(cloud.handle(req, EDGE))
    assert tenant.status == Status.OK and tenant.elems == model.forward_int(x).tolist()
    assert cloud.stats.errors_by_status == {Status.UNAUTHORISED: 1}
    open_cloud = CloudServer([model], tenants={model.model_id + 1: ["10.0.1.0/24"]})
    assert messages.parse(open_cloud.handle(req, ("10.0.7.7", 56346))).status == Status.OK
