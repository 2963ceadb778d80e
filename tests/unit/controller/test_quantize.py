"""Quantization: integer parameters, agreement with the integer reference, closeness to float."""

import logging

import numpy as np
import pytest

from dcia.model import FloatDense, FloatElementwise, FloatEmbedding, FloatModel
from controller.quantize import calibrate, layer_errors, prepare, quantize
from dcia import arithmetic
from dcia.errors import ParameterRangeError
from dcia.layers import DenseLayer, ElementwiseLayer, EmbeddingLayer

RNG = np.random.default_rng(11)


def mlp(widths=(8, 12, 12, 5), transform=True):
    """A random float MLP, optionally behind a per-feature transform."""
    layers = []
    if transform:
        layers.append(
            FloatElementwise(RNG.uniform(0.5, 2.0, widths[0]), RNG.normal(size=widths[0]))
        )
    for i, (n_in, n_out) in enumerate(zip(widths, widths[1:])):
        layers.append(
            FloatDense(
                RNG.normal(size=(n_out, n_in)) / np.sqrt(n_in),
                RNG.normal(size=n_out) * 0.1,
                relu=i < len(widths) - 2,
            )
        )
    return FloatModel("mlp", layers, "softmax")


def reference_forward(qm, x):
    """The model run one sample at a time with dcia.arithmetic's scalar functions."""
    out = []
    for row in x:
        v = [int(e) for e in row]
        for layer in qm.layers:
            if isinstance(layer, DenseLayer):
                v = arithmetic.dense(
                    v, layer.weights, layer.bias, layer.mult, layer.shift, layer.act
                )
            elif isinstance(layer, ElementwiseLayer):
                v = arithmetic.elementwise(
                    v, layer.scales, layer.offsets, layer.mult, layer.shift, layer.act
                )
            else:
                v = arithmetic.embedding(v, layer.table)
        out.append(v)
    return np.array(out, dtype=np.int8)


@pytest.fixture(scope="module")
def model_and_data():
    fm = mlp()
    calib = RNG.normal(size=(400, 8)) * 2
    return fm, calib, quantize(fm, calib)


class TestIntegerForward:
    def test_batched_forward_agrees_with_the_integer_reference_bit_for_bit(self, model_and_data):
        _, _, qm = model_and_data
        x = np.concatenate(
            [
                RNG.integers(-128, 128, size=(200, 8)),
                np.full((1, 8), 127),
                np.full((1, 8), -128),
                np.zeros((1, 8)),
                np.tile([127, -128], (1, 4)),
            ]
        ).astype(np.int8)
        expected = reference_forward(qm, x)
        np.testing.assert_array_equal(qm.forward_int(x), expected)

    def test_single_vector_runs_the_scalar_reference(self, model_and_data):
        _, _, qm = model_and_data
        x = RNG.integers(-128, 128, size=(20, 8)).astype(np.int8)
        for row, expected in zip(x, reference_forward(qm, x)):
            np.testing.assert_array_equal(qm.forward_int(row), expected)

    def test_stages_compose(self, model_and_data):
        _, calib, qm = model_and_data
        x = qm.quantize_input(calib[:50])
        whole = qm.forward_int(x)
        for a in range(len(qm.layers) + 1):
            np.testing.assert_array_equal(qm.forward_int(qm.forward_int(x, 0, a), a), whole)


class TestCloseToFloat:
    def test_dequantized_output_is_close_to_the_float_output(self, model_and_data):
        fm, calib, qm = model_and_data
        test = RNG.normal(size=(300, 8)) * 2
        y_float = fm.forward(test)
        y_int = qm.dequantize(qm.forward_int(qm.quantize_input(test)), len(qm.layers))
        assert np.abs(y_int - y_float).mean() < 0.05 * np.abs(y_float).mean()
        assert np.mean(qm.predict(test) == fm.predict(test)) >= 0.95

    def test_each_layer_alone_is_within_a_few_steps_of_float(self, model_and_data):
        _, calib, qm = model_and_data
        x = qm.quantize_input(calib)
        for i, layer in enumerate(qm.float_model.layers):
            y_float = layer.forward(qm.dequantize(x, i))
            y_int = qm.forward_int(x, i, i + 1)
            assert np.abs(qm.dequantize(y_int, i + 1) - y_float).max() < 3 * qm.scales[i + 1]
            x = y_int


