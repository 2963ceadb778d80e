"""Planner calibration: what the plan needs, measured in the scenario's running testbed, and
the file ``dcia calibrate`` writes and the evaluation plans with.

Measured (``measure``), each with the programs the strategies use:

- **compute** on the edge and the cloud host: evaluation.compute_probe in the host's
  namespace and CPU cgroup times every layer of the model; ``fit`` turns the per-layer
  times into the planner's two numbers, ``layer_time_s + macs / macs_per_s``
  (least squares over the layers, dcia.capability.Capability.layer_seconds). The edge's
  level comes from the edge agent itself: the median time of a request it computes whole
  and answers (``--local``), split over the layers as the probe's times are. Under a CPU
  quota the two differ: the probe is a busy loop, stalled every period, while the agent
  spends much of its share between requests (printing, reading), so a request's few
  hundred microseconds of work mostly fit in what is left of a period;
- **the switches and the edge's link**: the edge agent's round trip (one request at a
  time) with the first switch computing the model's last layer and answering (the edge the
  layers before), and with it computing the last three (recirculating; the edge the first),
  or the last two where only two fit a switch (the convolutional model).
  Their difference, with the edge's share of the work corrected, is the time of two switch
  layers (``switch_layer_seconds``); what is left of the first round trip beyond the edge's
  and the switch's work is the edge link's round trip, the agent's own sending and
  receiving included. Every switch of the path gets that layer time: they run the same
  program on the same machine;
- **the path**: the edge agent's round trip of a tensor that needs no computing
  (``next_layer`` past the last layer: the switches pass it on, the cloud sends it back);
  ``link_delays`` gives the edge's link its measured share and spreads the rest evenly
  over the other links, on top of their nominal delays (switch forwarding, the delay
  lines' relays, the cloud server's software).

Link rates are not probed: the tensors are some 100 bytes, whose serialization even at
2 Mbit/s (0.5 ms) the round trips already contain.

The file (JSON) holds the fitted numbers by node, the links' one-way delays and every raw
measurement; ``Calibration.apply`` gives the topology the planner plans with.
"""

from __future__ import annotations

import json
import logging
import statistics
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from controller.planner import evaluate, packet_bytes
from controller.topology import Topology
from dcia.capability import Capability
from dcia.errors import DciaError
from dcia.model import QuantizedModel

if TYPE_CHECKING:
    from mininet_topos.testbed import Testbed

log = logging.getLogger(__name__)

CALIBRATION_REQUESTS = 60
"""Requests per calibration round trip (the median of them is taken)."""

class CalibrationError(DciaError):
    """A calibration that could not be measured or read."""


@dataclass(frozen=True)
class NodeTiming:
    """A node's compute time per layer: ``layer_time_s + macs / macs_per_s``."""

    layer_time_s: float
    macs_per_s: float | None = None


@dataclass(frozen=True)
class Calibration:
    scenario: str
    nodes: dict[str, NodeTiming]
    link_delay_ms: dict[str, float]
    """``A-B`` -> the link's one-way delay as the planner should see it."""
    raw: dict = field(default_factory=dict)
    """Every measurement the numbers come from."""

    def apply(self, topology: Topology) -> Topology:
        """``topology`` with the measured compute times and link delays."""
        for name, timing in self.nodes.items():
            cap = topology.capability(name)
            topology = topology.with_capability(replace(
                cap, layer_time_s=timing.layer_time_s, macs_per_s=timing.macs_per_s))
        links = tuple(replace(link, delay_ms=self.link_delay_ms.get(link.name, link.delay_ms))
                      for link in topology.links)
        return replace(topology, links=links)

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        body = {"scenario": self.scenario,
                "nodes": {k: asdict(v) for k, v in self.nodes.items()},
                "link_delay_ms": self.link_delay_ms, "raw": self.raw}
        path.write_text(json.dumps(body, indent=1) + "\n")
        return path

    @classmethod
    def load(cls, path: Path) -> Calibration:
        try:
            body = json.loads(Path(path).read_text())
            return cls(body["scenario"], {k: NodeTiming(**v) for k, v in body["nodes"].items()},
                       {k: float(v) for k, v in body["link_delay_ms"].items()}, body.get("raw", {}))
        except FileNotFoundError:
            raise CalibrationError(f"calibration file {path} not found (dcia calibrate makes it)") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise CalibrationError(f"{path}: not a calibration file ({exc}); make it again with "
                                   "dcia calibrate") from None


