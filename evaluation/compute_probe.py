"""Time each layer of a model as the edge agent and the cloud server compute it: one input
at a time with the integer reference, in the process's own CPU share. Run inside a
testbed host (its namespace and CPU cgroup), it measures that node:

    python -m evaluation.compute_probe --model run/model.json --inputs run/inputs.npy --seconds 1

prints one JSON object: ``layer_s``, the mean wall-clock seconds of each layer over as
many inputs as fit in ``seconds / layers`` each (at least ``--min-runs``). Wall clock, so
that the time a CPU-limited host spends throttled counts, as it counts for a request.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from dcia.model import QuantizedModel


def layer_seconds(model: QuantizedModel, inputs: np.ndarray, seconds: float,
                  min_runs: int = 20) -> list[float]:
    """Mean wall-clock time of each layer over rows of ``inputs`` (int8, quantized), each
    layer timed for about ``seconds / layers`` and at least ``min_runs`` rows.

    >>> from controller.demo_model import load_demo
    >>> demo = load_demo()
    >>> xs = demo.quantized.quantize_input(demo.split.x_test[:10])
    >>> times = layer_seconds(demo.quantized, xs, 0.01, min_runs=5)
    >>> len(times) == len(demo.quantized.layers) and all(t > 0 for t in times)
    True
    """
    n = len(model.layers)
    activations = [np.asarray(inputs, dtype=np.int64)]
    for i in range(n - 1):
        activations.append(model.forward_int(activations[-1], i, i + 1))
    out = []
    for i in range(n):
        rows, runs = activations[i], 0
        budget = seconds / n
        started = time.perf_counter()
        while runs < min_runs or time.perf_counter() - started < budget:
            model.forward_int(rows[runs % len(rows)], i, i + 1)
            runs += 1
        out.append((time.perf_counter() - started) / runs)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evaluation.compute_probe",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="quantized model file")
    parser.add_argument("--inputs", type=Path, required=True, help=".npy of float inputs")
    parser.add_argument("--seconds", type=float, default=1.0, help="time to spend in all")
    parser.add_argument("--min-runs", type=int, default=20, help="inputs per layer at least")
    args = parser.parse_args(argv)
    model = QuantizedModel.load(args.model)
    inputs = model.quantize_input(np.load(args.inputs))
    times = layer_seconds(model, inputs, args.seconds, args.min_runs)
    print(json.dumps({"layer_s": times, "macs": [layer.macs for layer in model.layers]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
