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

import argparse
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import finsy as fy

from controller import entries as E
from controller.planner import Plan
from controller.routes import port_mac
from controller.topology import Switch, Topology
from dcia.errors import TopologyError
from dcia.layers import Layer

MODEL_TABLES = (E.T_LAYERS, E.T_EMBEDDINGS, E.T_VERSIONS, E.T_STEERING, E.T_TENANTS,
                *(E.dense_table(j) for j in range(16)), *(E.bag_table(i) for i in range(16)))
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
    layer_rate: float | None = None
    """Packets per second each of its layers may compute (its meter); None: unmetered."""
    tenants: tuple[str, ...] | None = None
    """The source prefixes that may use the model here (the policy's tenants); None: any."""


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
    if a.layers and a.tenants is not None:
        wanted += E.tenant_entries(model_id, a.tenants)
    meter = E.meter_config(a.layer_rate) if a.layer_rate is not None else None
    for index, layer in sorted(a.layers.items()):
        wanted += [dataclasses.replace(e, meter_config=meter) if e.table_id == E.T_LAYERS else e
                   for e in E.layer_entries(layer, model_id=model_id, version=version,
                                            index=index, more=index + 1 in a.layers)]
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
    if table in (E.T_STEERING, E.T_TENANTS):
        return True
    entry_version = match.get("model_version")
    if table == E.T_VERSIONS:
        return entry_version is None or entry_version == version
    return entry_version == version


def spread(topology: Topology, weights: Mapping[str, int], *, model_id: int,
           layers: range) -> tuple[str, tuple[fy.P4TableEntry, ...]]:
    """Steering that spreads a model's tensors over the clouds of several paths by weight.

    ``weights``: path name -> weight (a positive integer). The paths must start alike up
    to a switch, the *branch*, and end at cloud hosts. Returns the branch and its entries:
    one per next layer in ``layers``, each a group with one member per path: out of the
    port towards that path's next node, the IPv4 destination rewritten to that path's
    cloud, the port watched (where the switch honours watch ports, a link that goes down
    takes its member out at once).

    >>> from controller.topology import load_topology
    >>> topo = load_topology("topologies/balanced.toml")
    >>> branch, entries = spread(topo, {"cloud-a": 3, "cloud-b": 1}, model_id=1, layers=range(1, 4))
    >>> branch, len(entries), [(w, a.args["dst_ip"]) for w, a in entries[0].action.action_set]
    ('s2', 3, [((3, 2), '10.0.2.2'), ((1, 3), '10.0.4.3')])
    """
    if len(weights) < 2:
        raise TopologyError("spreading needs two paths or more, with a weight each")
    routes = {}
    for name, weight in weights.items():
        if name not in topology.paths:
            raise TopologyError(f"topology {topology.name} has no path {name!r} "
                                f"(paths: {', '.join(topology.paths)})")
        if not isinstance(weight, int) or weight < 1:
            raise TopologyError(f"path {name}: weight {weight!r} must be a positive integer")
        routes[name] = topology.paths[name]
    shared = 0
    while all(len(r) > shared + 1 and r[shared] == next(iter(routes.values()))[shared]
              for r in routes.values()):
        shared += 1
    branch = next(iter(routes.values()))[shared - 1] if shared else None
    if branch not in topology.switches:
        raise TopologyError(f"paths {', '.join(routes)} do not part at a switch "
                            f"(they share {shared} first nodes)")
    hops = []
    for name, nodes in routes.items():
        cloud, after = nodes[-1], nodes[shared]
        if topology.capability(cloud).kind != "cloud":
            raise TopologyError(f"path {name} ends at {cloud}, which is not a cloud host")
        port = topology.port(branch, after)
        mac = (topology.host_interface(cloud, name).mac if after == cloud
               else port_mac(topology, after, topology.port(after, branch)))
        hops.append(E.NextHop(port, mac, topology.host_address(cloud, name),
                              weight=weights[name], watch=port))
    return branch, tuple(E.steering_entry(model_id=model_id, layer=i, hops=hops) for i in layers)


def spread_weights(text: str) -> dict[str, int]:
    """``cloud-a=3,cloud-b=1`` as {path: weight} (the type of ``--spread`` arguments).

    >>> spread_weights("cloud-a=3,cloud-b=1")
    {'cloud-a': 3, 'cloud-b': 1}
    """
    out = {}
    for part in text.split(","):
        name, sep, weight = part.partition("=")
        if not sep or not name or not weight.isdigit() or int(weight) < 1:
            raise argparse.ArgumentTypeError(
                f"{part!r}: give PATH=WEIGHT with a positive integer weight, like cloud-a=3")
        out[name] = int(weight)
    return out


