"""The integer reference: saturation, signs, rounding ties, extremes."""

import random

import numpy as np
import pytest

from dcia import arithmetic as ar
from dcia.arithmetic import Activation
from dcia.errors import ParameterRangeError

ID, RELU = Activation.IDENTITY, Activation.RELU


class TestRequantize:
    def test_saturates_at_both_ends(self):
        assert ar.requantize(10_000, 1, 0, ID) == 127
        assert ar.requantize(-10_000, 1, 0, ID) == -128
        assert ar.requantize(127, 1, 0, ID) == 127
        assert ar.requantize(-128, 1, 0, ID) == -128
        assert ar.requantize(128, 1, 0, ID) == 127
        assert ar.requantize(-129, 1, 0, ID) == -128

    def test_negative_values_keep_their_sign(self):
        assert ar.requantize(-40, 1, 2, ID) == -10
        assert ar.requantize(-41, 1, 2, ID) == -10  # -10.25
        assert ar.requantize(-43, 1, 2, ID) == -11  # -10.75

    def test_ties_round_toward_plus_infinity(self):
        assert ar.requantize(5, 1, 1, ID) == 3  # 2.5
        assert ar.requantize(-5, 1, 1, ID) == -2  # -2.5
        assert ar.requantize(3, 1, 1, ID) == 2  # 1.5
        assert ar.requantize(-3, 1, 1, ID) == -1  # -1.5
        assert ar.requantize(-1, 1, 1, ID) == 0  # -0.5

    def test_shift_zero_does_not_round(self):
        assert ar.requantize(7, 3, 0, ID) == 21

    def test_relu_clamps_negatives_before_saturation(self):
        assert ar.requantize(-1000, 1, 0, RELU) == 0
        assert ar.requantize(1000, 1, 0, RELU) == 127
        assert ar.requantize(-1, 1, 1, RELU) == 0

    def test_accumulator_wraps_as_int32(self):
        assert ar.requantize(2**31, 1, 0, ID) == -128  # wraps to -2^31
        assert ar.requantize(2**32 + 5, 1, 0, ID) == 5

    def test_extreme_multiplier_and_shift(self):
        # (2^31 - 1) * 65535 / 2^47 = 0.99998 -> 1;  -2^31 * 65535 / 2^47 = -0.99998 -> -1
        assert ar.requantize(2**31 - 1, ar.MULT_MAX, ar.SHIFT_MAX, ID) == 1
        assert ar.requantize(-(2**31), ar.MULT_MAX, ar.SHIFT_MAX, ID) == -1
        assert ar.requantize(2**31 - 1, ar.MULT_MAX, 16, ID) == 127
        assert ar.requantize(-(2**31), ar.MULT_MAX, 16, ID) == -128
        assert ar.requantize(2**31 - 1, 0, 0, ID) == 0

    @pytest.mark.parametrize("mult,shift", [(-1, 0), (ar.MULT_MAX + 1, 0), (1, -1), (1, 48)])
    def test_out_of_range_parameters_are_refused(self, mult, shift):
        with pytest.raises(ParameterRangeError):
            ar.requantize(1, mult, shift, ID)


