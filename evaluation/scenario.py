"""A scenario of the evaluation: a topology file and what the experiment changes in it.

    name = "constrained"
    description = "slow uplink, weak edge, 20 ms to the cloud"
    topology = "../topologies/eval.toml"     # relative to this file
    requests = 200                           # per strategy (dcia eval --requests overrides)
    edge_cpu = 0.1                           # the edge host's share of the machine (CPULimitedHost)
    edge_cpu_period_ms = 1                   # its CFS period (default 1 ms; Mininet's is 100)
    cloud_cpu = 0.05                         # a loaded cloud: its share (and cloud_cpu_period_ms)
    model = "conv"                           # the model evaluated (MODELS; default "digits")

    [links.ed1-sw1]                          # a link by its two nodes, either order
    bandwidth_mbps = 2
    [links.sw3-cl1]
    delay_ms = 20

The link overrides replace the topology's values for that link only; the testbed builds
exactly the network ``Scenario.topology()`` describes, and the planner plans on it.

The edge's CPU share is a CFS quota per period. With Mininet's period of 100 ms a
process at 10 % runs at full speed for 10 ms of every 100 (on one core) and then
waits: a request that fits in the quota is as fast as on an unlimited edge, and one that
does not waits up to 90 ms. A 1 ms period spreads the limit over every request, as a
slower processor would: the default here.

    >>> s = load_scenario("scenarios/constrained.toml")
    >>> s.name, s.edge_cpu, [l.name for l in s.topology().links][:1]
    ('constrained', 0.1, ['ed1-sw1'])
    >>> s.topology().link("sw3", "cl1").delay_ms
    20.0
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

from controller.topology import Topology, load_topology
from dcia.errors import DciaError

_KEYS = frozenset({"name", "description", "topology", "requests", "edge_cpu",
                   "edge_cpu_period_ms", "links", "cloud_cpu", "cloud_cpu_period_ms", "model"})
MODELS = ("digits", "conv")
"""The models a scenario can evaluate: ``digits``, the demo MLP (models/digits.onnx), and
``conv``, the convolutional model (models/digits_conv.onnx, evaluation.conv_model)."""
_LINK_KEYS = frozenset({"bandwidth_mbps", "delay_ms", "loss_pct"})


class ScenarioError(DciaError):
    """A scenario file that cannot be used; the message says what and where."""


@dataclass(frozen=True)
class LinkOverride:
    """New values for one link (None keeps the topology's)."""

    a: str
    b: str
    bandwidth_mbps: float | None = None
    delay_ms: float | None = None
    loss_pct: float | None = None

    @property
    def name(self) -> str:
        return f"{self.a}-{self.b}"


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    topology_file: Path
    requests: int = 200
    edge_cpu: float | None = None
    """The edge host's share of the whole machine's CPU (None: no limit)."""
    links: tuple[LinkOverride, ...] = ()
    edge_cpu_period_ms: float = 1.0
    """The CFS period the edge's share is enforced over."""
    cloud_cpu: float | None = None
    """The cloud host's share of the machine (a loaded cloud; None: no limit)."""
    cloud_cpu_period_ms: float = 1.0
    model: str = "digits"
    """Which of MODELS is evaluated."""

    def topology(self) -> Topology:
        """The topology file with this scenario's link values in place."""
        topology = load_topology(self.topology_file)
        links = list(topology.links)
        for override in self.links:
            index = next((i for i, link in enumerate(links) if link.joins(override.a, override.b)),
                         None)
            if index is None:
                raise ScenarioError(f"scenario {self.name}: topology {topology.name} has no link "
                                    f"{override.name} (links: "
                                    f"{', '.join(l.name for l in topology.links)})")
            values = {k: getattr(override, k) for k in _LINK_KEYS if getattr(override, k) is not None}
            links[index] = replace(links[index], **values)
        return replace(topology, links=tuple(links))


def load_scenario(path: str | Path) -> Scenario:
    """Read and check a scenario file; ScenarioError says what is wrong."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ScenarioError(f"scenario file {path} not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path.name}: not valid TOML: {exc}") from None
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise ScenarioError(f"{path.name}: unknown key {', '.join(unknown)} "
                            f"(keys: {', '.join(sorted(_KEYS))})")
    for key in ("name", "topology"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise ScenarioError(f"{path.name}: '{key}' must be a non-empty string")
    requests = data.get("requests", 200)
    if isinstance(requests, bool) or not isinstance(requests, int) or requests < 1:
        raise ScenarioError(f"{path.name}: requests must be an integer of 1 or more, not {requests!r}")
    shares = {}
    for host in ("edge", "cloud"):
        share = data.get(f"{host}_cpu")
        if share is not None and (isinstance(share, bool) or not isinstance(share, (int, float))
                                  or not 0 < share <= 1):
            raise ScenarioError(f"{path.name}: {host}_cpu is a share of the machine, in (0, 1], "
                                f"not {share!r}")
        period = data.get(f"{host}_cpu_period_ms", 1.0)
        if isinstance(period, bool) or not isinstance(period, (int, float)) or not 1 <= period <= 1000:
            raise ScenarioError(f"{path.name}: {host}_cpu_period_ms must be 1..1000 (the kernel's "
                                f"CFS period range), not {period!r}")
        shares[host] = (None if share is None else float(share), float(period))
    model = data.get("model", "digits")
    if model not in MODELS:
        raise ScenarioError(f"{path.name}: model must be one of {', '.join(MODELS)}, not {model!r}")
    links = []
    table = data.get("links", {})
    if not isinstance(table, dict):
        raise ScenarioError(f"{path.name}: [links] must be a table of links like [links.ed1-sw1]")
    for name, values in table.items():
        a, sep, b = name.partition("-")
        if not (a and sep and b) or not isinstance(values, dict):
            raise ScenarioError(f"{path.name}: links.{name}: name a link by its two nodes, "
                                "like [links.ed1-sw1]")
        bad = sorted(set(values) - _LINK_KEYS)
        if bad:
            raise ScenarioError(f"{path.name}: links.{name}: unknown key {', '.join(bad)} "
                                f"(keys: {', '.join(sorted(_LINK_KEYS))})")
        for key, value in values.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (
                    key == "bandwidth_mbps" and value == 0):
                raise ScenarioError(f"{path.name}: links.{name}.{key} must be a number "
                                    f"{'above' if key == 'bandwidth_mbps' else 'of at least'} 0, "
                                    f"not {value!r}")
        links.append(LinkOverride(a, b, **{k: float(v) for k, v in values.items()}))
    scenario = Scenario(data["name"], data.get("description", ""),
                        (path.parent / data["topology"]).resolve(), requests,
                        shares["edge"][0], tuple(links), shares["edge"][1], *shares["cloud"], model)
    scenario.topology()  # the topology loads and every overridden link exists
    return scenario
