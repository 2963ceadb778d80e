"""The text demo: the device tokenizes, the switches pool embeddings, the cloud answers.

    python -m demos.text [--target embedded|bmv2] [--requests 185] [--rate 20]

On ``topologies/text.toml`` (phone1 — acc1 — core2 — ai1) in the Mininet testbed: the
model of demos.text.model is imported from models/fortune_topics.onnx, quantized and
planned with the embedding-bag and the hidden layer in the network (one layer per switch
by default: acc1 pools the embeddings, core2 runs the dense layer) and the classifier on
the AI service only, and deployed as any model (Testbed.deploy). Each request is one
held-out fortune text: the device turns it into at most 16 token ids
(``python -m demos.text.edge`` in the device's host, the tokenizer the model file
carries) and its edge agent sends the ids; acc1 looks up each token's vector in its
tables and sends on their mean, core2 the hidden layer, and the AI service computes the
scores of the five categories and answers.

The summary: requests and answers, tokens per request, latency percentiles, accuracy
(float, integer reference, deployed), answers identical to the integer reference, and
what each node computed; ``results.json`` in the run directory holds it all.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from controller.deployment import desired_entries
from controller.planner import Constraints, Forbid, Plan, plan
from controller.topology import load_topology
from dcia.arithmetic import BAG_PAD
from dcia.capability import NodeKind
from demos.common import (add_testbed_arguments, counter_diff, demo_testbed, ms_text,
                          percent_text, percentiles, read_switches, save_results, stages_text,
                          testbed_options)
from demos.text.model import CATEGORIES, MODEL_PATH, TextModel, load_text, words
from hosts.edge_agent import RequestResult
from mininet_topos.run import link_delay_text
from mininet_topos.testbed import Testbed

log = logging.getLogger(__name__)

TOPOLOGY = Path(__file__).resolve().parents[2] / "topologies" / "text.toml"


@dataclass(frozen=True)
class Options:
    """What ``python -m demos.text`` takes (its ``--help`` says each)."""

    target: str = "embedded"
    requests: int = 185
    rate: float = 20.0
    layers_per_switch: int = 1
    topology: Path = TOPOLOGY
    run_dir: Path = Path("logs/text")
    link_delay: str = "auto"
    tls: bool = True


def text_plan(model: TextModel, topology, layers_per_switch: int) -> Plan:
    """The embedding-bag and the hidden layers on the switches, the classifier on the cloud
    only, nothing of the model on the device (it tokenizes)."""
    n = len(model.quantized.layers)
    network, last = frozenset(range(n - 1)), frozenset({n - 1})
    forbid = (Forbid(NodeKind.EDGE, network | last), Forbid(NodeKind.SWITCH, last),
              Forbid(NodeKind.CLOUD, network))
    path = next(iter(topology.paths))
    return plan(model.quantized.layers, topology.route(path),
                Constraints(min_edge_layers=0, forbid=forbid,
                            max_layers_per_switch=layers_per_switch))


def tokenize_on_edge(bed: Testbed, host: str, texts: list[str]) -> tuple[np.ndarray, dict]:
    """Run the tokenizer in the device's host: the texts in, the token ids out."""
    texts_file = bed.run_dir / "texts.json"
    tokens_file = bed.run_dir / "tokens.npy"
    texts_file.write_text(json.dumps(texts))
    proc = bed.popen(host, [sys.executable, "-m", "demos.text.edge", "--model", str(MODEL_PATH),
                            "--texts", str(texts_file), "--out", str(tokens_file)],
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"the tokenizer in {host} failed: {err.decode()[-800:]}")
    return np.load(tokens_file), json.loads(out)


