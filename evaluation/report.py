"""The evaluation's report: per strategy the latency percentiles, answered requests per
second, accuracy, bytes on the uplink and the prediction error; per scenario the speedup
of DCIA over the best single tier and over the best edge–cloud split; rich tables, JSON
and PNG plots.

DCIA's figure in a scenario is the DCIA variant (the network answering, or the cloud
finishing) whose plan the planner predicts faster: the one it would deploy. Speedups are
ratios of measured p50 latencies (> 1: DCIA is faster).

    >>> run = StrategyRun("edge-only", {}, 2.0, 9.0, [1.0, 2.0, 3.0, 4.0], 4, 4, 4, 3, 0.5, 0, 0)
    >>> stats = run.stats()
    >>> stats["p50_ms"], stats["requests_per_s"], stats["accuracy"], round(stats["error_pct"], 1)
    (2.5, 8.0, 0.75, -20.0)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from evaluation.strategies import Strategy


@dataclass
class StrategyRun:
    """What one strategy did in one scenario."""

    strategy: str
    plan: dict
    predicted_ms: float
    """Plan.latency_s with the scenario's calibration."""
    nominal_ms: float
    """The same assignment's prediction from the topology file's nominal numbers."""
    latencies_ms: list[float]
    """Of the answered requests."""
    requests: int
    answered: int
    exact: int
    """Answers identical to the integer reference."""
    correct: int
    """Answers whose class is the label."""
    duration_s: float
    """First send to last answer."""
    uplink_bytes: int
    """Bytes the edge host sent on its interface while the strategy ran."""
    cloud_bytes: int
    """Bytes the last switch sent to the cloud host while the strategy ran."""

    def stats(self) -> dict:
        lat = np.asarray(self.latencies_ms, dtype=float)
        q = {f"p{p}_ms": float(np.percentile(lat, p)) if len(lat) else None for p in (50, 95, 99)}
        mean = float(lat.mean()) if len(lat) else None
        return {
            **q, "mean_ms": mean,
            "requests_per_s": self.answered / self.duration_s if self.duration_s > 0 else None,
            "accuracy": self.correct / self.requests if self.requests else None,
            "uplink_bytes_per_request": self.uplink_bytes / self.requests if self.requests else None,
            "cloud_bytes_per_request": self.cloud_bytes / self.requests if self.requests else None,
            "error_pct": error_pct(self.predicted_ms, q["p50_ms"]),
            "error_mean_pct": error_pct(self.predicted_ms, mean),
        }


def error_pct(predicted: float, measured: float | None) -> float | None:
    """The prediction's error relative to the measurement, in percent (+: predicted slower).

    >>> error_pct(12.0, 10.0)
    20.0
    """
    if measured is None or measured <= 0:
        return None
    return (predicted - measured) / measured * 100


def speedup(baseline_ms: float | None, ms: float | None) -> float | None:
    """How many times faster ``ms`` is than ``baseline_ms``.

    >>> speedup(30.0, 10.0)
    3.0
    """
    if baseline_ms is None or ms is None or ms <= 0:
        return None
    return baseline_ms / ms


@dataclass
class ScenarioResult:
    name: str
    description: str
    runs: list[StrategyRun]
    planner_choice: str
    """The strategy the unrestricted planner picks (evaluation.strategies.strategy_of)."""
    calibration: dict = field(default_factory=dict)
    link_delay: dict = field(default_factory=dict)

    def run(self, strategy: Strategy) -> StrategyRun | None:
        return next((r for r in self.runs if r.strategy == strategy), None)

    def summary(self) -> dict:
        """The speedups: DCIA (the variant the planner predicts faster) over the best single
        tier and over the best edge–cloud split, by measured p50."""
        p50 = {r.strategy: r.stats()["p50_ms"] for r in self.runs}
        singles = {s: p50[s] for s in (Strategy.EDGE_ONLY, Strategy.CLOUD_ONLY)
                   if p50.get(s) is not None}
        variants = [r for r in self.runs if Strategy(r.strategy).dcia]
        dcia = min(variants, key=lambda r: r.predicted_ms) if variants else None
        best_single = min(singles, key=singles.get) if singles else None
        dcia_ms = p50.get(dcia.strategy) if dcia else None
        return {
            "dcia": dcia.strategy if dcia else None, "dcia_p50_ms": dcia_ms,
            "best_single_tier": best_single,
            "best_single_tier_p50_ms": singles.get(best_single),
            "speedup_over_best_single_tier": speedup(singles.get(best_single), dcia_ms),
            "edge_cloud_p50_ms": p50.get(Strategy.EDGE_CLOUD),
            "speedup_over_edge_cloud": speedup(p50.get(Strategy.EDGE_CLOUD), dcia_ms),
            "fastest_measured": min((s for s in p50 if p50[s] is not None), key=p50.get, default=None),
            "planner_choice": self.planner_choice,
        }

    def to_dict(self) -> dict:
        return {"name": self.name, "description": self.description,
                "summary": self.summary(), "calibration": self.calibration,
                "link_delay": self.link_delay,
                "strategies": [dict(asdict(r), stats=r.stats()) for r in self.runs]}