def fit(macs: Sequence[int], seconds: Sequence[float]) -> NodeTiming:
    """The planner's ``layer_time_s`` and ``macs_per_s`` from per-layer times, by least
    squares; a non-positive slope (time that does not grow with the work) leaves only the
    mean per layer, a negative intercept only the slope.

    >>> fit([1000, 200, 200], [0.0012, 0.0004, 0.0004])
    NodeTiming(layer_time_s=0.0002, macs_per_s=1000000.0)
    >>> fit([100, 100], [0.001, 0.003])
    NodeTiming(layer_time_s=0.002, macs_per_s=None)
    """
    x, y = np.asarray(macs, dtype=float), np.asarray(seconds, dtype=float)
    if len(set(x)) > 1:
        slope, intercept = np.polyfit(x, y, 1)
        if slope > 0 and intercept >= 0:
            return NodeTiming(round(float(intercept), 12), round(float(1 / slope), 3))
        if slope > 0:
            return NodeTiming(0.0, round(float(np.sum(x * x) / np.sum(x * y)), 3))
    return NodeTiming(round(float(np.mean(y)), 12), None)


def link_delays(topology: Topology, path: str | None, edge_round_trip_s: float,
                path_round_trip_s: float, elems: int) -> dict[str, float]:
    """One-way link delays (ms) under which the planner's round trips of an ``elems``-element
    tensor equal the measured ones: ``edge_round_trip_s`` over the edge's link alone (to the
    first switch and back), ``path_round_trip_s`` to the cloud and back (nothing computed;
    the edge agent's and the cloud server's software included). The edge's link gets its
    own; the rest of the path's is spread over the other links on top of their nominal
    delays, evenly (the switches' forwarding and the delay lines' relays).

    >>> from controller.topology import load_topology
    >>> t = load_topology("topologies/eval.toml")
    >>> d = link_delays(t, None, 0.001, 0.004, 10)
    >>> d["ed1-sw1"], d["sw1-sw2"] == d["sw3-cl1"], round(2 * sum(d.values()), 2)
    (0.49456, True, 3.99)
    """
    route = topology.route(path)
    nbytes = packet_bytes(elems)
    serialization = [2 * link.serialization_seconds(nbytes) for link in route.links]
    edge = max(0.0, (edge_round_trip_s - serialization[0]) / 2)
    rest = max(0.0, (path_round_trip_s - sum(serialization)) / 2 - edge)
    others = route.links[1:]
    extra = max(0.0, rest - sum(link.delay_ms for link in others) / 1e3) / max(1, len(others))
    out = {route.links[0].name: round(edge * 1e3, 6)}
    out.update((link.name, round(link.delay_ms + extra * 1e3, 6)) for link in others)
    return out


def switch_layer_seconds(rtt_one_s: float, rtt_three_s: float, edge_two_layers_s: float,
                         layers: int = 3) -> float:
    """A switch's time per layer from the round trips of a request it computes one layer
    of (the edge the ones before) and ``layers`` layers of (the last ones; default three):
    ``layers - 1`` more layers on the switch, as many fewer on the edge.

    >>> switch_layer_seconds(0.002, 0.003, 0.0004)
    0.0007
    >>> switch_layer_seconds(0.002, 0.0025, 0.0001, layers=2)
    0.0006
    """
    return max(0.0, round((rtt_three_s - rtt_one_s + edge_two_layers_s) / (layers - 1), 12))


def switch_layers(model: QuantizedModel, switch: Capability, most: int = 3) -> int:
    """How many of the model's last layers (up to ``most``) ``switch`` can compute: the
    calibration's second deployment puts them on it.

    >>> from controller.demo_model import load_demo
    >>> switch_layers(load_demo().quantized, Capability.nominal("s", "switch"))
    3
    """
    count = 0
    for layer in reversed(model.layers[1:]):
        if count == most or switch.can_run(layer) is not None:
            break
        count += 1
    return count