def run(opts: Options, console: Console) -> dict:
    """Run the demo; returns the summary (also written to ``results.json``)."""
    topology = load_topology(opts.topology)
    tm = load_text()
    qm = tm.quantized
    the_plan = text_plan(tm, topology, opts.layers_per_switch)
    run_dir = opts.run_dir.resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    model_file = qm.save(run_dir / "model.json")
    texts = tm.split.test_texts[: opts.requests]
    labels = tm.split.y_test[: opts.requests]
    path = next(iter(topology.paths))
    console.print(f"[bold]text demo[/bold]: {len(texts)} texts at {opts.rate:g}/s; plan "
                  f"{stages_text(the_plan)}")
    with demo_testbed(topology, opts, run_dir) as bed:
        started = time.perf_counter()
        deployment = bed.deploy(qm, the_plan)
        deploy_s = time.perf_counter() - started
        cloud = bed.start_cloud(model_file, path=path)
        edge = bed.edge_host(path)
        tokens, tokenizer_stats = tokenize_on_edge(bed, edge, texts)
        inputs_file = run_dir / "inputs.npy"
        np.save(inputs_file, tokens)
        before = read_switches(bed)
        results = bed.run_edge(model_file, inputs_file, edge_layers=0, path=path,
                               rate=opts.rate, timeout=0.5)
        time.sleep(0.2)
        after = read_switches(bed)
        cloud_stats = cloud.stop()
        link_delay = bed.link_delay_report()
        installed = {a.endpoint.name: len(desired_entries(qm.model_id, qm.version, a))
                     for a in deployment.switches}
    s = summary(tm, the_plan, texts, tokens, labels, results, before, after, cloud_stats)
    s.update(target=opts.target, topology=str(opts.topology), rate=opts.rate,
             deploy_s=deploy_s, entries_installed=installed, tokenizer=tokenizer_stats,
             link_delay=link_delay)
    save_results(run_dir, s)
    print_summary(console, s)
    return s


def summary(tm: TextModel, the_plan: Plan, texts: list[str], tokens: np.ndarray,
            labels: np.ndarray, results: list[RequestResult], before: dict, after: dict,
            cloud_stats: dict) -> dict:
    qm, fm = tm.quantized, tm.float_model
    want_tokens = tm.tokenizer.encode_all(texts)
    reference = qm.forward_int(qm.quantize_input(want_tokens))
    ok = [r for r in results if r.ok]
    identical = sum(r.logits == reference[r.index].tolist() for r in ok)
    counts = (tokens != BAG_PAD).sum(axis=1)
    n_words = np.array([len(words(t)) for t in texts])
    nodes = {}
    for name in after:
        a, b = after[name], before[name]
        nodes[name] = {"error": a.error} if a.error or b.error else {
            "layers": {str(k): v for k, v in counter_diff(a.layers_computed, b.layers_computed).items()},
            "stats": counter_diff(a.stats, b.stats)}
    return {
        "requests": len(texts), "answered": len(ok),
        "tokens sent as the edge's": bool(np.array_equal(tokens, want_tokens)),
        "answers identical to the integer reference": identical,
        "tokens per request": {"mean": float(counts.mean()), "min": int(counts.min()),
                               "max": int(counts.max()),
                               "words per text (mean)": float(n_words.mean()),
                               "texts with no known word": int((counts == 0).sum()),
                               "texts cut at 16 tokens": int(sum(
                                   len([w for w in words(t) if w in tm.tokenizer.ids]) > 16
                                   for t in texts))},
        "accuracy": {
            "float model": float(np.mean(fm.predict(want_tokens) == labels)),
            "integer reference (int8)": float(np.mean(reference.argmax(axis=1) == labels)),
            "deployed (answers)": float(np.mean([r.predicted == labels[r.index] for r in ok]))
            if ok else None},
        "latency_ms": percentiles([r.latency_s for r in ok]),
        "retried": sum(r.attempts > 1 for r in results),
        "plan": [{"node": st.node, "layers": list(st.layers)} for st in the_plan.stages],
        "layers": [f"{layer.kind} {layer.n_in}->{layer.n_out}" for layer in qm.layers],
        "nodes": nodes,
        "cloud": {k: cloud_stats.get(k) for k in ("requests", "answered", "layers_computed",
                                                  "arrivals")},
        "categories": list(CATEGORIES),
    }


