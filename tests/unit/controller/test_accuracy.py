"""The accuracy report: the split model stays within 1 percentage point of the float model."""

import numpy as np
import pytest
from rich.console import Console

from controller import cli
from controller.accuracy import default_split, digits_report, render, split_predict
from controller.demo_model import MODEL_PATH, digits_split
from controller.onnx_import import import_onnx
from controller.quantize import quantize
from dcia.errors import DciaError


@pytest.fixture(scope="module")
def report():
    return digits_report()


@pytest.fixture(scope="module")
def quantized():
    return quantize(import_onnx(MODEL_PATH), digits_split().x_train)


def test_split_model_is_within_one_point_of_the_float_model(report):
    assert report.samples == 360
    assert report.split_gap_pp <= 1.0
    assert report.float.accuracy - report.split_float_cloud.accuracy <= 0.01
    assert report.split.agreement >= 0.98


def test_staging_never_changes_what_the_int8_model_computes(report, quantized):
    assert report.split.accuracy == report.quantized.accuracy
    x = digits_split().x_test
    for a, b in ((1, 1), (1, 3), (2, 4), (4, 4)):
        np.testing.assert_array_equal(split_predict(quantized, x, a, b), quantized.predict(x))


def test_default_split_edge_runs_the_wide_layer_cloud_the_last(report, quantized):
    assert default_split(quantized) == (1, 3)
    assert (report.edge_stop, report.cloud_start, report.layers) == (1, 3, 4)
    assert report.split_description == "edge [0,1) · switches [1,3) · cloud [3,4)"
    assert report.split_float_cloud.arithmetic == "int8 [0,3), float [3,4)"


def test_without_a_cloud_stage_there_is_no_float_cloud_variant():
    report = digits_report(edge_stop=1, cloud_start=4)
    assert report.split_float_cloud is None and len(report.variants) == 3


def test_split_must_be_ordered(quantized):
    with pytest.raises(DciaError, match="not a valid split of 4 layers"):
        split_predict(quantized, digits_split().x_test, 3, 2)


def test_table_shows_every_variant(report):
    console = Console(width=120, record=True)
    console.print(render(report))
    text = console.export_text()
    for row in report.variants:
        assert row.name in text and f"{row.accuracy:.2%}" in text
    assert "max-abs over 1437 samples" in text


def test_command_line(capsys):
    assert cli.main(["accuracy", "--calibration", "percentile", "--edge", "2"]) == 0
    out = capsys.readouterr().out
    assert "edge [0,2)" in out and "99.99th percentile" in out


def test_command_line_with_a_missing_model(capsys, tmp_path):
    assert cli.main(["accuracy", "--model", str(tmp_path / "none.onnx")]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "does not exist; pass the path of an .onnx file" in err and len(err.splitlines()) == 1
