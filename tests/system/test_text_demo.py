"""The text demo in short (issue 14): the device tokenizes, acc1 pools the embeddings,
core2 runs the hidden layer, the AI service answers, on the embedded switch in Mininet.

Every request is answered, each answer equal to the integer reference of the tokens the
device made; each switch computed its layer for every request, and the cloud saw every
request arrive at the classifier only.
"""

from __future__ import annotations

import io
import os

import pytest
from rich.console import Console

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(os.geteuid() != 0, reason="the Mininet testbed needs root"),
]

pytest.importorskip("mininet.net", reason="Mininet is not importable (scripts/bootstrap.sh links it)")

from demos.text.run import Options, run  # noqa: E402

REQUESTS = 30


def test_every_request_is_pooled_in_the_network_and_answered_as_the_reference(tmp_path):
    out = io.StringIO()
    s = run(Options(requests=REQUESTS, run_dir=tmp_path / "text"), Console(file=out, width=140))
    assert s["answered"] == s["requests"] == REQUESTS
    assert s["tokens sent as the edge's"]
    assert s["answers identical to the integer reference"] == REQUESTS
    assert [st["layers"] for st in s["plan"] if st["layers"]] == [[0], [1], [2]]
    assert s["nodes"]["acc1"]["layers"] == {"0": REQUESTS}
    assert s["nodes"]["core2"]["layers"] == {"1": REQUESTS}
    assert s["cloud"]["arrivals"] == {"2": REQUESTS}
    assert s["accuracy"]["deployed (answers)"] == pytest.approx(
        s["accuracy"]["integer reference (int8)"])
    assert s["entries_installed"]["acc1"] > 16 * 255   # every token's vector at every position
    assert "DCIA text demo" in text_of(out) and "what each node computed" in text_of(out)


def text_of(out: io.StringIO) -> str:
    return out.getvalue()
