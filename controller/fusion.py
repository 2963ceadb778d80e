"""Where a model's fusion layer runs: at the first switch every member's path shares.

The planner splits a model along one path; a fusion joins several (one per member, each
from its own edge). So a model with a fusion layer (index ``f``) is planned along the
first member's path with these constraints (``fusion_constraints``), and the plan is
deployed as any other:

- layers ``[0, f)`` run on the edge: each member computes its own input's first stage;
- layer ``f`` runs on the **fusion switch**, the first switch of the first member's path
  that lies on every member's path (the roadside unit): the only place all members pass
  (docs/wire-format.md: the fusion switch must be on every member's path);
- the last layer runs on the cloud, which answers every member of a group (hosts.fusion);
  the layers between are the planner's choice.

The deployment's steering is keyed by (model, next layer), not by the path a packet came
on, so the other members' packets, which reach the fusion switch on other ports, follow
the same next hops from there on.

    >>> from controller.topology import load_topology
    >>> fusion_switch(load_topology("topologies/vehicles.toml"), ["obu1", "obu2"])
    'rsu1'
"""

from __future__ import annotations

from collections.abc import Sequence

from controller.policy import Forbid
from controller.topology import Topology
from dcia.capability import NodeKind
from dcia.errors import PlanError
from dcia.layers import LayerShape
from dcia.model import fusion_index


def fusion_switch(topology: Topology, paths: Sequence[str]) -> str:
    """The first switch of ``paths[0]`` that every one of ``paths`` passes."""
    routes = [topology.paths[p] for p in paths]
    for node in routes[0][1:-1]:
        if all(node in route for route in routes[1:]):
            return node
    raise PlanError(f"paths {', '.join(paths)} share no switch: no switch can fuse their members")


def fusion_constraints(topology: Topology, paths: Sequence[str],
                       layers: Sequence[LayerShape]) -> tuple[str, tuple[Forbid, ...]]:
    """The fusion switch of ``paths`` and what the planner must respect for ``layers``."""
    f = fusion_index(layers)
    if f is None:
        raise PlanError("the model has no fusion layer")
    last = len(layers) - 1
    if f == last:
        raise PlanError("the fusion layer is the model's last; the cloud must finish the model")
    switch = fusion_switch(topology, paths)
    before, fusion, final = frozenset(range(f)), frozenset({f}), frozenset({last})
    others = sorted(s for s in topology.switches if s != switch)
    return switch, (
        Forbid(NodeKind.SWITCH, before, "fusion: members' own stages"),
        Forbid(NodeKind.CLOUD, before, "fusion: members' own stages"),
        Forbid(NodeKind.EDGE, fusion, "fusion: at the fusion switch"),
        Forbid(NodeKind.CLOUD, fusion, "fusion: at the fusion switch"),
        *(Forbid(s, fusion, "fusion: at the fusion switch") for s in others),
        Forbid(NodeKind.SWITCH, final, "fusion: the cloud answers every member"),
        Forbid(NodeKind.EDGE, final, "fusion: the cloud answers every member"),
    )