def from_plan(plan: Plan, layers: list[Layer], topology: Topology, *,
              model_id: int, version: int,
              spread_over: Mapping[str, int] | None = None,
              backups: Mapping[str, Sequence[int]] | None = None) -> Deployment:
    """The deployment that puts ``plan``'s switch stages in place on ``topology``.

    Every switch on the plan's path gets an assignment, the ones without layers an empty
    one (which removes what an earlier plan left there). When a switch computes the last
    layer it also answers the edge (steer_answer back along the path). A switch that
    advertises ``layers_per_s`` gets its share of it as the meter rate of each of its
    layers; what is offered beyond goes on to the next capable node. With ``spread_over``
    (path -> weight, ``spread``) what leaves the network for the cloud is spread over the
    clouds of those paths.

    The topology's policy (controller.policy) is checked first: a plan that breaks it, on
    its path or on a spread path, is a PolicyError naming the rule, and nothing is built.
    A switch holding a private layer (``private_layers``) gets no meter: a deferred
    packet would carry that layer's input on towards the untrusted nodes. Where the
    policy restricts the model to some sources (its tenants), every switch that computes
    it gets ``model_tenants`` entries: tensors from other sources are dropped there.

    ``backups`` (switch -> layer indices): switches on the path that also hold layers the
    plan gives to an earlier switch, so that what that switch defers over its meter is
    computed there rather than at the cloud (each backup layer is checked against the
    policy as if planned there; the model's last layer cannot be a backup's, since the
    switch computing it answers the edge).
    """
    route = topology.route(plan.route)
    names = [c.name for c in route.nodes]
    policy = topology.policy
    policy.check(plan.assignment, route, model_id)
    for other in spread_over or ():
        if other != plan.route and other in topology.paths:
            # the same plan with the other path's cloud computing what this one's would
            cloud = {names[-1]: topology.paths[other][-1]}
            policy.check([cloud.get(n, n) for n in plan.assignment], topology.route(other),
                         model_id)
    private = range(policy.private_layers + 1) if policy.private_layers else range(0)
    edge = topology.host_interface(names[0], plan.route)  # its address on this path
    held = {s.node: {i: layers[i] for i in s.layers} for s in plan.stages}
    last = next(s.node for s in reversed(plan.stages) if s.stop > s.start)
    for name, extra_layers in (backups or {}).items():
        if name not in topology.switches or name not in names:
            raise TopologyError(f"backup {name} is not a switch on path {plan.route}")
        for i in extra_layers:
            if not 0 <= i < len(layers) - 1:
                raise TopologyError(f"backup {name}: layer {i} is not a layer before the "
                                    f"model's last ({len(layers) - 1})")
            planned = plan.assignment[i]
            if planned not in topology.switches or names.index(planned) >= names.index(name):
                raise TopologyError(f"backup {name}: layer {i} is planned on {planned}, not "
                                    f"on a switch before {name}")
            policy.check([name if j == i else n for j, n in enumerate(plan.assignment)], route,
                         model_id)
            held[name] = dict(sorted({**held.get(name, {}), i: layers[i]}.items()))
    extra: dict[str, tuple[fy.P4TableEntry, ...]] = {}
    if spread_over:
        if plan.route not in spread_over:
            raise TopologyError(f"the plan's path {plan.route} is not among the spread paths "
                                f"({', '.join(spread_over)})")
        branch, spreading = spread(topology, spread_over, model_id=model_id,
                                   layers=range(plan.stages[0].stop, len(layers)))
        extra[branch] = spreading
    assignments = []
    for position, name in enumerate(names):
        if name not in topology.switches:
            continue
        steering: tuple[fy.P4TableEntry, ...] = ()
        if name == last:
            back = E.NextHop(topology.port(name, names[position - 1]), edge.mac,
                             edge.ip.split("/")[0], answer=True)
            steering = (E.steering_entry(model_id=model_id, layer=len(layers), hops=[back]),)
        steering += extra.get(name, ())
        mine = held.get(name, {})
        capacity = topology.switches[name].capability.layers_per_s
        rate = capacity / len(mine) if capacity is not None and mine else None
        if any(i in private for i in mine):
            rate = None
        assignments.append(SwitchAssignment(endpoint_of(topology.switches[name]), mine,
                                            steering, rate, policy.sources(model_id)))
    return Deployment(model_id, version, tuple(assignments))