def _f(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def table(result: ScenarioResult) -> Table:
    """One scenario's table."""
    t = Table(title=f"scenario {result.name}: {result.description}")
    for col in ("strategy", "plan", "p50 ms", "p95 ms", "p99 ms", "answered/s", "accuracy",
                "= reference", "uplink B/req", "to cloud B/req", "predicted ms", "error (p50)"):
        t.add_column(col, justify="left" if col in ("strategy", "plan") else "right")
    for r in result.runs:
        s = r.stats()
        t.add_row(r.strategy, plan_text(r.plan), _f(s["p50_ms"], ".2f"), _f(s["p95_ms"], ".2f"),
                  _f(s["p99_ms"], ".2f"), _f(s["requests_per_s"], ".0f"),
                  _f(s["accuracy"], ".1%"), f"{r.exact}/{r.requests}",
                  _f(s["uplink_bytes_per_request"], ".0f"),
                  _f(s["cloud_bytes_per_request"], ".0f"), f"{r.predicted_ms:.2f}",
                  _f(s["error_pct"], "+.0f") + ("%" if s["error_pct"] is not None else ""))
    return t


def plan_text(plan: dict) -> str:
    """``ed1 0, sw1 1-3`` from a Plan.to_dict."""
    parts = []
    for stage in plan.get("stages", []):
        layers = stage["layers"]
        if layers:
            parts.append(f"{stage['node']} {layers[0]}" + (f"-{layers[-1]}" if len(layers) > 1 else ""))
    return ", ".join(parts)


def summary_text(result: ScenarioResult) -> str:
    s = result.summary()
    lines = [f"DCIA ({s['dcia']}) p50 {_f(s['dcia_p50_ms'], '.2f')} ms: "
             f"{_f(s['speedup_over_best_single_tier'], '.2f')}x the best single tier "
             f"({s['best_single_tier']}, {_f(s['best_single_tier_p50_ms'], '.2f')} ms), "
             f"{_f(s['speedup_over_edge_cloud'], '.2f')}x the best edge–cloud split "
             f"({_f(s['edge_cloud_p50_ms'], '.2f')} ms); fastest measured: {s['fastest_measured']}; "
             f"the unrestricted planner picks {s['planner_choice']}"]
    return "\n".join(lines)


def print_report(console: Console, results: list[ScenarioResult]) -> None:
    for result in results:
        console.print(table(result))
        console.print(summary_text(result))


def write(results: list[ScenarioResult], out: Path, meta: dict) -> list[Path]:
    """``eval.json``, a latency CDF per scenario and the p50 bars of every scenario."""
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "eval.json"]
    files[0].write_text(json.dumps({**meta, "scenarios": [r.to_dict() for r in results]},
                                   indent=1) + "\n")
    from bench.plots import figure

    for result in results:
        path = out / f"eval-cdf-{result.name}.png"
        with figure(path, f"latency CDF, scenario {result.name}", size=(7, 4)) as ax:
            for r in result.runs:
                lat = np.sort(np.asarray(r.latencies_ms))
                if len(lat):
                    ax.plot(lat, np.arange(1, len(lat) + 1) / len(lat), label=r.strategy)
            ax.set_xscale("log")
            ax.set_xlabel("latency, ms (log)")
            ax.set_ylabel("share of requests")
            ax.legend(fontsize=8)
        files.append(path)
    path = out / "eval-p50.png"
    strategies = [s for s in Strategy if any(res.run(s) for res in results)]
    with figure(path, "p50 latency per scenario and strategy", size=(8, 4)) as ax:
        width = 0.8 / max(1, len(strategies))
        for k, strategy in enumerate(strategies):
            values = [(res.run(strategy).stats()["p50_ms"] or 0) if res.run(strategy) else 0
                      for res in results]
            ax.bar(np.arange(len(results)) + k * width, values, width, label=strategy)
        ax.set_xticks(np.arange(len(results)) + width * (len(strategies) - 1) / 2,
                      [r.name for r in results])
        ax.set_yscale("log")
        ax.set_ylabel("p50 latency, ms (log)")
        ax.legend(fontsize=8)
    files.append(path)
    return files

