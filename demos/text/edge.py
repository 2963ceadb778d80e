"""The device's pre-processing: texts -> token ids, run in the edge host.

    python -m demos.text.edge --model models/fortune_topics.onnx --texts T.json --out ids.npy

Reads a JSON list of texts, tokenizes each with the tokenizer the model file carries
(demos.text.model.Tokenizer: its vocabulary is in the file's metadata), writes the ids as
a .npy array of shape (texts, 16) for hosts.edge_agent's ``--inputs``, and prints
``{"texts": n, "us_per_text": t}`` on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from demos.text.model import read_tokenizer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demos.text.edge", description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="the ONNX file (its vocabulary)")
    parser.add_argument("--texts", type=Path, required=True, help="JSON list of texts")
    parser.add_argument("--out", type=Path, required=True, help=".npy of token ids")
    args = parser.parse_args(argv)
    tokenizer = read_tokenizer(args.model)
    texts = json.loads(args.texts.read_text())
    started = time.perf_counter()
    ids = tokenizer.encode_all(texts)
    elapsed = time.perf_counter() - started
    np.save(args.out, ids)
    json.dump({"texts": len(texts), "us_per_text": 1e6 * elapsed / max(1, len(texts))}, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
