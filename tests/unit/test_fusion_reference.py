"""The integer reference of in-network fusion: what a fusion layer computes, how its
members are named on the wire, and how a fusion layer is stored and deployed."""

import itertools
import random

import numpy as np
import pytest

from controller import entries
from dcia.arithmetic import fuse
from dcia.capability import DCIA_PROGRAM, Capability
from dcia.errors import ParameterRangeError, WireFormatError
from dcia.layers import DenseLayer, FusionLayer, LayerKind
from dcia.model import FloatDense, FloatFusion, FloatModel, QuantizedModel
from dcia.wire import (
    DCIA,
    FLUSH_MEMBER,
    MAX_FUSION_MEMBERS,
    NO_COMPUTE,
    Flag,
    fusion_field,
    fusion_member,
)


def random_members(rng: random.Random, k: int, n: int) -> list[list[int]]:
    return [[rng.choice([-128, 127, 0, rng.randint(-128, 127)]) for _ in range(n)]
            for _ in range(k)]


def test_fusion_is_the_element_wise_maximum():
    assert fuse([[1, -5, 7, -128], [3, -9, -128, -128], [0, 0, 0, -127]]) == [3, 0, 7, -127]
    assert fuse([[-128] * 4, [127] * 4]) == [127] * 4


def test_fusion_ignores_arrival_order_and_partial_fusions_compose():
    rng = random.Random(14)
    for _ in range(200):
        k = rng.randint(2, MAX_FUSION_MEMBERS)
        members = random_members(rng, k, rng.randint(1, 16))
        whole = fuse(members)
        for order in itertools.islice(itertools.permutations(members), 6):
            assert fuse(list(order)) == whole
        cut = rng.randint(1, k - 1)
        assert fuse([fuse(members[:cut]), fuse(members[cut:])]) == whole


def test_a_partial_group_is_fused_over_the_members_present():
    layer = FusionLayer(n=3, members=3)
    assert layer.fuse([[1, 2, 3], [0, 5, -1]]) == [1, 5, 3]
    assert layer.fuse([[4, -4, 0]]) == layer.forward([4, -4, 0]) == [4, -4, 0]


def test_fusion_refuses_what_no_switch_would_compute():
    with pytest.raises(ParameterRangeError, match="at least one member"):
        fuse([])
    with pytest.raises(ParameterRangeError, match="member 1 has 2 elements"):
        fuse([[1, 2, 3], [1, 2]])
    with pytest.raises(ParameterRangeError, match="int8"):
        fuse([[1, 200]])
    with pytest.raises(ParameterRangeError, match="has 2 members, got 3"):
        FusionLayer(n=2, members=2).fuse([[0, 0]] * 3)
    for k in (0, 1, MAX_FUSION_MEMBERS + 1):
        with pytest.raises(ParameterRangeError, match="2..8 members"):
            FusionLayer(n=4, members=k)
    with pytest.raises(ParameterRangeError, match="timeout"):
        FusionLayer(n=4, members=2, timeout_us=-1)


def test_a_fusion_layer_keeps_its_size_and_fits_a_switch():
    layer = FusionLayer(n=16, members=4, timeout_us=2000)
    assert (layer.kind, layer.n_in, layer.n_out, layer.macs) == (LayerKind.FUSION, 16, 16, 0)
    assert DCIA_PROGRAM.can_run(layer) is None
    assert "runs only dense" in Capability.nominal("s9", "switch", operations=["dense"]).can_run(layer)
    assert "at most 16" in DCIA_PROGRAM.can_run(FusionLayer(n=17, members=2))
    batch = np.array([[1, -2], [3, 4]], dtype=np.int8)
    assert (layer.forward_batch(batch) == batch).all()


def test_a_model_with_a_fusion_layer_survives_its_file_format(tmp_path):
    rng = random.Random(3)
    head = DenseLayer([[rng.randint(-128, 127) for _ in range(4)] for _ in range(2)],
                      [0, 1], [30000, 30000], [15, 15])
    model = QuantizedModel(
        "fusion", 5, 1, [FusionLayer(4, 3, 7000), head], [0.1, 0.1, 0.05],
        FloatModel("fusion", [FloatFusion(4, 3), FloatDense(np.ones((2, 4)), np.zeros(2))]))
    again = QuantizedModel.load(model.save(tmp_path / "m.json"))
    assert again.layers[0] == FusionLayer(4, 3, 7000)
    assert again.content_hash == model.content_hash
    x = np.array([1, -2, 3, -4], dtype=np.int8)
    assert list(again.forward_int(x)) == head.forward([1, -2, 3, -4])


def test_members_are_named_in_the_reserved_byte():
    assert fusion_field(0, 2) == 0x02 and fusion_field(7, 8) == 0x78
    assert fusion_member(fusion_field(5, 6)) == (5, 6)
    assert fusion_field(FLUSH_MEMBER, 0) == 0xF0
    for m, k in ((2, 2), (0, 1), (0, 9), (-1, 3)):
        with pytest.raises(WireFormatError, match="member"):
            fusion_field(m, k)
    raw = bytes(DCIA(flags=Flag.FUSE, request_id=77, reserved=fusion_field(1, 3), elems=[1]))
    assert raw[1] == 0x20 and raw[8:12] == (77).to_bytes(4, "big") and raw[15] == 0x13


def test_fuse_flags_leave_a_tensor_computable():
    assert not (Flag.FUSE | Flag.FUSED) & NO_COMPUTE
    assert int(NO_COMPUTE) == 0x1F


def test_a_fusion_layer_is_one_layers_entry():
    [e] = entries.layer_entries(FusionLayer(12, 3, 40_000), model_id=2, version=3, index=5,
                                more=True)
    assert e.table_id == entries.T_LAYERS
    assert dict(e.match) == {"model_id": 2, "model_version": 3, "layer": 5}
    assert e.action.name == "fusion_layer"
    assert e.action.args == {"n": 12, "members": 3, "timeout_us": 40_000, "more": 1}
