"""Placement policy: where the operator lets inference run (draft-wang-cats-innetwork-infer-00,
security considerations: policy enforcement and data confidentiality).

A topology file's ``[policy]`` section says it, and the planner, the deployment and the
steering loop all obey it: the planner never proposes a placement the policy forbids
(``constraints``), and ``controller.deployment.from_plan``, through which every deployment
passes (``dcia deploy``, the testbed, ``dcia steer``), refuses one before anything is
written (``check``), naming the rule.

    [policy]
    raw_input_on_edge = true        # the model's input never leaves the edge (default)
    private_layers = 2              # the activations of layers 0 and 1 never reach an
                                    # untrusted node, not even one that only forwards them
    trust = { s3 = "untrusted" }    # every other node is trusted

    [[policy.rules]]
    name = "no-cloud-for-digits"    # every rule has a unique name: errors quote it
    forbid = ["cloud"]              # node names or kinds (edge, switch, cloud) ...
    models = [1]                    # ... for these model ids (default: every model)
    layers = [3]                    # ... and these layers (default: every layer)

    [[policy.rules]]
    name = "tenant-a-on-s1-only"
    allow = ["edge", "s1", "cloud"] # only these may run the layers: every other node may not

    sealed_models = [2]             # model 2's tensors are sealed end to end (AES-GCM) from
                                    # edge to cloud: no switch computes any of its layers
                                    # (needs [security] tensor_keys, dcia.sealing)

    [[policy.tenants]]              # tenant isolation: model 1 only for these sources; the
    name = "tenant-a"               # switches computing it drop other sources' tensors
    models = [1]                    # (model_tenants, counted "unauthorised") and the cloud
    sources = ["10.0.1.0/24"]       # answers them with an UNAUTHORISED error

A policy that contradicts itself (one rule allows a node what another forbids it) is
refused when the topology is read; one that no placement of a model can satisfy is a
PlanError naming the rules that excluded each node.

    >>> from controller.topology import load_topology
    >>> topo = load_topology("topologies/policy.toml")
    >>> for f in topo.policy.forbids(topo.route(), 1, 4):
    ...     print(f.where, sorted(f.layers), f.rule)
    s2 [0, 1] private_layers = 1 (s2 is untrusted)
    s3 [0, 1] private_layers = 1 (s2 is untrusted)
    h2 [0, 1] private_layers = 1 (s2 is untrusted)
    s3 [0, 1, 2, 3] s3-leased
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from dcia.capability import Capability, NodeKind
from dcia.errors import PolicyError, TopologyError

# Annotations name controller.planner.Constraints and controller.topology.Route, which
# import this module: they stay unimported here (the annotations are never evaluated).

TRUST_LEVELS = ("trusted", "untrusted")
RAW_INPUT_RULE = "raw_input_on_edge"
SEALED_RULE = "sealed_models"
KINDS = frozenset(k.value for k in NodeKind)


@dataclass(frozen=True)
class Forbid:
    """``where`` (a node name or a kind) must not run ``layers`` (None: any layer);
    ``rule`` names the policy rule of the topology it comes from (None: a constraint of
    the command, such as ``dcia plan --forbid``)."""

    where: str
    layers: frozenset[int] | None = None
    rule: str | None = None

    def applies(self, node: Capability, layer: int) -> bool:
        return self.where in (node.name, node.kind) and (self.layers is None or layer in self.layers)

    @property
    def source(self) -> str:
        """How a refusal names it: ``policy rule 'x'``, or ``policy`` (the command's)."""
        return f"policy rule '{self.rule}'" if self.rule else "policy"


@dataclass(frozen=True)
class Rule:
    """A named rule: ``forbid`` (these nodes may not run the layers) or ``allow`` (only
    these may), for ``models`` and ``layers`` (None: all)."""

    name: str
    effect: str
    where: frozenset[str]
    models: frozenset[int] | None = None
    layers: frozenset[int] | None = None

    def covers(self, model_id: int | None, layer: int) -> bool:
        """Whether the rule speaks of ``layer`` of ``model_id`` (None: any model)."""
        return ((self.models is None or model_id is None or model_id in self.models)
                and (self.layers is None or layer in self.layers))

    def names(self, node: Capability) -> bool:
        return node.name in self.where or str(node.kind) in self.where


@dataclass(frozen=True)
class Tenant:
    """Sources (IPv4 prefixes) that may use ``models``; a model no tenant names is open."""

    name: str
    models: frozenset[int]
    sources: tuple[str, ...]


@dataclass(frozen=True)
class Policy:
    """The ``[policy]`` of a topology (the default: the raw input stays on the edge, and
    nothing else is restricted)."""

    raw_input_on_edge: bool = True
    private_layers: int = 0
    trust: Mapping[str, str] = field(default_factory=dict)
    """Node -> ``trusted`` or ``untrusted``; nodes left out are trusted."""
    rules: tuple[Rule, ...] = ()
    tenants: tuple[Tenant, ...] = ()
    sealed_models: frozenset[int] = frozenset()
    """Models whose tensors the edge seals to the cloud: no switch may compute them."""

    def sources(self, model_id: int) -> tuple[str, ...] | None:
        """The source prefixes that may use ``model_id`` (None: any source)."""
        found = [t for t in self.tenants if model_id in t.models]
        if not found:
            return None
        return tuple(sorted({p for t in found for p in t.sources}))

    def trusted(self, node: str) -> bool:
        return self.trust.get(node, "trusted") == "trusted"

    def forbids(self, route: Route, model_id: int | None, n_layers: int) -> tuple[Forbid, ...]:
        """What the policy forbids on ``route`` for a model of ``n_layers`` layers, each
        forbid naming its rule, one per node (by name)."""
        out = []
        untrusted = [i for i, n in enumerate(route.nodes) if not self.trusted(n.name)]
        if self.private_layers and untrusted:
            first = untrusted[0]
            # layer i reads the activation of layer i - 1: layers 0..k must run before
            # the first untrusted node, or an activation of the first k layers crosses it
            private = frozenset(range(min(self.private_layers + 1, n_layers)))
            rule = f"private_layers = {self.private_layers} ({route.nodes[first].name} is untrusted)"
            out += [Forbid(n.name, private, rule) for n in route.nodes[first:]]
        if self.sealed_models and (model_id is None or model_id in self.sealed_models):
            which = f"model {model_id}'s" if model_id is not None else "the model's"
            rule = f"{SEALED_RULE} ({which} tensors are sealed end to end)"
            every = frozenset(range(n_layers))
            out += [Forbid(n.name, every, rule) for n in route.nodes if n.kind == NodeKind.SWITCH]
        for rule in self.rules:
            for node in route.nodes:
                layers = frozenset(i for i in range(n_layers) if rule.covers(model_id, i))
                if layers and rule.names(node) == (rule.effect == "forbid"):
                    out.append(Forbid(node.name, layers, rule.name))
        return tuple(out)

    def constraints(self, base: Constraints, route: Route, model_id: int | None,
                    n_layers: int) -> Constraints:
        """``base`` with the policy's rules for ``route`` added. Asking for the raw input
        to leave the edge (``base.min_edge_layers == 0``) where the policy keeps it there
        is a PolicyError naming the rule."""
        edge_layers = base.min_edge_layers
        if self.raw_input_on_edge and edge_layers == 0:
            raise PolicyError(f"policy rule '{RAW_INPUT_RULE}': the raw input never leaves the "
                              "edge, but 0 edge layers were asked for (give at least 1)")
        return replace(base, forbid=base.forbid + self.forbids(route, model_id, n_layers))

    def check(self, assignment: Sequence[str], route: Route, model_id: int | None) -> None:
        """Raise PolicyError naming the first rule that ``assignment`` (the node of each
        layer, along ``route``) breaks."""
        n = len(assignment)
        if self.raw_input_on_edge and n and assignment[0] != route.nodes[0].name:
            raise PolicyError(f"policy rule '{RAW_INPUT_RULE}': layer 0 would run on "
                              f"{assignment[0]}, so the raw input would leave the edge "
                              f"{route.nodes[0].name}")
        by_name = {node.name: node for node in route.nodes}
        for forbid in self.forbids(route, model_id, n):
            for i, name in enumerate(assignment):
                node = by_name.get(name)
                if node is not None and forbid.applies(node, i):
                    raise PolicyError(f"{forbid.source}: layer {i} of model {model_id} may not "
                                      f"run on {name} (path {route.name})")


def parse_policy(table: Any, nodes: Mapping[str, Capability]) -> Policy:
    """Check a topology's ``[policy]`` table against its ``nodes``; errors say what and where."""
    if not isinstance(table, Mapping):
        raise TopologyError("[policy] must be a table")
    keys = ("raw_input_on_edge", "private_layers", "trust", "rules", "tenants", "sealed_models")
    unknown = sorted(set(table) - set(keys))
    if unknown:
        raise TopologyError(f"[policy]: unknown key {', '.join(unknown)} (keys: {', '.join(keys)})")
    raw = table.get("raw_input_on_edge", True)
    if not isinstance(raw, bool):
        raise TopologyError(f"[policy] raw_input_on_edge must be true or false, not {raw!r}")
    private = table.get("private_layers", 0)
    if isinstance(private, bool) or not isinstance(private, int) or private < 0:
        raise TopologyError(f"[policy] private_layers must be a whole number 0 or more, not {private!r}")
    trust = table.get("trust", {})
    if not isinstance(trust, Mapping):
        raise TopologyError("[policy] trust must be a table of node = \"trusted\" | \"untrusted\"")
    for node, level in trust.items():
        _known("[policy] trust", node, nodes, kinds=False)
        if level not in TRUST_LEVELS:
            raise TopologyError(f"[policy] trust: {node} = {level!r}; give \"trusted\" or \"untrusted\"")
    if private and not any(level == "untrusted" for level in trust.values()):
        raise TopologyError(f"[policy] private_layers = {private} protects nothing: no node is "
                            "untrusted (give trust = {{ NODE = \"untrusted\" }})")
    rules = tuple(_rule(i, entry, nodes) for i, entry in enumerate(_list(table.get("rules", []), "rules")))
    seen: set[str] = set()
    for rule in rules:
        if rule.name in seen:
            raise TopologyError(f"[policy] two rules are named '{rule.name}'; names must be unique")
        seen.add(rule.name)
    _check_contradictions(rules, nodes)
    tenants = tuple(_tenant(i, entry) for i, entry in enumerate(_list(table.get("tenants", []), "tenants")))
    sealed = _ints("[policy]", table, "sealed_models", 0xFFFF) or frozenset()
    return Policy(raw, private, dict(trust), rules, tenants, sealed)


def _named(array: str, what: str, index: int, entry: Any, keys: Sequence[str]) -> tuple[str, str]:
    """The name of entry ``index`` of ``[[policy.<array>]]`` and how errors call it
    (``policy rule 'x'``), after checking that it is a table of ``keys`` with a name."""
    where = f"[[policy.{array}]] #{index + 1}"
    if not isinstance(entry, Mapping):
        raise TopologyError(f"{where} must be a table")
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise TopologyError(f"{where} needs a name (name = \"...\"): errors quote it")
    where = f"policy {what} '{name}'"
    unknown = sorted(set(entry) - {"name", *keys})
    if unknown:
        raise TopologyError(f"{where}: unknown key {', '.join(unknown)} (keys: name, "
                            f"{', '.join(keys)})")
    return name, where


def _tenant(index: int, entry: Any) -> Tenant:
    name, where = _named("tenants", "tenant", index, entry, ("models", "sources"))
    models = _ints(where, entry, "models", 0xFFFF)
    if models is None:
        raise TopologyError(f"{where}: give models = [model ids] it may use")
    sources = entry.get("sources")
    if not isinstance(sources, list) or not sources:
        raise TopologyError(f"{where}: give sources = [IPv4 prefixes], like [\"10.0.1.0/24\"]")
    prefixes = []
    for source in sources:
        try:
            prefixes.append(str(ipaddress.IPv4Network(source, strict=False)))
        except (ipaddress.AddressValueError, ipaddress.NetmaskValueError, ValueError, TypeError):
            raise TopologyError(f"{where}: {source!r} is not an IPv4 address or prefix") from None
    return Tenant(name, models, tuple(prefixes))


def _list(value: Any, key: str) -> list:
    if not isinstance(value, list):
        raise TopologyError(f"[policy] {key} must be an array of tables ([[policy.{key}]])")
    return value


def _rule(index: int, entry: Any, nodes: Mapping[str, Capability]) -> Rule:
    name, where = _named("rules", "rule", index, entry, ("forbid", "allow", "models", "layers"))
    effects = [e for e in ("forbid", "allow") if e in entry]
    if len(effects) != 1:
        raise TopologyError(f"{where}: give either forbid = [nodes] or allow = [nodes], not "
                            f"{'both' if effects else 'neither'}")
    effect = effects[0]
    targets = entry[effect]
    if not isinstance(targets, list) or not targets or not all(isinstance(t, str) for t in targets):
        raise TopologyError(f"{where}: {effect} must be a non-empty list of node names or kinds")
    for target in targets:
        _known(where, target, nodes, kinds=True)
    return Rule(name, effect, frozenset(targets), _ints(where, entry, "models", 0xFFFF),
                _ints(where, entry, "layers", None))


def _ints(where: str, entry: Mapping[str, Any], key: str, top: int | None) -> frozenset[int] | None:
    if key not in entry:
        return None
    values = entry[key]
    if (not isinstance(values, list) or not values
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values)
            or (top is not None and any(v > top for v in values))):
        limit = f" up to {top}" if top is not None else ""
        raise TopologyError(f"{where}: {key} must be a non-empty list of whole numbers 0 or "
                            f"more{limit}, not {values!r}")
    return frozenset(values)


