"""A level's figures recomputed from raw samples (so shards merge by concatenating samples).

A request belongs to the steady window when it *started* inside it (the level drains them, so
long requests are not biased away), or when it started earlier and was still running when the
window ended: a request that outlives the whole window says how the server served the window
(typically an overload transient), and leaving it out would let a level where nothing starts
look clean.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from replay import fidelity, slo
from replay.results import Level, Sample, TierVerdict
from replay.tiers import Tier, agent_shares, judge, p25_speed, p95_ttft, speeds


def in_window(samples: Sequence[Sample], start: float, end: float) -> list[Sample]:
    return [s for s in samples if start <= s.start < end or (s.start < start and s.end >= end)]


def arrays(samples: Sequence[Sample]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(agent ids, speeds, TTFTs) of the successful samples (NaN where undefined). A cut
    request without a first token has waited `end − start` so far: that lower bound stands
    in for its TTFT (it can only make the P95 worse, never better)."""
    ok = [s for s in samples if not s.error]
    agent = np.array([s.agent for s in ok], dtype=np.int64)
    first = np.array([s.first for s in ok], dtype=np.float64)
    start = np.array([s.start for s in ok], dtype=np.float64)
    end = np.array([s.end for s in ok], dtype=np.float64)
    out = np.array([s.output for s in ok], dtype=np.float64)
    cut = np.array([s.cut for s in ok], dtype=bool)
    speed = speeds(out, first, end)
    ttft = np.where(first > 0, first - start, np.where(cut, end - start, np.nan))
    return agent, speed, ttft


def attainment(tier: Tier, speed: np.ndarray, ttft: np.ndarray, requests: int) -> float | None:
    """Share of `requests` whose own speed and TTFT meet `tier` (`speed`/`ttft` are the
    successful ones'; a request too short for a speed is judged on TTFT alone)."""
    if not requests:
        return None
    with np.errstate(invalid="ignore"):
        fast = np.isnan(speed) | (speed >= tier.floor)
        met = fast & (ttft <= tier.ttft)
    return int(np.count_nonzero(met)) / requests


def problem(level: Level) -> str:
    """Why `level`'s window cannot pass a tier, or "" when it can: it must be complete,
    stable, and hold enough completed requests (`short` is set by the level's timing). A
    failure on such a level still counts: it can only lower an answer, never raise it."""
    if level.partial:
        return "interrupted before its window ended"
    if level.completed == 0:
        return "no request completed in its window"
    if level.short:
        return f"short window: {level.completed} completed requests, fewer than --min-requests"
    if not level.stable:
        return "not stable: its rate still changed at the end of the warm-up"
    return ""


class Figures:
    """A window's per-request figures by metric (see `replay.slo.METRICS`), each computed
    once, and their percentiles. Task ratios use every sample of the level (a task spans
    more than the window)."""

    def __init__(self, window: Sequence[Sample], samples: Sequence[Sample], speed: np.ndarray,
                 ttft: np.ndarray) -> None:
        self.window, self.samples = window, samples
        self.values: dict[str, np.ndarray] = {"speed": speed, "ttft": ttft}

    def _values(self, metric: str) -> np.ndarray:
        if metric not in self.values:
            ok = [s for s in self.window if not s.error]
            if metric == "e2e":  # a cut request has taken at least end − start so far
                v = np.array([s.end - s.start for s in ok], dtype=np.float64)
            elif metric == "tpot":  # MLPerf's time per output token: 1 / speed
                with np.errstate(divide="ignore"):
                    v = np.where(self.values["speed"] > 0, 1.0 / self.values["speed"], np.nan)
            elif metric == "gap":
                v = np.array([s.gap if s.gap >= 0 else np.nan for s in ok], dtype=np.float64)
            elif metric == "task":
                v = slo.task_ratios(self.samples)
            else:
                raise KeyError(metric)
            self.values[metric] = v
        return self.values[metric]

    def stat(self, metric: str, pct: float) -> float | None:
        return slo.percentile(self._values(metric), pct)


def fill(
    level: Level,
    samples: Sequence[Sample],
    tiers: Sequence[Tier],
    *,
    max_error_rate: float,
    counters: float | None = None,
) -> Level:
    """Set `level`'s window figures, verdicts and fidelity from all of its `samples`."""
    window = in_window(samples, level.window_start, level.window_end)
    level.samples = sorted(samples, key=lambda s: s.start)
    level.requests = len(window)
    kinds = Counter(s.error for s in window if s.error)
    level.errors = sum(kinds.values())
    level.errors_by_kind = dict(sorted(kinds.items()))
    level.cut = sum(1 for s in window if s.cut)
    level.completed = level.requests - level.errors - level.cut
    level.error_rate = level.errors / level.requests if level.requests else 0.0
    level.output_tokens = sum(s.output for s in window if not s.error)
    agent, speed, ttft = arrays(window)
    level.p25_speed = p25_speed(speed)
    level.p95_ttft = p95_ttft(ttft)
    sp = speed[~np.isnan(speed)]
    tt = ttft[~np.isnan(ttft)]
    level.p50_speed = float(np.percentile(sp, 50)) if sp.size else None
    level.p50_ttft = float(np.percentile(tt, 50)) if tt.size else None
    shares, level.agents_measured = agent_shares(tiers, agent, speed, ttft)
    failing = level.error_rate > max_error_rate
    level.problem = "" if failing else problem(level)
    level.verdicts = []
    figures = Figures(window, samples, speed, ttft)
    for tier, share in zip(tiers, shares, strict=True):
        at_speed = figures.stat("speed", tier.speed_pct)
        at_ttft = figures.stat("ttft", tier.ttft_pct)
        extra = [(limit, figures.stat(limit.metric, limit.pct)) for limit in tier.limits]
        v = judge(tier, at_speed, at_ttft, error_rate=level.error_rate,
                  max_error_rate=max_error_rate, extra=extra)
        if level.problem and (v.passed or v.inconclusive):  # its failures still count
            level.verdicts.append(
                TierVerdict(floor=tier.floor, ttft=tier.ttft, passed=False,
                            reason=level.problem, inconclusive=True, agent_share=share,
                            speed=at_speed, ttft_at=at_ttft,
                            attainment=attainment(tier, speed, ttft, level.requests)))
            continue
        level.verdicts.append(
            TierVerdict(floor=tier.floor, ttft=tier.ttft, passed=v.passed, reason=v.reason,
                        inconclusive=v.inconclusive, agent_share=share, speed=at_speed,
                        ttft_at=at_ttft,
                        limits={limit.name: value for limit, value in extra
                                if value is not None},
                        attainment=attainment(tier, speed, ttft, level.requests))
        )
    level.fidelity = fidelity.measure(window, counters)
    return level