def print_summary(console: Console, s: dict) -> None:
    head = Table(title=f"DCIA text demo: {s['requests']} requests, {s['target']} switches",
                 show_header=False)
    head.add_row("requests / answered", f"{s['requests']} / {s['answered']}")
    head.add_row("answers identical to the integer reference",
                 f"{s['answers identical to the integer reference']} / {s['answered']}")
    t = s["tokens per request"]
    head.add_row("tokens per request (mean, min..max; padding to 16 not counted)",
                 f"{t['mean']:.2f}, {t['min']}..{t['max']}")
    head.add_row("words per text (mean); texts without a known word; cut at 16 tokens",
                 f"{t['words per text (mean)']:.1f}; {t['texts with no known word']}; "
                 f"{t['texts cut at 16 tokens']}")
    for name, value in s["accuracy"].items():
        head.add_row(f"accuracy, {name}", percent_text(value))
    head.add_row("latency p50 / p90 / p99", ms_text(s["latency_ms"]))
    head.add_row("requests retried", str(s["retried"]))
    head.add_row("link delay and loss", link_delay_text(s["link_delay"]))
    tok = s["tokenizer"]
    head.add_row("tokenizer on the device", f"{tok['texts']} texts, "
                 f"{tok['us_per_text']:.1f} µs per text")
    head.add_row("deployment (P4Runtime writes, read back)",
                 f"{s['deploy_s']:.2f} s; entries "
                 + (", ".join(f"{k} {v}" for k, v in s["entries_installed"].items()) or "-"))
    console.print(head)

    nodes = Table(title="what each node computed (plan and counters)")
    for col in ("node", "planned layers", "counted"):
        nodes.add_column(col)
    planned = {st["node"]: st["layers"] for st in s["plan"]}
    names = {i: text for i, text in enumerate(s["layers"])}
    edge = s["plan"][0]["node"]
    nodes.add_row(edge, "- (tokenizer: text -> 16 token ids)", f"{s['requests']} requests sent")
    for name, c in s["nodes"].items():
        layers = planned.get(name, [])
        text = ("[red]" + c["error"] + "[/red]" if "error" in c else
                "; ".join(filter(None, [
                    ", ".join(f"layer {k}: {v}" for k, v in c["layers"].items()),
                    f"pass-through {c['stats'].get('pass-through', 0)}"])))
        nodes.add_row(name, ", ".join(f"{i} ({names[i]})" for i in layers) or "-", text)
    cloud = s["cloud"]
    cloud_node = s["plan"][-1]["node"]
    arrivals = ", ".join(f"{v} at layer {k}" for k, v in (cloud["arrivals"] or {}).items())
    nodes.add_row(cloud_node, ", ".join(f"{i} ({names[i]})" for i in planned[cloud_node]),
                  f"{cloud['answered']} answered; packets {arrivals}; "
                  f"{cloud['layers_computed']} layers computed")
    console.print(nodes)


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m demos.text",
        description="Interactive AI with in-network embeddings (issue 14): the device "
                    "tokenizes a text, the P4 switches look up and pool its embeddings and run "
                    "the next layer, the AI service answers with the text's category.")
    parser.add_argument("--requests", type=int, default=Options.requests,
                        help="requests (held-out fortune texts, at most 185)")
    parser.add_argument("--rate", type=float, default=Options.rate, help="requests per second")
    parser.add_argument("--layers-per-switch", type=int, default=Options.layers_per_switch,
                        help="most layers one switch computes (1: acc1 pools, core2 the "
                             "hidden layer; 2: one switch both, the planner's choice)")
    add_testbed_arguments(parser, Options.topology, Options.run_dir)
    a = parser.parse_args(argv)
    if not 1 <= a.requests <= 185:
        parser.error("--requests must be in 1..185 (the held-out texts)")
    if a.layers_per_switch < 1:
        parser.error("--layers-per-switch must be 1 or more")
    return Options(requests=a.requests, rate=a.rate, layers_per_switch=a.layers_per_switch,
                   **testbed_options(a))


def main(argv: list[str] | None = None) -> int:
    s = run(parse_args(argv), Console())
    return 0 if s["answered"] == s["requests"] else 1
