"""Calibration input hardening: samples of the wrong shape or type, or with NaN/inf, are refused."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from controller.quantize import calibrate, check_calibration, load_calibration, quantize
from dcia.errors import CalibrationError, DciaError
from dcia.model import FloatDense, FloatEmbedding, FloatModel

RNG = np.random.default_rng(11)
MODEL = FloatModel("m", [FloatDense(RNG.normal(size=(4, 8)), np.zeros(4), relu=True),
                         FloatDense(RNG.normal(size=(3, 4)), np.zeros(3))])
EMBEDDING = FloatModel("e", [FloatEmbedding(RNG.normal(size=(10, 4))),
                             FloatDense(RNG.normal(size=(3, 4)), np.zeros(3))])
GOOD = RNG.normal(size=(20, 8))


def refused(samples, *fragments, model=MODEL) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy RuntimeWarning on the way to the error
        with pytest.raises(CalibrationError) as e:
            quantize(model, samples)
    message = str(e.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_calibration_error_is_a_dcia_error():
    assert issubclass(CalibrationError, DciaError)


def test_all_nan_samples_are_refused():
    refused(np.full((20, 8), np.nan), "calibration samples are all NaN (160 values)")


@pytest.mark.parametrize(("value", "word"), [(np.nan, "NaN"), (np.inf, "inf"), (-np.inf, "inf")])
def test_one_non_finite_value_is_refused_and_located(value, word):
    samples = GOOD.copy()
    samples[3, 5] = value
    refused(samples, f"1 {word}", "sample 3, feature 5")


@pytest.mark.parametrize(
    ("samples", "fragments"),
    [
        (np.zeros((20, 9)), ("shape (20, 9)", "(n, 8)")),
        (np.zeros(8), ("shape (8,)", "(n, 8)")),
        (np.zeros((2, 4, 8)), ("shape (2, 4, 8)", "(n, 8)")),
        (np.zeros((0, 8)), ("no samples",)),
        (np.array([["a"] * 8] * 3), ("strings",)),
        (np.array([[object()] * 8] * 3), ("not numbers",)),
        (np.ones((3, 8), dtype=complex), ("not real numbers",)),
        (np.ones((3, 8), dtype=bool), ("not numbers",)),
        ([[1.0] * 8, [1.0] * 7], ("ragged",)),
    ],
)
def test_samples_that_do_not_fit_the_model(samples, fragments):
    refused(samples, *fragments)


def test_finite_samples_that_overflow_a_layer_are_refused():
    wide = FloatModel("w", [FloatDense(np.full((2, 8), 10.0), np.zeros(2))])
    refused(np.full((4, 8), 1e307), "layer 0", "overflow", model=wide)


def test_embedding_ids_must_be_whole_numbers_in_the_table():
    refused(np.array([1.5, 2.0]), "whole", model=EMBEDDING)
    refused(np.array([3, 10]), "0..9", model=EMBEDDING)
    refused(np.array([np.nan, 1.0]), "NaN", model=EMBEDDING)
    refused(np.zeros((3, 2)), "shape (3, 2)", model=EMBEDDING)
    assert check_calibration(EMBEDDING, np.arange(10).reshape(10, 1)).shape == (10, 1)


def test_good_samples_pass_and_calibrate_checks_too():
    assert check_calibration(MODEL, GOOD.tolist()).shape == (20, 8)
    with pytest.raises(CalibrationError):
        calibrate(MODEL, np.full((3, 8), np.nan))


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".csv"])
def test_load_calibration_reads_npy_npz_and_csv(tmp_path: Path, suffix: str):
    path = tmp_path / f"samples{suffix}"
    if suffix == ".npy":
        np.save(path, GOOD)
    elif suffix == ".npz":
        np.savez(path, x=GOOD)
    else:
        np.savetxt(path, GOOD, delimiter=",")
    np.testing.assert_allclose(load_calibration(path), GOOD)


def one_line_error(path) -> str:
    with pytest.raises(CalibrationError) as e:
        load_calibration(path)
    assert "\n" not in str(e.value), str(e.value)
    return str(e.value)


def test_load_calibration_errors_are_one_line(tmp_path: Path):
    assert "does not exist" in one_line_error(tmp_path / "none.npy")
    assert "is a directory" in one_line_error(tmp_path)
    (tmp_path / "bin.npy").write_bytes(b"\x93NUMPY garbage")
    assert "not a valid .npy" in one_line_error(tmp_path / "bin.npy")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert "pickled" in one_line_error(tmp_path / "obj.npy")
    np.savez(tmp_path / "two.npz", a=GOOD, b=GOOD)
    assert "2 arrays (a, b)" in one_line_error(tmp_path / "two.npz")
    np.savez(tmp_path / "none.npz")
    assert "no array" in one_line_error(tmp_path / "none.npz")
    (tmp_path / "s.csv").write_text("1,2\nx,y\n")
    assert "s.csv" in one_line_error(tmp_path / "s.csv")
    (tmp_path / "s.csv").write_bytes(b"\xff\xfe\x00")
    assert "s.csv" in one_line_error(tmp_path / "s.csv")
    (tmp_path / "s.txt").write_text("1,2\n")
    assert ".npy, .npz or .csv" in one_line_error(tmp_path / "s.txt")