class TestDense:
    def test_small_example(self):
        y = ar.dense([1, -2], [[3, 4], [-1, 0]], bias=[5, 0], mult=[1, 1], shift=[0, 0], act=ID)
        assert y == [3 - 8 + 5, -1]

    def test_all_zero_weights_give_the_requantized_bias(self):
        y = ar.dense([127] * 16, [[0] * 16] * 16, [100] * 16, [1] * 16, [1] * 16, ID)
        assert y == [50] * 16

    def test_extreme_weights_and_inputs(self):
        # 16 * (-128 * -128) = 262144 fits easily; saturates to 127
        assert ar.dense([-128] * 16, [[-128] * 16], [0], [1], [0], ID) == [127]
        assert ar.dense([127] * 16, [[-128] * 16], [0], [1], [0], ID) == [-128]
        # scaled down exactly: 16 * 16384 / 2^12 = 64
        assert ar.dense([-128] * 16, [[-128] * 16], [0], [1], [12], ID) == [64]

    def test_shape_errors(self):
        with pytest.raises(ParameterRangeError, match="weight row 0 has 3 inputs"):
            ar.dense([1, 2], [[1, 2, 3]], [0], [1], [0], ID)
        with pytest.raises(ParameterRangeError, match="2 weight rows but 1 biases"):
            ar.dense([1], [[1], [2]], [0], [1, 1], [0, 0], ID)
        with pytest.raises(ParameterRangeError, match="not an int8"):
            ar.dense([200], [[1]], [0], [1], [0], ID)

    def test_batch_agrees_with_reference(self):
        rng = random.Random(7)
        n_in, n_out = 16, 12
        for trial in range(20):
            w = [[rng.randint(-128, 127) for _ in range(n_in)] for _ in range(n_out)]
            b = [rng.randint(-(2**31), 2**31 - 1) if trial % 5 == 0 else rng.randint(-5000, 5000)
                 for _ in range(n_out)]
            m = [rng.randint(0, ar.MULT_MAX) for _ in range(n_out)]
            s = [rng.randint(0, ar.SHIFT_MAX) for _ in range(n_out)]
            act = rng.choice([ID, RELU])
            xs = [[rng.randint(-128, 127) for _ in range(n_in)] for _ in range(16)]
            xs += [[-128] * n_in, [127] * n_in, [0] * n_in]
            got = ar.dense_batch(np.array(xs), np.array(w), np.array(b), np.array(m), np.array(s), act)
            want = [ar.dense(x, w, b, m, s, act) for x in xs]
            assert got.tolist() == want


class TestElementwise:
    def test_scale_and_offset(self):
        assert ar.elementwise([10, -10], [2, 3], [1, -1], 1, 1, ID) == [11, -15]  # 21/2, -31/2

    def test_relu_and_saturation(self):
        assert ar.elementwise([127, -128], [127, 127], [0, 0], 1, 0, RELU) == [127, 0]

    def test_offsets_must_be_int16(self):
        with pytest.raises(ParameterRangeError, match="int16"):
            ar.elementwise([1], [1], [40000], 1, 0, ID)


class TestEmbedding:
    def test_id_is_big_endian_unsigned(self):
        assert ar.embedding_id([1, 2]) == 258
        assert ar.embedding_id([-1, -1]) == 0xFFFF
        for ident in (0, 1, 255, 256, 0x7FFF, 0x8000, 0xFFFF):
            assert ar.embedding_id(ar.id_elements(ident)) == ident

    def test_lookup(self):
        assert ar.embedding([0, 3], {3: [1, -1]}) == [1, -1]
        with pytest.raises(KeyError):
            ar.embedding([0, 4], {3: [1, -1]})


class TestFromReals:
    @pytest.mark.parametrize("real", [1e-9, 0.001, 0.37, 0.5, 1.0, 3.3, 1000.0, 65535.0])
    def test_multiplier_is_close(self, real):
        mult, shift = ar.quantize_multiplier(real)
        assert 0 <= mult <= ar.MULT_MAX and 0 <= shift <= ar.SHIFT_MAX
        if real * 2**ar.SHIFT_MAX >= 2**15:  # representable with full precision
            assert abs(mult / 2**shift - real) / real < 2**-15

    def test_multiplier_refuses_bad_scales(self):
        for bad in (-1.0, float("nan"), float("inf"), 70000.0):
            with pytest.raises(ParameterRangeError):
                ar.quantize_multiplier(bad)

    def test_symmetric_per_channel(self):
        w = np.array([[0.5, -1.0], [0.0, 0.0], [2.0, 1.0]])
        q, scale = ar.quantize_symmetric(w, axis=0)
        assert q.tolist() == [[64, -127], [0, 0], [127, 64]]
        assert scale.tolist() == pytest.approx([1 / 127, 1.0, 2 / 127])
