"""Table entries from quantized layers: names, keys and packed parameters the P4 expects."""

import finsy as fy
import pytest

from controller import entries as E
from dcia.arithmetic import Activation
from dcia.artifacts import Pipeline
from dcia.errors import ParameterRangeError
from dcia.layers import DenseLayer, ElementwiseLayer, EmbeddingLayer

SCHEMA = fy.P4Schema(Pipeline.default().p4info)


def encodes(entries):
    """Every entry encodes against the compiled P4Info (names, widths, match kinds)."""
    return [e.encode_entry(SCHEMA) for e in entries]


def test_pack_puts_element_zero_in_the_most_significant_bits():
    assert E.pack([1, -1], 8, count=2) == 0x01FF
    assert E.pack([-2], 16, count=2) == 0xFFFE_0000
    assert E.pack([], 8) == 0
    with pytest.raises(ParameterRangeError, match="does not fit int8"):
        E.pack([128], 8)
    with pytest.raises(ParameterRangeError, match="do not fit 16 slots"):
        E.pack([0] * 17, 8)


def test_dense_layer_becomes_one_layer_entry_and_one_entry_per_neuron():
    layer = DenseLayer([[1] * 16] * 10, [-1] * 10, [3] * 10, [4] * 10, Activation.RELU)
    entries = E.layer_entries(layer, model_id=5, version=2, index=7, more=True)
    assert [e.table_id for e in entries] == [E.T_LAYERS] + [E.dense_table(j) for j in range(10)]
    head = entries[0]
    assert head.match == {"model_id": 5, "model_version": 2, "layer": 7}
    assert (head.action.name, head.action.args) == (
        "dense_layer", {"n_in": 16, "n_out": 10, "act": 1, "more": 1})
    neuron = entries[3].action
    assert neuron.name == "dense_neuron_2"
    assert neuron.args["bias"] == 0xFFFFFFFF and neuron.args["w"] == int("01" * 16, 16)
    encodes(entries)


def test_elementwise_and_embedding_layers():
    ew = ElementwiseLayer([2, -3], [100, -100], mult=7, shift=3)
    (entry,) = E.layer_entries(ew, model_id=1, version=1, index=0)
    assert entry.action.args["scales"] >> 112 == 0x02FD
    assert entry.action.args["offsets"] >> 224 == 0x0064FF9C
    emb = EmbeddingLayer({3: [1, 2], 0: [0, 0]}, dim=2)
    entries = E.layer_entries(emb, model_id=1, version=1, index=0)
    assert [e.match.get("embed_id") for e in entries] == [None, 0, 3]
    encodes([entry, *entries])


def test_a_layer_too_large_for_a_switch_is_refused_with_its_size():
    wide = DenseLayer([[0] * 64] * 16, [0] * 16, [1] * 16, [0] * 16)
    with pytest.raises(ParameterRangeError, match="layer 0 has 64 inputs but switch dcia.p4 supports at most 16"):
        E.layer_entries(wide, model_id=1, version=1, index=0)


def test_versions_table_gets_the_held_versions_above_a_wildcard():
    entries = E.version_entries(9, [1, 2])
    assert [(e.match.get("model_version"), e.action.name, e.priority) for e in entries] == [
        (1, "version_here", 2), (2, "version_here", 2), (None, "other_version", 1)]
    encodes(entries)


def test_steering_actions():
    def one(**hop):
        return E.steering_entry(model_id=1, layer=2, hops=[E.NextHop(**hop)])

    plain = one(port=3, dst_mac="08:00:00:00:02:22")
    redirect = one(port=3, dst_mac="08:00:00:00:02:22", dst_ip="10.0.3.3")
    answer = one(port=1, dst_mac="08:00:00:00:01:11", dst_ip="10.0.1.1", answer=True)
    assert [e.action.action_set[0][1].name for e in (plain, redirect, answer)] == [
        "steer", "steer_redirect", "steer_answer"]
    with pytest.raises(ParameterRangeError, match="edge's address"):
        one(port=1, dst_mac="08:00:00:00:01:11", answer=True)
    encodes([plain, redirect, answer, E.route_entry(prefix="10.0.1.0/24", port=1,
                                                    dst_mac="08:00:00:00:01:11")])


def test_steering_groups_carry_weights_and_watch_ports():
    hops = [E.NextHop(2, "08:00:00:00:02:22", "10.0.2.2", weight=3, watch=2),
            E.NextHop(3, "08:00:00:00:04:33", "10.0.4.3")]
    entry = E.steering_entry(model_id=1, layer=3, hops=hops)
    [encoded] = encodes([entry])
    members = encoded.action.action_profile_action_set.action_profile_actions
    assert [(m.weight, m.WhichOneof("watch_kind")) for m in members] == [(3, "watch_port"), (1, None)]
    with pytest.raises(ParameterRangeError, match="no next hop"):
        E.steering_entry(model_id=1, layer=3, hops=[])
    with pytest.raises(ParameterRangeError, match="weight 0"):
        E.steering_entry(model_id=1, layer=3, hops=[E.NextHop(2, "08:00:00:00:02:22", weight=0)])
