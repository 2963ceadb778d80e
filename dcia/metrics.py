"""Metric agents: a node's capability record served live, as JSON and as Prometheus text.

A compute node (a cloud server, an edge agent) advertises its ``Capability`` (the one
definition, dcia.capability) with its CATS metrics (draft-ietf-cats-metric-definition:
level, type, value, unit, source, statistic; the level 2 score fits one unsigned octet)
and its request counters. ``MetricsEndpoint`` serves them over HTTP:

- ``GET /capability.json``: ``{"capability": Capability.to_dict(), "metrics": [...],
  "counters": {...}}``, what the controller reads (``fetch``);
- ``GET /metrics``: the same numbers in the Prometheus text format (prometheus_client's
  exposition), so an operator's Prometheus scrapes what the controller sees.

    >>> cap = Capability.nominal("h2", "cloud", load=0.25)
    >>> text = exposition(cap, {"requests": 7}).decode()
    >>> 'dcia_requests_total{node="h2"} 7.0' in text
    True
    >>> [line for line in text.splitlines() if line.startswith("dcia_cats_metric") and "score" in line]
    ['dcia_cats_metric{level="2",node="h2",source="normalization",statistic="cur",type="score",unit=""} 9.0']
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from dcia.capability import Capability
from dcia.errors import DciaError

log = logging.getLogger(__name__)

Snapshot = Callable[[], tuple[Capability, Mapping[str, float]]]
"""What an agent advertises right now: its record and its counters (monotonic totals)."""


class MetricsError(DciaError):
    """A node's metrics endpoint cannot be read or does not hold a capability record."""


PATH_RTT = "path_rtt_s_"
"""Counters named ``path_rtt_s_<address>`` are the latest round trip of a path probe to
that address (an edge agent's ``--path-probes``): a gauge, ``dcia_path_rtt_seconds``."""


def path_rtt_key(address: str) -> str:
    """The counter name of the path round trip to ``address``.

    >>> path_rtt_key("10.0.2.2")
    'path_rtt_s_10_0_2_2'
    """
    return PATH_RTT + address.replace(".", "_").replace(":", "_")


class _RecordCollector(Collector):
    def __init__(self, snapshot: Snapshot):
        self.snapshot = snapshot

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        record, counters = self.snapshot()
        cats = GaugeMetricFamily("dcia_cats_metric", "CATS metrics of the node's capability record",
                                 labels=["node", "level", "type", "unit", "source", "statistic"])
        for m in record.metrics():
            cats.add_metric([record.name, str(m.level), m.type, m.unit, m.source, m.statistic],
                            float(m.value))
        yield cats
        rtt = GaugeMetricFamily("dcia_path_rtt_seconds", "latest round trip of a path probe",
                                labels=["node", "cloud"])
        for name, value in sorted(counters.items()):
            if name.startswith(PATH_RTT):
                rtt.add_metric([record.name, name.removeprefix(PATH_RTT).replace("_", ".")],
                               float(value))
                continue
            family = CounterMetricFamily(f"dcia_{name}", f"{name} counted by the node", labels=["node"])
            family.add_metric([record.name], float(value))
            yield family
        yield rtt
        loaded = GaugeMetricFamily("dcia_model_loaded", "model versions the node holds (1)",
                                   labels=["node", "model_id", "version"])
        for model in record.models:
            loaded.add_metric([record.name, str(model.model_id), str(model.version)], 1.0)
        yield loaded


def exposition(record: Capability, counters: Mapping[str, float]) -> bytes:
    """The Prometheus text of one snapshot."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_RecordCollector(lambda: (record, counters)))
    return generate_latest(registry)


def document(record: Capability, counters: Mapping[str, float]) -> dict[str, Any]:
    """The JSON document of one snapshot (``/capability.json``)."""
    return {"capability": record.to_dict(), "metrics": [asdict(m) for m in record.metrics()],
            "counters": dict(counters)}


class MetricsEndpoint:
    """An HTTP server (its own thread) that serves ``snapshot()`` at every request.

    ``port`` 0 takes a free port; ``address`` gives the one bound.
    """

    def __init__(self, snapshot: Snapshot, host: str = "127.0.0.1", port: int = 0):
        collector = _RecordCollector(snapshot)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(collector)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                try:
                    if self.path == "/metrics":
                        body, kind = generate_latest(registry), "text/plain; version=0.0.4"
                    elif self.path == "/capability.json":
                        body = json.dumps(document(*snapshot())).encode()
                        kind = "application/json"
                    else:
                        self.send_error(404, "try /metrics or /capability.json")
                        return
                except Exception as exc:  # a broken snapshot is an answer, not a dead thread
                    log.exception("metrics snapshot failed")
                    self.send_error(500, f"{type(exc).__name__}: {exc}"[:200])
                    return
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("metrics: " + format, *args)

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="metrics",
                                       daemon=True)

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{host}:{port}"

    def start(self) -> MetricsEndpoint:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> MetricsEndpoint:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def fetch(address: str, timeout: float = 2.0) -> tuple[Capability, dict[str, float]]:
    """Read a node's record and counters from its endpoint at ``host:port``."""
    url = f"http://{address}/capability.json"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            doc = json.loads(reply.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise MetricsError(f"no metrics at {url} ({reason})") from None
    try:
        return Capability.from_dict(doc["capability"]), {k: float(v) for k, v in doc["counters"].items()}
    except (KeyError, TypeError, ValueError, DciaError) as exc:
        raise MetricsError(f"{url} does not hold a capability record ({exc})") from None
