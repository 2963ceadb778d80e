"""Table entries of the DCIA program: quantized layers, versions, steering and routes.

This module knows the P4 program's tables, actions and parameter layouts by *name*
(the P4Info is the API between p4src/dcia.p4 and the controller); finsy's schema turns names into ids and
values into canonical byte strings when the entries are written.

    >>> e = dense_entries(DenseLayer([[1, -1]], [3], [1], [0]), model_id=1, version=2, index=4)
    >>> [x.table_id for x in e]
    ['DciaIngress.layers', 'DciaIngress.dense_0']
    >>> hex(e[1].action.args["w"])
    '0x1ff0000000000000000000000000000'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import finsy as fy

from dcia.capability import DCIA_PROGRAM, Capability
from dcia.errors import ParameterRangeError
from dcia.layers import (
    DenseLayer,
    ElementwiseLayer,
    EmbeddingBagLayer,
    EmbeddingLayer,
    FusionLayer,
    Layer,
    LayerKind,
)
from dcia.wire import MAX_NET_ELEMS

INGRESS = "DciaIngress"
T_LAYERS = f"{INGRESS}.layers"
T_EMBEDDINGS = f"{INGRESS}.embeddings"
T_VERSIONS = f"{INGRESS}.model_versions"
T_STEERING = f"{INGRESS}.tensor_steering"
T_ROUTES = f"{INGRESS}.ipv4_lpm"
T_TENANTS = f"{INGRESS}.model_tenants"
C_STATS = f"{INGRESS}.dcia_stats"
C_LAYER_STATS = f"{INGRESS}.layer_stats"
C_IPV4_DROPS = f"{INGRESS}.ipv4_drops"
C_FUSION_STATS = f"{INGRESS}.fusion_stats"
STAT_NAMES = ("computed", "pass-through", "version mismatch", "malformed", "deferred",
              "unauthorised")
"""``dcia_stats`` by index (p4src/dcia.p4: STAT_*)."""
DROP_NAMES = ("ttl expired", "bad checksum", "bad header")
"""``ipv4_drops`` by index (p4src/dcia.p4: DROP_*)."""
FUSION_STAT_NAMES = ("fused", "timed out", "duplicate", "collision", "stored", "late",
                     "idle flush")
"""``fusion_stats`` by index (p4src/dcia.p4: FUSE_*)."""
FUSION_SLOTS = 256
"""Group slots of the P4 program (``FUSE_SLOTS``): group ``g`` waits in slot ``g % 256``."""


def dense_table(neuron: int) -> str:
    return f"{INGRESS}.dense_{neuron}"


def bag_table(position: int) -> str:
    """The table of the embedding-bag vectors looked up for the token at ``position``."""
    return f"{INGRESS}.bag_{position}"


BAG_TABLE_SIZE = 4096
"""Entries of each ``bag_<position>`` table (p4src/dcia.p4): the (model, version, layer,
token id) vectors a switch holds, over all its embedding-bag layers."""


def pack(values: Sequence[int], bits: int, count: int = MAX_NET_ELEMS) -> int:
    """Pack signed ``values`` into one ``bits * count``-bit integer, values[0] most significant.

    This is the byte order of the P4Runtime byte string of a ``bit<bits*count>`` parameter,
    which the P4 program slices with ``W(w, i)``.

    >>> hex(pack([1, -1], 8, count=2))
    '0x1ff'
    """
    if len(values) > count:
        raise ParameterRangeError(f"{len(values)} values do not fit {count} slots")
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    word = 0
    for i in range(count):
        v = values[i] if i < len(values) else 0
        if not lo <= v <= hi:
            raise ParameterRangeError(f"value {v} at position {i} does not fit int{bits}")
        word = (word << bits) | (v & ((1 << bits) - 1))
    return word


def _key(model_id: int, version: int, index: int) -> fy.P4TableMatch:
    return fy.P4TableMatch(model_id=model_id, model_version=version, layer=index)


def dense_entries(
    layer: DenseLayer, *, model_id: int, version: int, index: int, more: bool = False
) -> list[fy.P4TableEntry]:
    """The `layers` entry and one `dense_J` entry per output neuron."""
    key = _key(model_id, version, index)
    entries = [
        fy.P4TableEntry(
            T_LAYERS,
            match=key,
            action=fy.P4TableAction(
                "dense_layer", n_in=layer.n_in, n_out=layer.n_out, act=int(layer.act), more=int(more)
            ),
        )
    ]
    for j, row in enumerate(layer.weights):
        entries.append(
            fy.P4TableEntry(
                dense_table(j),
                match=key,
                action=fy.P4TableAction(
                    f"dense_neuron_{j}",
                    w=pack(row, 8),
                    bias=layer.bias[j] & 0xFFFFFFFF,
                    mult=layer.mult[j],
                    shift=layer.shift[j],
                ),
            )
        )
    return entries


def elementwise_entries(
    layer: ElementwiseLayer, *, model_id: int, version: int, index: int, more: bool = False
) -> list[fy.P4TableEntry]:
    """The `layers` entry carrying every parameter of an element-wise transform."""
    action = fy.P4TableAction(
        "elementwise_layer",
        n=layer.n_in,
        act=int(layer.act),
        mult=layer.mult,
        shift=layer.shift,
        scales=pack(layer.scales, 8),
        offsets=pack(layer.offsets, 16),
        more=int(more),
    )
    return [fy.P4TableEntry(T_LAYERS, match=_key(model_id, version, index), action=action)]


def embedding_entries(
    layer: EmbeddingLayer, *, model_id: int, version: int, index: int, more: bool = False
) -> list[fy.P4TableEntry]:
    """The `layers` entry and one `embeddings` entry per id."""
    entries = [
        fy.P4TableEntry(
            T_LAYERS,
            match=_key(model_id, version, index),
            action=fy.P4TableAction("embedding_layer", n_out=layer.dim, more=int(more)),
        )
    ]
    for ident, vec in sorted(layer.table.items()):
        entries.append(
            fy.P4TableEntry(
                T_EMBEDDINGS,
                match=fy.P4TableMatch(
                    model_id=model_id, model_version=version, layer=index, embed_id=ident
                ),
                action=fy.P4TableAction("embed", vec=pack(vec, 8)),
            )
        )
    return entries


def embedding_bag_entries(
    layer: EmbeddingBagLayer, *, model_id: int, version: int, index: int, more: bool = False
) -> list[fy.P4TableEntry]:
    """The `layers` entry and, for each token id, its vector in every position's table
    ``bag_0 .. bag_<n_in - 1>`` (a P4 table is applied once per pass: one per position).

    >>> bag = EmbeddingBagLayer({1: [3, -1], 7: [0, 2]}, dim=2, n_in=3)
    >>> e = embedding_bag_entries(bag, model_id=1, version=1, index=0)
    >>> len(e), e[0].action.name, e[1].table_id, e[1].match["token"]
    (7, 'embedding_bag_layer', 'DciaIngress.bag_0', 1)
    """
    if len(layer.table) > BAG_TABLE_SIZE:
        raise ParameterRangeError(f"an embedding-bag of {len(layer.table)} tokens does not fit "
                                  f"a switch's {BAG_TABLE_SIZE} entries per position")
    entries = [
        fy.P4TableEntry(
            T_LAYERS,
            match=_key(model_id, version, index),
            action=fy.P4TableAction("embedding_bag_layer", n_in=layer.n_in, n_out=layer.dim,
                                    mode=int(layer.mode), more=int(more)),
        )
    ]
    for position in range(layer.n_in):
        for token, vec in sorted(layer.table.items()):
            entries.append(fy.P4TableEntry(
                bag_table(position),
                match=fy.P4TableMatch(model_id=model_id, model_version=version, layer=index,
                                      token=token),
                action=fy.P4TableAction("bag_add", vec=pack(vec, 8)),
            ))
    return entries


def fusion_entries(
    layer: FusionLayer, *, model_id: int, version: int, index: int, more: bool = False
) -> list[fy.P4TableEntry]:
    """The `layers` entry of a fusion layer: its size, group size and timeout.

    >>> [e] = fusion_entries(FusionLayer(n=8, members=3, timeout_us=5000), model_id=1,
    ...                      version=1, index=2)
    >>> e.action.name, e.action.args["members"], e.action.args["timeout_us"]
    ('fusion_layer', 3, 5000)
    """
    action = fy.P4TableAction("fusion_layer", n=layer.n, members=layer.members,
                              timeout_us=layer.timeout_us, more=int(more))
    return [fy.P4TableEntry(T_LAYERS, match=_key(model_id, version, index), action=action)]


_BUILDERS = {
    LayerKind.DENSE: dense_entries,
    LayerKind.ELEMENTWISE: elementwise_entries,
    LayerKind.EMBEDDING: embedding_entries,
    LayerKind.EMBEDDING_BAG: embedding_bag_entries,
    LayerKind.FUSION: fusion_entries,
}


def layer_entries(
    layer: Layer, *, model_id: int, version: int, index: int, more: bool = False,
    switch: Capability = DCIA_PROGRAM,
) -> list[fy.P4TableEntry]:
    """All entries that put ``layer`` (layer ``index`` of the model) on a switch.

    ``more`` tells the switch that layer ``index + 1`` is on it too (recirculate);
    ``switch.can_run`` decides whether the layer fits.
    """
    problem = switch.can_run(layer)
    if problem:
        raise ParameterRangeError(f"layer {index} {problem}")
    build = _BUILDERS[layer.kind]
    return build(layer, model_id=model_id, version=version, index=index, more=more)


def version_entries(model_id: int, versions: Sequence[int]) -> list[fy.P4TableEntry]:
    """`model_versions` entries: the versions held here, and a wildcard for all others."""
    entries = [
        fy.P4TableEntry(
            T_VERSIONS,
            match=fy.P4TableMatch(model_id=model_id, model_version=v),
            action=fy.P4TableAction("version_here"),
            priority=2,
        )
        for v in versions
    ]
    entries.append(
        fy.P4TableEntry(
            T_VERSIONS,
            match=fy.P4TableMatch(model_id=model_id),
            action=fy.P4TableAction("other_version"),
            priority=1,
        )
    )
    return entries


@dataclass(frozen=True)
class NextHop:
    """One member of a steering group: where a tensor goes, and how much of the traffic.

    ``dst_ip`` rewrites the IPv4 destination (redirection to another node); with ``answer``
    the tensor becomes the answer to the edge at ``dst_ip``. ``watch`` is the port whose
    loss takes this member out of the choice at once, where the switch honours watch
    ports (P4Runtime fast failover; see docs/embedded-switch.md).
    """

    port: int
    dst_mac: str
    dst_ip: str | None = None
    answer: bool = False
    weight: int = 1
    watch: int | None = None

    def action(self) -> fy.P4TableAction:
        if self.answer:
            if self.dst_ip is None:
                raise ParameterRangeError("an answer needs the edge's address (dst_ip)")
            return fy.P4TableAction("steer_answer", port=self.port, dst_mac=self.dst_mac,
                                    edge_ip=self.dst_ip)
        if self.dst_ip is None:
            return fy.P4TableAction("steer", port=self.port, dst_mac=self.dst_mac)
        return fy.P4TableAction("steer_redirect", port=self.port, dst_mac=self.dst_mac,
                                dst_ip=self.dst_ip)


def steering_entry(*, model_id: int, layer: int, hops: Sequence[NextHop]) -> fy.P4TableEntry:
    """Send tensors of ``model_id`` whose next layer is ``layer`` to one of ``hops``.

    ``tensor_steering`` is an action selector: the entry is a one-shot action set, one
    weighted member per hop; the switch hashes the source address and the request id, so
    a request and its retries always take the same hop.

    >>> e = steering_entry(model_id=1, layer=3, hops=[
    ...     NextHop(2, "08:00:00:00:02:22", "10.0.2.2", weight=3),
    ...     NextHop(3, "08:00:00:00:04:33", "10.0.4.3", weight=1, watch=3)])
    >>> [(w, a.name) for w, a in e.action.action_set]
    [(3, 'steer_redirect'), ((1, 3), 'steer_redirect')]
    """
    if not hops:
        raise ParameterRangeError(f"steering of model {model_id} layer {layer}: no next hop")
    members = []
    for hop in hops:
        if hop.weight < 1:
            raise ParameterRangeError(f"next hop on port {hop.port}: weight {hop.weight} < 1")
        weight = hop.weight if hop.watch is None else (hop.weight, hop.watch)
        members.append(weight * hop.action())
    return fy.P4TableEntry(T_STEERING, match=fy.P4TableMatch(model_id=model_id, layer=layer),
                           action=fy.P4IndirectAction(members))


METER_BURST_S = 0.01
"""A layer meter lets a burst of this many seconds of its rate through at once."""


def meter_config(layers_per_s: float) -> fy.P4MeterConfig:
    """The direct meter of a ``layers`` entry for a rate in packets per second: one rate
    (committed = peak), so a packet is either within it (computed) or deferred.

    >>> meter_config(2000)
    P4MeterConfig(cir=2000, cburst=20, pir=2000, pburst=20, eburst=0)
    """
    rate = max(1, round(layers_per_s))
    burst = max(1, round(layers_per_s * METER_BURST_S))
    return fy.P4MeterConfig(cir=rate, cburst=burst, pir=rate, pburst=burst)


def tenant_entries(model_id: int, sources: Sequence[str]) -> list[fy.P4TableEntry]:
    """``model_tenants`` entries that restrict ``model_id`` to ``sources`` (IPv4 prefixes):
    a deny for every source, an allow per prefix (the longest prefix wins).

    >>> [(e.match["src"], e.action.name) for e in tenant_entries(1, ["10.0.1.0/24"])]
    [('0.0.0.0/0', 'tenant_denied'), ('10.0.1.0/24', 'tenant_allowed')]
    """
    entries = [fy.P4TableEntry(T_TENANTS, match=fy.P4TableMatch(model_id=model_id, src="0.0.0.0/0"),
                               action=fy.P4TableAction("tenant_denied"))]
    entries += [fy.P4TableEntry(T_TENANTS, match=fy.P4TableMatch(model_id=model_id, src=prefix),
                                action=fy.P4TableAction("tenant_allowed"))
                for prefix in sorted(set(sources)) if prefix != "0.0.0.0/0"]
    return entries


def route_entry(*, prefix: str, port: int, dst_mac: str) -> fy.P4TableEntry:
    """An IPv4 route: ``prefix`` (``"10.0.1.0/24"``) out of ``port`` towards ``dst_mac``."""
    return fy.P4TableEntry(
        T_ROUTES,
        match=fy.P4TableMatch(ipv4_dst=prefix),
        action=fy.P4TableAction("ipv4_forward", dst_mac=dst_mac, port=port),
    )
