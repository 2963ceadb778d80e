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
