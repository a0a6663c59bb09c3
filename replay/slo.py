"""Service-level constraints beyond a tier's speed floor and TTFT ceiling: any per-request
metric × a percentile × a bound (`e2e:p95=60`), the statistics a tier judges its pair with
(`speed=p25,ttft=p95`), and the per-task constraint (`1.5x`: a task may take at most 1.5 times
as long as it did when recorded). Pure parsing and per-request figures; `tiers` judges.

Task time: for each replayed session in a level (agent, session, cycle), the elapsed time from
its first turn being due to its last response's end, against the same span with each turn's
recorded duration in place of its replayed one (the waits between turns, as the wait policy
applied them, count on both sides: a user waits for the task, tool time included).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from replay.errors import ConfigError
from replay.results import Sample


@dataclass(frozen=True)
class Metric:
    key: str
    name: str
    unit: str
    higher: bool
    """True: the bound is a floor (speed); False: a ceiling (latencies, task ratio)."""


METRICS: dict[str, Metric] = {m.key: m for m in (
    Metric("speed", "output speed", "tok/s", True),
    Metric("ttft", "time to first token", "s", False),
    Metric("tpot", "time per output token", "s", False),
    Metric("e2e", "end-to-end latency", "s", False),
    Metric("gap", "longest pause between tokens", "s", False),
    Metric("task", "task time ÷ recorded", "×", False),
)}
"""Per-request metrics a constraint can bound (`task` is per replayed session)."""

DEFAULT_STATS: dict[str, float] = {"speed": 25.0, "ttft": 95.0, "task": 95.0}
"""Percentiles a tier checks when none are given. AA-AgentPerf does not publish which
percentiles it checks: P25 speed and P95 TTFT are this tool's approximation."""


@dataclass(frozen=True, order=True)
class Limit:
    """`metric` at percentile `pct` of the window's requests must be ≥ `bound` (a floor, for
    speed) or ≤ `bound` (a ceiling, for everything else)."""

    metric: str
    pct: float
    bound: float

    @property
    def name(self) -> str:
        m = METRICS[self.metric]
        op = "≥" if m.higher else "≤"
        unit = "×" if m.unit == "×" else f" {m.unit}"
        return f"P{self.pct:g} {self.metric} {op} {self.bound:g}{unit}"

    def met(self, value: float) -> bool:
        return value >= self.bound if METRICS[self.metric].higher else value <= self.bound

    def reason(self, value: float) -> str:
        m = METRICS[self.metric]
        op = "<" if m.higher else ">"
        unit = "×" if m.unit == "×" else f" {m.unit}"
        return f"P{self.pct:g} {self.metric} {value:.3g}{unit} {op} {self.bound:g}{unit}"


_NAME = re.compile(r"P([0-9.]+) (\w+) [≥≤] ([0-9.e+-]+)")


def from_name(name: str) -> Limit | None:
    """The limit a `Limit.name` describes (results store names), or None."""
    m = _NAME.match(name)
    if m is None or m.group(2) not in METRICS:
        return None
    return Limit(m.group(2), float(m.group(1)), float(m.group(3)))


def _pct(text: str, where: str) -> float:
    t = text.strip().lower()
    if t in ("median", "p50"):
        return 50.0
    try:
        value = float(t[1:]) if t.startswith("p") else math.nan
    except ValueError:
        value = math.nan
    if not 0 <= value <= 100:
        raise ConfigError(f"{where}: {text!r} is not a percentile; expected p0…p100, e.g. p95")
    return value


def parse_stats(spec: str) -> dict[str, float]:
    """`speed=p25,ttft=p95` → {"speed": 25, "ttft": 95}; `task=p90` sets the task statistic."""
    out: dict[str, float] = {}
    for part in spec.split(","):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in ("speed", "ttft", "task"):
            raise ConfigError(f"--slo-stat {spec!r}: expected speed=pNN, ttft=pNN or task=pNN "
                              "separated by commas, e.g. speed=p25,ttft=p95")
        out[key] = _pct(value, f"--slo-stat {key}")
    return out


def parse_limit(spec: str) -> Limit:
    """`METRIC:pNN=BOUND`, e.g. `e2e:p95=60`, `gap:p99=0.5`, `tpot:p99=0.04`, `speed:p10=15`."""
    head, sep, bound = spec.partition("=")
    metric, _, stat = head.partition(":")
    metric = metric.strip()
    if not sep or metric not in METRICS or metric == "task" or not stat:
        raise ConfigError(
            f"--slo-limit {spec!r}: expected METRIC:pNN=BOUND with METRIC one of "
            f"{', '.join(k for k in METRICS if k != 'task')}, e.g. e2e:p95=60")
    try:
        value = float(bound.strip().rstrip("s"))
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"--slo-limit {spec!r}: the bound must be a number ≥ 0")
    return Limit(metric, _pct(stat, f"--slo-limit {metric}"), value)


def parse_task(spec: str, pct: float = DEFAULT_STATS["task"]) -> Limit:
    """`1.5x`: the task-time ratio's percentile `pct` must be at most 1.5."""
    text = spec.strip().lower().removesuffix("x").removesuffix("×")
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"--task-slo {spec!r}: expected a ratio like 1.5x (a task may take "
                          "at most 1.5 times its recorded time)")
    return Limit("task", pct, value)


def percentile(values: np.ndarray, pct: float) -> float | None:
    v = values[~np.isnan(values)]
    return float(np.percentile(v, pct)) if v.size else None


def task_ratios(samples: Sequence[Sample]) -> np.ndarray:
    """Per replayed session: (due → last end) ÷ (the same with recorded turn durations).
    Sessions with a failed, cut or unrecorded turn are left out (NaN-free result)."""
    groups: dict[tuple[int, int, int], list[Sample]] = {}
    for s in samples:
        groups.setdefault((s.agent, s.session, s.cycle), []).append(s)
    out = []
    for turns in groups.values():
        if not all(not t.error and not t.cut and t.recorded > 0 for t in turns):
            continue
        turns.sort(key=lambda t: t.turn)
        elapsed = turns[-1].end - turns[0].planned
        served = sum(t.end - t.planned for t in turns)
        recorded = elapsed - served + sum(t.recorded for t in turns)
        if elapsed > 0 and recorded > 0:
            out.append(elapsed / recorded)
    return np.array(out, dtype=np.float64)
