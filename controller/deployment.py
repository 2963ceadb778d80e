"""What each switch must hold for one (model, version), and where it is reached: pure data.

A ``Deployment`` lists, per switch, its P4Runtime endpoint, the consecutive layers it
computes and the steering entries it needs. ``from_plan`` builds one from a plan and a
topology; ``desired_entries`` turns one switch's share into the table entries it must
hold. Nothing here talks to a switch: controller.session.apply writes a deployment as
one transaction.

    >>> from controller.topology import load_topology
    >>> topo = load_topology("topologies/linear.toml")
    >>> sorted(endpoints(topo))
    ['s1', 's2', 's3']
    >>> endpoints(topo)["s2"].address
    '127.0.0.1:50002'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import finsy as fy

from controller import entries as E
from controller.planner import Plan
from controller.topology import Switch, Topology
from dcia.layers import Layer

MODEL_TABLES = (E.T_LAYERS, E.T_EMBEDDINGS, E.T_VERSIONS, E.T_STEERING,
                *(E.dense_table(j) for j in range(16)))
"""The tables that hold a model's entries: what a deployment reads, writes and restores."""

ACTIVATING_TABLES = (E.T_LAYERS, E.T_VERSIONS)
"""Entries that make a switch use a layer: written after, removed before, the others."""


@dataclass(frozen=True)
class SwitchEndpoint:
    """Where a switch's P4Runtime server is and how to talk to it."""

    name: str
    """The switch's name in the topology, used in every message about it."""
    address: str
    """``host:port`` of its P4Runtime server."""
    device_id: int = 1
    """P4Runtime device id (BMv2's ``--device-id``)."""
    election_id: int = 10
    """The controller's election id; the highest one connected is the primary."""
    tls: fy.GRPCCredentialsTLS | None = None
    """Certificates for the channel; None for plaintext."""


def endpoint_of(switch: Switch) -> SwitchEndpoint:
    """The P4Runtime endpoint the topology file gives for ``switch`` (TLS included)."""
    tls = None
    if switch.tls is not None:
        tls = fy.GRPCCredentialsTLS(cacert=switch.tls.ca, cert=switch.tls.cert,
                                    private_key=switch.tls.key)
    return SwitchEndpoint(switch.name, switch.grpc, switch.device_id, tls=tls)


def endpoints(topology: Topology) -> dict[str, SwitchEndpoint]:
    """The P4Runtime endpoint of every switch, as the topology gives it (TLS included)."""
    return {name: endpoint_of(s) for name, s in topology.switches.items()}


@dataclass(frozen=True)
class SwitchAssignment:
    """What one switch holds of a model: consecutive layers and steering entries."""

    endpoint: SwitchEndpoint
    layers: dict[int, Layer] = field(default_factory=dict)
    """Layer index in the model -> the quantized layer this switch computes."""
    steering: tuple[fy.P4TableEntry, ...] = ()


@dataclass(frozen=True)
class Deployment:
    """The share of every switch of one (model id, version); an empty share removes it."""

    model_id: int
    version: int
    switches: tuple[SwitchAssignment, ...]


def desired_entries(model_id: int, version: int, a: SwitchAssignment) -> list[fy.P4TableEntry]:
    """Every entry the switch must hold for (model_id, version)."""
    if not a.layers and not a.steering:
        return []
    wanted = E.version_entries(model_id, [version]) if a.layers else []
    for index, layer in sorted(a.layers.items()):
        wanted += E.layer_entries(layer, model_id=model_id, version=version, index=index,
                                  more=index + 1 in a.layers)
    return wanted + list(a.steering)


def in_scope(table: str, match: Mapping[str, object], model_id: int, version: int) -> bool:
    """Whether an entry of ``table`` (its full name) with ``match`` (decoded, as read from
    a switch) belongs to (model_id, version): its layers' entries, and the versions and
    steering entries of the model.

    >>> in_scope(E.T_VERSIONS, {"model_id": 3}, 3, 1), in_scope(E.T_LAYERS, {"model_id": 3}, 3, 1)
    (True, False)
    """
    if match.get("model_id") != model_id:
        return False
    if table == E.T_STEERING:
        return True
    entry_version = match.get("model_version")
    if table == E.T_VERSIONS:
        return entry_version is None or entry_version == version
    return entry_version == version


def from_plan(plan: Plan, layers: list[Layer], topology: Topology, *,
              model_id: int, version: int) -> Deployment:
    """The deployment that puts ``plan``'s switch stages in place on ``topology``.

    Every switch on the plan's path gets an assignment, the ones without layers an empty
    one (which removes what an earlier plan left there). When a switch computes the last
    layer it also answers the edge (steer_answer back along the path).
    """
    names = [c.name for c in topology.route(plan.route).nodes]
    edge = topology.host_interface(names[0], plan.route)  # its address on this path
    held = {s.node: {i: layers[i] for i in s.layers} for s in plan.stages}
    last = next(s.node for s in reversed(plan.stages) if s.stop > s.start)
    assignments = []
    for position, name in enumerate(names):
        if name not in topology.switches:
            continue
        steering: tuple[fy.P4TableEntry, ...] = ()
        if name == last:
            steering = (E.steering_entry(
                model_id=model_id, layer=len(layers), answer=True, dst_mac=edge.mac,
                dst_ip=edge.ip.split("/")[0],
                port=topology.port(name, names[position - 1])),)
        assignments.append(SwitchAssignment(endpoint_of(topology.switches[name]),
                                            held.get(name, {}), steering))
    return Deployment(model_id, version, tuple(assignments))
