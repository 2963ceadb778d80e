"""The strategies the evaluation compares, as what each lets the planner do.

Every strategy is planned by controller.planner on the same path with the same (measured)
capabilities and deployed the normal way; only the constraints differ:

- ``edge-only``: every layer on the edge, which answers itself (the edge agent's
  ``--local``: nothing is sent);
- ``cloud-only``: every layer on the cloud; the raw input crosses the network
  (the topology's policy must allow that: ``raw_input_on_edge = false``);
- ``edge-cloud``: the planner's best split over edge and cloud, every switch forbidden
  (Neurosurgeon's setting; all split points, the two extremes included);
- ``dcia-network``: the planner's split over edge and switches, the cloud forbidden and
  the last layer kept off the edge: the last computing switch answers (``steer_answer``);
- ``dcia-cloud``: the planner's split over edge and switches with the last layer on the
  cloud and only there (``dcia testbed run --cloud-layers 1``): every request crosses the
  whole path.

``planner_choice`` is the unrestricted planner (edge, switches and cloud, no rule but the
topology's policy): the strategy DCIA would pick itself.

    >>> from controller.planner import LayerSpec
    >>> from controller.topology import load_topology
    >>> layers = [LayerSpec("dense", 64, 16)] + [LayerSpec("dense", 16, 16)] * 2 + [LayerSpec("dense", 16, 10)]
    >>> topology = load_topology("topologies/eval.toml")
    >>> [plan_for(s, layers, topology).assignment for s in (Strategy.EDGE_ONLY, Strategy.CLOUD_ONLY)]
    [('ed1', 'ed1', 'ed1', 'ed1'), ('cl1', 'cl1', 'cl1', 'cl1')]
    >>> plan_for(Strategy.DCIA_NETWORK, layers, topology).assignment[-1].startswith("sw")
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from controller.planner import Constraints, Forbid, Plan, plan
from controller.topology import Topology
from dcia.capability import NodeKind
from dcia.layers import LayerShape


class Strategy(StrEnum):
    EDGE_ONLY = "edge-only"
    CLOUD_ONLY = "cloud-only"
    EDGE_CLOUD = "edge-cloud"
    DCIA_NETWORK = "dcia-network"
    DCIA_CLOUD = "dcia-cloud"

    @property
    def single_tier(self) -> bool:
        return self in (Strategy.EDGE_ONLY, Strategy.CLOUD_ONLY)

    @property
    def dcia(self) -> bool:
        return self in (Strategy.DCIA_NETWORK, Strategy.DCIA_CLOUD)


DESCRIPTIONS = {
    Strategy.EDGE_ONLY: "every layer on the edge, answered there",
    Strategy.CLOUD_ONLY: "raw input to the cloud, every layer there",
    Strategy.EDGE_CLOUD: "best edge–cloud split, no switch computing (Neurosurgeon)",
    Strategy.DCIA_NETWORK: "edge and switches, the last switch answers",
    Strategy.DCIA_CLOUD: "edge and switches, the cloud computes the last layer",
}


def constraints(strategy: Strategy, n_layers: int) -> Constraints:
    """What ``strategy`` lets the planner do with a model of ``n_layers`` layers."""
    every, last = frozenset(range(n_layers)), frozenset({n_layers - 1})
    rule = f"strategy {strategy}"
    forbid: dict[Strategy, tuple[Forbid, ...]] = {
        Strategy.EDGE_ONLY: (),
        Strategy.CLOUD_ONLY: (Forbid(NodeKind.EDGE, every, rule), Forbid(NodeKind.SWITCH, every, rule)),
        Strategy.EDGE_CLOUD: (Forbid(NodeKind.SWITCH, every, rule),),
        Strategy.DCIA_NETWORK: (Forbid(NodeKind.CLOUD, every, rule), Forbid(NodeKind.EDGE, last, rule)),
        Strategy.DCIA_CLOUD: (Forbid(NodeKind.SWITCH, last, rule), Forbid(NodeKind.EDGE, last, rule),
                              Forbid(NodeKind.CLOUD, every - last, rule)),
    }
    return Constraints(min_edge_layers=n_layers if strategy is Strategy.EDGE_ONLY else 0,
                       forbid=forbid[strategy])


def plan_for(strategy: Strategy | None, layers: Sequence[LayerShape], topology: Topology,
             path: str | None = None, model_id: int | None = None) -> Plan:
    """The plan of ``strategy`` (None: the planner's own choice) on ``path``, within the
    topology's policy; PlanError or PolicyError when there is none."""
    route = topology.route(path)
    base = Constraints(min_edge_layers=0) if strategy is None else constraints(strategy, len(layers))
    return plan(layers, route, topology.policy.constraints(base, route, model_id, len(layers)))


def strategy_of(plan_: Plan, n_layers: int) -> str:
    """The strategy a plan amounts to, by where its layers run (for the planner's choice).

    >>> from controller.planner import Stage
    >>> strategy_of(Plan("main", "latency", (Stage("e", "edge", 0, 1, 0), Stage("s", "switch", 1, 4, 0)), ()), 4)
    'dcia-network'
    """
    kinds = [s.kind for s in plan_.stages for _ in s.layers]
    if set(kinds) == {"edge"}:
        return str(Strategy.EDGE_ONLY)
    if set(kinds) == {"cloud"}:
        return str(Strategy.CLOUD_ONLY)
    if "switch" not in kinds:
        return str(Strategy.EDGE_CLOUD)
    return str(Strategy.DCIA_NETWORK if kinds[-1] == "switch" else Strategy.DCIA_CLOUD)
