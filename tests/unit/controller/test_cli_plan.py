"""`dcia plan`: a plan from files alone, explained as a table, and one-line errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from controller.cli import main

ROOT = Path(__file__).resolve().parents[3]
LINEAR = str(ROOT / "topologies" / "linear.toml")
DIGITS_ONNX = ROOT / "models" / "digits.onnx"
DIGITS_LAYERS = """\
# the layer shapes of the digits MLP
[[layers]]
kind = "dense"
n_in = 64
n_out = 16

[[layers]]
kind = "dense"
n_in = 16
n_out = 16

[[layers]]
kind = "dense"
n_in = 16
n_out = 16

[[layers]]
kind = "dense"
n_in = 16
n_out = 10
"""


@pytest.fixture
def layers(tmp_path: Path) -> str:
    path = tmp_path / "digits.toml"
    path.write_text(DIGITS_LAYERS)
    return str(path)


def plan_json(capsys, *args: str) -> dict:
    assert main(["plan", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_table_explains_the_plan(capsys, layers: str) -> None:
    assert main(["plan", "--topology", LINEAR, "--model", layers]) == 0
    out = capsys.readouterr().out
    assert "digits (4 layers) on path main (h1 → s1 → s2 → s3 → h2), objective latency" in out
    for column in ("stage", "node", "layers", "sizes", "compute", "hop to next"):
        assert column in out
    assert "h1 (edge)" in out and "s1 (switch)" in out and "1–3" in out and "16→16→16→10" in out
    assert "5.320 ms" in out and "0.900 ms" in out
    assert "s1 → h1" in out and "answer" in out
    assert "Not visited: s2, s3, h2" in out
    assert "Predicted latency 6.431 ms" in out
    assert "Compared with: edge only 9.280 ms, edge + cloud 25.806 ms." in out


def test_json_output(capsys, layers: str) -> None:
    body = plan_json(capsys, "--topology", LINEAR, "--model", layers)
    assert body["model"] == "digits" and body["layers"] == 4
    assert body["assignment"] == ["h1", "s1", "s1", "s1"]
    assert body["latency_s"] == pytest.approx(6.431e-3, rel=1e-3)
    assert body["baselines"]["edge only"]["assignment"] == ["h1"] * 4


def test_forbid_and_objective_options(capsys, layers: str) -> None:
    assert plan_json(capsys, "--topology", LINEAR, "--model", layers, "--forbid", "s1")["assignment"] == \
        ["h1", "s2", "s2", "s2"]
    assert plan_json(capsys, "--topology", LINEAR, "--model", layers, "--forbid", "switch:2-3")["assignment"] == \
        ["h1", "h1", "h1", "h1"]
    assert plan_json(capsys, "--topology", LINEAR, "--model", layers, "--max-layers-per-switch", "1")["assignment"] \
        == ["h1", "s1", "s2", "s3"]
    body = plan_json(capsys, "--topology", LINEAR, "--model", layers, "--objective", "throughput")
    assert body["objective"] == "throughput"
    assert plan_json(capsys, "--topology", LINEAR, "--model", layers, "--edge-layers", "2")["assignment"][:2] == \
        ["h1", "h1"]


def test_second_path_of_a_topology(capsys, layers: str) -> None:
    body = plan_json(capsys, "--topology", str(ROOT / "topologies" / "redundant.toml"), "--path", "backup", "--model", layers)
    assert body["route"] == "backup" and body["assignment"] == ["h1", "s3", "s3", "s3"]


def test_onnx_model(capsys) -> None:
    body = plan_json(capsys, "--topology", LINEAR, "--model", str(DIGITS_ONNX))
    assert body["assignment"][0] == "h1"
    assert "s1" in body["assignment"]


def test_saved_quantized_model(capsys, tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    model = pytest.importorskip("dcia.model")
    from dcia.layers import DenseLayer

    floats = model.FloatModel("tiny", [model.FloatDense(np.ones((16, 64)), np.zeros(16)),
                                       model.FloatDense(np.ones((10, 16)), np.zeros(10))])
    ints = [DenseLayer([[1] * 64] * 16, [0] * 16, [1] * 16, [0] * 16),
            DenseLayer([[1] * 16] * 10, [0] * 10, [1] * 10, [0] * 10)]
    saved = model.QuantizedModel("tiny", 1, 1, ints, [1.0, 1.0, 1.0], floats).save(tmp_path / "tiny.json")
    body = plan_json(capsys, "--topology", LINEAR, "--model", str(saved))
    assert (body["model"], body["assignment"]) == ("tiny", ["h1", "s1"])
    saved.write_text(saved.read_text().replace('"tiny"', '"tony"'))
    assert main(["plan", "--topology", LINEAR, "--model", str(saved)]) == 2
    assert "does not match its content hash" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "models/x.onnx"], "error: model file models/x.onnx not found"),
        (["--model", "LAYERS", "--forbid", "s9"],
         "error: --forbid s9: s9 is neither a node of topology linear (h1, h2, s1, s2, s3) nor a kind (edge, switch, cloud)"),
        (["--model", "LAYERS", "--forbid", "s1:9"], "error: --forbid s1:9: the model has layers 0..3, not [9]"),
        (["--model", "LAYERS", "--forbid", "s1:a"], "error: --forbid s1:a: layers must look like 1-3 or 0,2"),
        (["--model", "LAYERS", "--forbid", "edge"],
         "error: layer 0 must run on edge h1 (the raw input never leaves the edge) but it is forbidden on edge h1 by policy"),
        (["--model", "LAYERS", "--path", "backup"], "error: topology linear has no path 'backup' (paths: main)"),
        (["--model", "LAYERS", "--edge-layers", "5"],
         "error: the first 5 layers must run on the edge but the model has only 4"),
        (["--model", "BAD"], "error: model file digits.txt: unknown format '.txt' (expected .onnx, .json or .toml)"),
    ],
)
def test_errors_are_one_line_with_status_2(capsys, layers: str, args: list[str], message: str) -> None:
    args = [layers if a == "LAYERS" else str(Path(layers).with_suffix(".txt")) if a == "BAD" else a for a in args]
    Path(layers).with_suffix(".txt").write_text("x")
    assert main(["plan", "--topology", LINEAR, *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.replace(str(Path(layers).parent) + "/", "")
    assert err.startswith(message)
    assert err.count("\n") == 1


def test_bad_topology_file(capsys, tmp_path: Path, layers: str) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text((Path(LINEAR)).read_text().replace('"s3:2", "h2"', '"s3:2", "h9"'))
    assert main(["plan", "--topology", str(bad), "--model", layers]) == 2
    assert capsys.readouterr().err == "error: bad.toml: link s3-h9: unknown node h9\n"


def test_console_script_in_a_subprocess(layers: str) -> None:
    script = shutil.which("dcia", path=str(Path(sys.executable).parent))
    command = [script] if script else [sys.executable, "-m", "controller.cli"]
    ok = subprocess.run([*command, "plan", "--topology", LINEAR, "--model", layers],
                        capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert ok.returncode == 0, ok.stderr
    assert "Predicted latency 6.431 ms" in ok.stdout
    missing = subprocess.run([*command, "plan", "--topology", LINEAR, "--model", "models/x.onnx"],
                             capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert (missing.returncode, missing.stderr) == (2, "error: model file models/x.onnx not found\n")
    assert "Traceback" not in missing.stderr