def _known(where: str, target: str, nodes: Mapping[str, Capability], *, kinds: bool) -> None:
    if target in nodes or (kinds and target in KINDS):
        return
    also = f"; or a kind: {', '.join(sorted(KINDS))}" if kinds else ""
    raise TopologyError(f"{where}: unknown node {target} (nodes: {', '.join(nodes)}{also})")


def _check_contradictions(rules: Sequence[Rule], nodes: Mapping[str, Capability]) -> None:
    """One rule allowing a node what another forbids it, for a model and layer both cover."""
    for a in rules:
        for b in rules:
            if a.effect != "allow" or b.effect != "forbid":
                continue
            models = (None if a.models is None and b.models is None
                      else (a.models or b.models) if a.models is None or b.models is None
                      else a.models & b.models)
            layers = (None if a.layers is None and b.layers is None
                      else (a.layers or b.layers) if a.layers is None or b.layers is None
                      else a.layers & b.layers)
            both = [n for n, node in nodes.items() if a.names(node) and b.names(node)]
            if both and models != frozenset() and layers != frozenset():
                scope = (f"model {', '.join(map(str, sorted(models)))}" if models else "every model")
                scope += (f" layers {', '.join(map(str, sorted(layers)))}" if layers else ", every layer")
                raise TopologyError(f"policy rules '{a.name}' and '{b.name}' contradict each other: "
                                    f"'{a.name}' allows {', '.join(both)} to run {scope} and "
                                    f"'{b.name}' forbids it")
