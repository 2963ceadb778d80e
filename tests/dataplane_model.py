"""What the DCIA program must do with a packet, written from docs/wire-format.md.

The data-plane tests compare every packet a switch (BMv2 or the embedded switch) sends
out with :func:`expect`, which runs the integer reference (dcia.layers) on the layers
installed on the switch.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from dcia.arithmetic import BAG_PAD
from dcia.layers import Layer
from dcia.wire import DCIA_VERSION, HEADER_BYTES, MAX_NET_ELEMS, MAX_PASSES, MAX_WIRE_ELEMS, Flag

STAT_COMPUTED, STAT_PASSTHROUGH, STAT_VERSION_MISMATCH, STAT_MALFORMED, STAT_DEFERRED = range(5)
# STAT_DEFERRED: a layer over its meter's rate; unconfigured meters (these models) never defer
# indices of ipv4_drops: IPv4 packets of any protocol dropped before anything else
DROP_TTL_EXPIRED, DROP_BAD_CHECKSUM, DROP_BAD_HEADER = range(3)


@dataclass
class InstalledModel:
    model_id: int
    version: int
    layers: dict[int, Layer]          # layer index -> layer
    more: dict[int, bool] = field(default_factory=dict)


@dataclass
class SwitchState:
    models: list[InstalledModel]
    counters: Counter = field(default_factory=Counter)          # dcia_stats index -> packets
    layer_counters: Counter = field(default_factory=Counter)    # layer index -> packets

    def find(self, model_id: int, version: int, layer: int) -> tuple[Layer, bool] | None:
        for m in self.models:
            if (m.model_id, m.version) == (model_id, version) and layer in m.layers:
                return m.layers[layer], m.more.get(layer, False)
        return None

    def knows_model(self, model_id: int) -> bool:
        return any(m.model_id == model_id for m in self.models)

    def holds_version(self, model_id: int, version: int) -> bool:
        return any((m.model_id, m.version) == (model_id, version) for m in self.models)


@dataclass
class Outcome:
    elems: list[int]
    next_layer: int
    net_layers: int
    flags: int
    kind: str            # computed | passthrough | mismatch | malformed | ordinary


def expect(state: SwitchState, *, ver: int, flags: int, model_id: int, version: int,
           next_layer: int, n_elems: int, elems: list[int], udp_len: int,
           net_layers: int = 0) -> Outcome:
    """The packet the switch must send, and the counters it must bump (into ``state``)."""
    malformed = (
        ver != DCIA_VERSION
        or n_elems > MAX_WIRE_ELEMS
        or (n_elems <= MAX_NET_ELEMS and len(elems) < n_elems)
        or udp_len != 8 + HEADER_BYTES + n_elems
    )
    if malformed:
        state.counters[STAT_MALFORMED] += 1
        return Outcome(elems, next_layer, net_layers, flags | Flag.MALFORMED, "malformed")
    if flags & 0x0F:
        return Outcome(elems, next_layer, net_layers, flags, "ordinary")
    kind = None
    for _ in range(MAX_PASSES):
        found = state.find(model_id, version, next_layer)
        if found is None:
            if kind is None:  # nothing computed on this switch
                if state.knows_model(model_id) and not state.holds_version(model_id, version):
                    state.counters[STAT_VERSION_MISMATCH] += 1
                    return Outcome(elems, next_layer, net_layers, flags, "mismatch")
                state.counters[STAT_PASSTHROUGH] += 1
                return Outcome(elems, next_layer, net_layers, flags, "passthrough")
            state.counters[STAT_PASSTHROUGH] += 1  # a recirculated pass found no state
            break
        layer, more = found
        if n_elems != layer.n_in:
            state.counters[STAT_MALFORMED] += 1
            return Outcome(elems, next_layer, net_layers, flags | Flag.MALFORMED, "malformed")
        if (layer.kind == "embedding" and _embed_id(elems) not in layer.table) or (
                layer.kind == "embedding_bag" and any(
                    v & 0xFF not in layer.table for v in elems if v & 0xFF != BAG_PAD)):
            state.counters[STAT_PASSTHROUGH] += 1
            if kind is None:
                return Outcome(elems, next_layer, net_layers, flags, "passthrough")
            break
        elems = layer.forward(elems)
        n_elems = len(elems)
        state.counters[STAT_COMPUTED] += 1
        state.layer_counters[next_layer] += 1
        next_layer, net_layers, kind = next_layer + 1, net_layers + 1, "computed"
        if not more:
            break
    return Outcome(elems, next_layer, net_layers, flags, kind or "passthrough")


def _embed_id(elems: list[int]) -> int:
    return ((elems[0] & 0xFF) << 8) | (elems[1] & 0xFF)
