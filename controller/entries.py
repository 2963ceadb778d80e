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

import finsy as fy

from dcia.capability import DCIA_PROGRAM, Capability
from dcia.errors import ParameterRangeError
from dcia.layers import DenseLayer, ElementwiseLayer, EmbeddingLayer, Layer, LayerKind
from dcia.wire import MAX_NET_ELEMS

INGRESS = "DciaIngress"
T_LAYERS = f"{INGRESS}.layers"
T_EMBEDDINGS = f"{INGRESS}.embeddings"
T_VERSIONS = f"{INGRESS}.model_versions"
T_STEERING = f"{INGRESS}.tensor_steering"
T_ROUTES = f"{INGRESS}.ipv4_lpm"
C_STATS = f"{INGRESS}.dcia_stats"
C_LAYER_STATS = f"{INGRESS}.layer_stats"
C_IPV4_DROPS = f"{INGRESS}.ipv4_drops"
STAT_NAMES = ("computed", "pass-through", "version mismatch", "malformed")
"""``dcia_stats`` by index (p4src/dcia.p4: STAT_*)."""
DROP_NAMES = ("ttl expired", "bad checksum", "bad header")
"""``ipv4_drops`` by index (p4src/dcia.p4: DROP_*)."""


def dense_table(neuron: int) -> str:
    return f"{INGRESS}.dense_{neuron}"


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


_BUILDERS = {
    LayerKind.DENSE: dense_entries,
    LayerKind.ELEMENTWISE: elementwise_entries,
    LayerKind.EMBEDDING: embedding_entries,
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


def steering_entry(
    *, model_id: int, layer: int, port: int, dst_mac: str, dst_ip: str | None = None,
    answer: bool = False,
) -> fy.P4TableEntry:
    """Send tensors of ``model_id`` whose next layer is ``layer`` out of ``port``.

    With ``dst_ip`` the IPv4 destination is rewritten (redirection to another node); with
    ``answer`` as well, the tensor becomes the answer to the edge at ``dst_ip`` (``layer``
    is then the model's layer count: every layer is done).
    """
    match = fy.P4TableMatch(model_id=model_id, layer=layer)
    if answer:
        if dst_ip is None:
            raise ParameterRangeError("an answer needs the edge's address (dst_ip)")
        action = fy.P4TableAction("steer_answer", port=port, dst_mac=dst_mac, edge_ip=dst_ip)
    elif dst_ip is None:
        action = fy.P4TableAction("steer", port=port, dst_mac=dst_mac)
    else:
        action = fy.P4TableAction("steer_redirect", port=port, dst_mac=dst_mac, dst_ip=dst_ip)
    return fy.P4TableEntry(T_STEERING, match=match, action=action)


def route_entry(*, prefix: str, port: int, dst_mac: str) -> fy.P4TableEntry:
    """An IPv4 route: ``prefix`` (``"10.0.1.0/24"``) out of ``port`` towards ``dst_mac``."""
    return fy.P4TableEntry(
        T_ROUTES,
        match=fy.P4TableMatch(ipv4_dst=prefix),
        action=fy.P4TableAction("ipv4_forward", dst_mac=dst_mac, port=port),
    )