# ------------------------------------------------------------- in the testbed --

def probe_compute(bed: Testbed, host: str, model_file: Path, inputs_file: Path,
                  seconds: float = 1.0) -> dict:
    """evaluation.compute_probe in ``host`` (its namespace and CPU share): per-layer times."""
    proc = bed.popen(host, [sys.executable, "-m", "evaluation.compute_probe", "--model",
                            str(model_file), "--inputs", str(inputs_file), "--seconds", str(seconds)],
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=60 + 20 * seconds)
    if proc.returncode != 0:
        raise CalibrationError(f"the compute probe in {host} failed: {err.decode()[-500:]}")
    return json.loads(out)


def agent_rtt(bed: Testbed, model_file: Path, inputs_file: Path, edge_layers: int,
              requests: int, local: bool = False) -> float:
    """The edge agent's median latency, one request at a time, with ``edge_layers`` on the
    edge (``local``: every layer, answered there)."""
    results = bed.run_edge(model_file, inputs_file, edge_layers=edge_layers, requests=requests,
                           window=1, timeout=1.0, local=local)
    ok = [r.latency_s for r in results if r.ok]
    if len(ok) < requests // 2:
        raise CalibrationError(f"only {len(ok)} of {requests} calibration requests were answered "
                               f"with {edge_layers} layers on the edge")
    return statistics.median(ok)


def measure(bed: Testbed, scenario: str, model: QuantizedModel, model_file: Path,
            inputs_file: Path, path: str | None = None, requests: int = CALIBRATION_REQUESTS,
            seconds: float = 1.0) -> Calibration:
    """Measure everything the planner needs in ``bed`` (a cloud server already runs)."""
    topology = bed.topology
    route = topology.route(path)
    edge, cloud = route.nodes[0].name, route.nodes[-1].name
    switches = [n.name for n in route.nodes[1:-1]]
    n = len(model.layers)
    more = switch_layers(model, topology.capability(switches[0])) if switches else 0
    if not switches or more < 2 or n < more + 1:
        raise CalibrationError("the calibration needs a path with a switch and a model whose "
                               "last two layers or more a switch computes, after one or more "
                               "layers (a switch computing one layer, then up to three)")
    raw: dict = {}
    timings = {}
    for host in (edge, cloud):
        probe = probe_compute(bed, host, model_file, inputs_file, seconds)
        raw[f"compute_{host}"] = probe
        timings[host] = fit(probe["macs"], probe["layer_s"])
    # the edge as its agent sees it: the whole model per request, answered locally; the
    # probe's per-layer shares split it (a CPU quota stalls a busy loop more than requests
    # whose agent spends most of its share between them)
    raw["edge_local_s"] = agent_rtt(bed, model_file, inputs_file, n, requests, local=True)
    probe_s = raw[f"compute_{edge}"]["layer_s"]
    edge_s = [t * raw["edge_local_s"] / sum(probe_s) for t in probe_s]
    raw["edge_layer_s"] = edge_s
    timings[edge] = fit(raw[f"compute_{edge}"]["macs"], edge_s)
    raw["path_rtt_s"] = agent_rtt(bed, model_file, inputs_file, n, requests)
    more_key = "switch_three_layers_rtt_s" if more == 3 else f"switch_{more}_layers_rtt_s"
    for name, positions in (("switch_one_layer_rtt_s", [0] * (n - 1) + [1]),
                            (more_key, [0] * (n - more) + [1] * more)):
        bed.deploy(model, evaluate(model.layers, route, positions))
        raw[name] = agent_rtt(bed, model_file, inputs_file, positions.count(0), requests)
    per_layer = switch_layer_seconds(raw["switch_one_layer_rtt_s"], raw[more_key],
                                     sum(edge_s[n - more:n - 1]), more)
    timings.update((s, NodeTiming(per_layer)) for s in switches)
    raw["edge_link_rtt_s"] = max(0.0, raw["switch_one_layer_rtt_s"] - sum(edge_s[:n - 1]) - per_layer)
    delays = link_delays(topology, path, raw["edge_link_rtt_s"], raw["path_rtt_s"],
                         model.layers[-1].n_out)
    return Calibration(scenario, timings, delays, raw)