class TestParameters:
    def test_weights_are_symmetric_per_output_channel(self, model_and_data):
        _, _, qm = model_and_data
        for layer in qm.layers:
            if isinstance(layer, DenseLayer):
                assert all(max(abs(w) for w in row) == 127 for row in layer.weights)

    def test_requantization_multiplier_matches_the_real_scale(self, model_and_data):
        fm, _, qm = model_and_data
        dense = qm.layers[1]
        w_scale = np.abs(qm.float_model.layers[1].weights).max(axis=1) / 127
        real = qm.scales[1] * w_scale / qm.scales[2]
        approx = np.array(dense.mult) / 2.0 ** np.array(dense.shift)
        np.testing.assert_allclose(approx, real, rtol=1e-4)

    def test_max_calibration_never_saturates_on_calibration_data(self, model_and_data):
        fm, calib, _ = model_and_data
        scales = calibrate(fm, calib, "max")
        assert np.abs(calib).max() / scales[0] == pytest.approx(127)
        tight = calibrate(fm, calib, "percentile", 99.0)
        assert all(t <= s for t, s in zip(tight, scales))

    def test_unknown_calibration_method(self, model_and_data):
        fm, calib, _ = model_and_data
        with pytest.raises(ParameterRangeError, match="not 'max' or 'percentile'"):
            quantize(fm, calib, method="median")

    def test_switched_off_neuron_keeps_its_bias_in_int32(self):
        weights = RNG.normal(size=(4, 3))
        weights[2] = 1e-12  # training drove this neuron's weights to nothing
        fm = FloatModel("m", [FloatDense(weights, np.array([0.1, 0.2, 5.0, 0.3]), relu=True)])
        qm = quantize(fm, RNG.normal(size=(50, 3)))
        assert abs(qm.layers[0].bias[2]) <= 1 << 30
        out = qm.dequantize(qm.forward_int(qm.quantize_input(np.zeros((1, 3)))), 1)
        assert out[0, 2] == pytest.approx(5.0, rel=0.02)


class TestQualityCheck:
    def test_well_behaved_layers_lose_a_few_percent(self, model_and_data):
        _, calib, qm = model_and_data
        assert max(layer_errors(qm, calib)) < 0.05

    def test_layer_with_too_wide_a_weight_range_is_reported(self, caplog):
        # Like StandardScaler on a feature that is almost always 0: its column of the
        # folded first layer dwarfs all others, whose weights then round to nothing.
        scale = np.ones(40)
        scale[0] = 500.0
        fm = FloatModel(
            "wide",
            [
                FloatElementwise(scale, np.zeros(40)),
                FloatDense(RNG.normal(size=(8, 40)), np.zeros(8)),
            ],
        )
        x = RNG.normal(size=(300, 40))
        x[:, 0] = 0.0
        with caplog.at_level(logging.WARNING, logger="controller.quantize"):
            qm = quantize(fm, x)
        assert layer_errors(qm, x)[0] > 0.5
        assert (
            "layer 0 (dense 40->8) is" in caplog.text
            and "too wide a range for 8 bits" in caplog.text
        )


class TestLayerKinds:
    def test_wide_transform_folds_into_the_dense_layer_after_it(self):
        fm = mlp(widths=(40, 16, 10))
        prepared = prepare(fm)
        assert [layer.kind for layer in prepared.layers] == ["dense", "dense"]
        x = RNG.normal(size=(10, 40))
        np.testing.assert_allclose(prepared.forward(x), fm.forward(x))

    def test_narrow_transform_stays_for_a_switch_to_run(self):
        fm = mlp(widths=(8, 12, 5))
        qm = quantize(fm, RNG.normal(size=(100, 8)))
        assert [layer.kind for layer in qm.layers] == ["elementwise", "dense", "dense"]
        assert all(arithmetic.INT16_MIN <= b <= arithmetic.INT16_MAX for b in qm.layers[0].offsets)

    def test_embedding_model(self):
        table = RNG.normal(size=(300, 6))
        fm = FloatModel(
            "emb", [FloatEmbedding(table), FloatDense(RNG.normal(size=(4, 6)), np.zeros(4))]
        )
        ids = np.arange(300)
        qm = quantize(fm, ids)
        assert isinstance(qm.layers[0], EmbeddingLayer) and qm.takes_ids
        x = qm.quantize_input(ids)
        assert [arithmetic.embedding_id(list(map(int, row))) for row in x] == list(range(300))
        vectors = qm.dequantize(qm.forward_int(x, 0, 1), 1)
        assert np.abs(vectors - table).max() <= qm.scales[1] / 2 + 1e-12
        assert np.mean(qm.predict(ids) == fm.predict(ids)) > 0.9

    def test_middle_layer_too_wide_for_a_switch_is_reported(self, caplog):
        fm = mlp(widths=(8, 20, 20, 4), transform=False)
        with caplog.at_level(logging.WARNING, logger="controller.quantize"):
            qm = quantize(fm, RNG.normal(size=(50, 8)))
        assert "layer 1 cannot run on a switch" in caplog.text
        assert set(qm.switch_problems()) == {0, 1, 2}


def test_input_of_the_wrong_shape_is_refused(model_and_data):
    _, _, qm = model_and_data
    with pytest.raises(ParameterRangeError, match=r"takes inputs of shape \(batch, 8\)"):
        qm.quantize_input(np.zeros((2, 9)))
