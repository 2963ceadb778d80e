"""The cloud server as a metric agent: its record and counters over HTTP, as JSON and as
Prometheus text (parsed by prometheus_client's own parser), for a real server process."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from dcia.capability import LoadedModel, NodeKind
from dcia.metrics import MetricsError, fetch
from dcia.targets import free_tcp_port
from tests.unit.hosts.test_cloud_server import request


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def cloud(model, tmp_path):
    """A `python -m hosts.cloud_server --metrics` process on loopback: (udp port, metrics address)."""
    path = model.save(tmp_path / "model.json")
    udp, metrics = free_udp_port(), f"127.0.0.1:{free_tcp_port()}"
    proc = subprocess.Popen([sys.executable, "-m", "hosts.cloud_server", "--model", str(path),
                             "--bind", "127.0.0.1", "--port", str(udp), "--metrics", metrics,
                             "--name", "h2"], stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                fetch(metrics, timeout=0.5)
                break
            except MetricsError:
                assert proc.poll() is None, "the cloud server exited"
                time.sleep(0.1)
        yield udp, metrics
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def scrape(address: str) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_the_record_and_counters_follow_what_the_server_did(model, digits, cloud):
    udp, metrics = cloud
    record, counters = fetch(metrics)
    assert record.kind is NodeKind.CLOUD and record.name == "h2"
    assert record.models == (LoadedModel(model.model_id, model.version),)
    assert counters["requests"] == 0
    xs = model.quantize_input(digits.x_test[:25]).astype(np.int64)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        for i, x in enumerate(xs):
            sock.sendto(request(model, x, 1, request_id=i), ("127.0.0.1", udp))
            sock.recvfrom(65535)
    record, counters = fetch(metrics)
    assert counters["requests"] == counters["answered"] == 25
    n = len(model.layers)
    assert counters["layers_computed"] == 25 * (n - 1)
    assert record.layer_time_s == pytest.approx(counters["busy_seconds"] / (25 * (n - 1)))
    assert record.delay_s == pytest.approx(counters["busy_seconds"] / 25)
    assert 0 <= record.load <= 1


def test_prometheus_sees_the_same_numbers(model, digits, cloud):
    udp, metrics = cloud
    x = model.quantize_input(digits.x_test[:1]).astype(np.int64)[0]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(request(model, x, 0, request_id=9), ("127.0.0.1", udp))
        sock.recvfrom(65535)
    samples = scrape(metrics)
    node = (("node", "h2"),)
    assert samples[("dcia_requests_total", node)] == 1
    assert samples[("dcia_layers_computed_total", node)] == len(model.layers)
    loaded = (("model_id", str(model.model_id)), ("node", "h2"), ("version", str(model.version)))
    assert samples[("dcia_model_loaded", loaded)] == 1
    scores = [v for (name, labels), v in samples.items()
              if name == "dcia_cats_metric" and ("level", "2") in labels]
    assert len(scores) == 1 and 0 <= scores[0] <= 255   # the level 2 value: one unsigned octet
    record, _ = fetch(metrics)
    by_type = {m.type: m.value for m in record.metrics()}
    cats = {dict(labels)["type"]: v for (name, labels), v in samples.items() if name == "dcia_cats_metric"}
    assert cats.keys() == by_type.keys()


def test_an_endpoint_that_is_not_there_is_one_line():
    with pytest.raises(MetricsError, match=r"^no metrics at http://127\.0\.0\.1:\d+/capability\.json"):
        fetch(f"127.0.0.1:{free_tcp_port()}", timeout=1)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_the_metric_endpoint_is_read_only(method):
    """Nothing can be written through a metric agent (issue 13, item 5): every method but
    GET is refused and the record served stays what the agent says."""
    from dcia.capability import Capability
    from dcia.metrics import MetricsEndpoint

    record = Capability.nominal("c", "cloud", load=0.25)
    with MetricsEndpoint(lambda: (record, {"requests": 3})) as endpoint:
        url = f"http://{endpoint.address}/capability.json"
        req = urllib.request.Request(url, data=b'{"load": 0}', method=method)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(req, timeout=5)
        assert refused.value.code == 501
        served, counters = fetch(endpoint.address)
        assert served.load == 0.25 and counters["requests"] == 3
