"""The embedding-bag of the integer reference (dcia.arithmetic.embedding_bag, the
EmbeddingBagLayer record): padding, duplicates, unknown ids, mean rounding, saturation,
and the P4 program's division-free mean against the exact one."""

import random

import numpy as np
import pytest

from dcia.arithmetic import (
    BagMode,
    bag_mean_p4,
    embedding_bag,
    round_half_up_div,
    token_elements,
    token_id,
)
from dcia.errors import ParameterRangeError
from dcia.layers import EmbeddingBagLayer
from dcia.model import FloatEmbeddingBag, _layer_from_dict, _layer_to_dict

TABLE = {1: [10, -3, 127], 2: [5, 4, 127], 255: [-128, -128, -1]}


def test_p4_mean_is_the_exact_rounded_mean_for_every_sum_of_up_to_16_int8s():
    for count in range(1, 17):
        for total in range(-128 * count, 127 * count + 1):
            assert bag_mean_p4(total, count) == round_half_up_div(total, count), (total, count)


def test_round_half_up_ties_go_toward_plus_infinity():
    assert [round_half_up_div(t, 2) for t in (-3, -1, 1, 3)] == [-1, 0, 1, 2]
    assert round_half_up_div(-128 * 3, 3) == -128


def test_padding_is_neither_looked_up_nor_counted():
    x = token_elements([1, 0, 2, 0])
    assert embedding_bag(x, TABLE, 3, BagMode.MEAN) == embedding_bag(
        token_elements([1, 2]), TABLE, 3, BagMode.MEAN) == [8, 1, 127]
    assert embedding_bag(token_elements([0, 0, 0]), TABLE, 3, BagMode.MEAN) == [0, 0, 0]
    assert embedding_bag(token_elements([0, 0]), TABLE, 3, BagMode.SUM) == [0, 0, 0]


def test_duplicates_count_once_per_occurrence():
    assert embedding_bag(token_elements([1, 1, 2]), TABLE, 3, BagMode.MEAN) == [8, -1, 127]
    assert embedding_bag(token_elements([1, 1, 2]), TABLE, 3, BagMode.SUM) == [25, -2, 127]


def test_sum_saturates_and_token_255_is_the_element_minus_one():
    assert token_id(-1) == 255 and token_elements([255]) == [-1]
    assert embedding_bag([-1, -1], TABLE, 3, BagMode.SUM) == [-128, -128, -2]
    assert embedding_bag(token_elements([2, 2]), TABLE, 3, BagMode.SUM) == [10, 8, 127]


def test_an_unknown_id_raises_key_error():
    with pytest.raises(KeyError):
        embedding_bag(token_elements([1, 7]), TABLE, 3, BagMode.MEAN)


def test_the_record_checks_ids_widths_and_round_trips():
    layer = EmbeddingBagLayer(TABLE, 3, 4, BagMode.SUM)
    assert (layer.n_in, layer.n_out, layer.macs) == (4, 3, 12)
    assert _layer_from_dict(_layer_to_dict(layer)) == layer
    with pytest.raises(ParameterRangeError, match="padding"):
        EmbeddingBagLayer({0: [1, 2, 3]}, 3, 4)
    with pytest.raises(ParameterRangeError, match="expected 3"):
        EmbeddingBagLayer({1: [1, 2]}, 3, 4)
    with pytest.raises(ParameterRangeError, match="got 3 elements"):
        layer.forward([1, 2, 0])


def test_batch_equals_one_by_one():
    rng = random.Random(3)
    layer = EmbeddingBagLayer({i: [rng.randint(-128, 127) for _ in range(5)] for i in range(1, 256)},
                              5, 16, BagMode.MEAN)
    x = np.array([token_elements([rng.choice([0, rng.randint(1, 255)]) for _ in range(16)])
                  for _ in range(50)], dtype=np.int8)
    assert layer.forward_batch(x).tolist() == [layer.forward(list(map(int, r))) for r in x]


def test_the_float_bag_means_over_the_tokens_present():
    table = np.array([[0.0, 0.0], [1.0, 3.0], [2.0, -1.0]])
    bag = FloatEmbeddingBag(table, 4)
    assert np.allclose(bag.forward(np.array([[1, 2, 0, 2]])), [[5 / 3, 1 / 3]])
    assert FloatEmbeddingBag(table, 4, BagMode.SUM).forward(np.array([[1, 2, 0, 2]])).tolist() == [[5.0, 1.0]]
    with pytest.raises(ParameterRangeError, match="rows"):
        FloatEmbeddingBag(np.zeros((257, 2)), 4)
