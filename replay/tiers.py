"""SLO tiers and judging a level against them, AA-AgentPerf's way.

A request's output speed is (output tokens after the first) / (end − first token). A set of
requests meets a tier when the 25th percentile of their speeds is at least the tier's floor
and the 95th percentile of their TTFTs is at most its ceiling. Percentiles are numpy's
default (linear interpolation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from replay.errors import ConfigError


@dataclass(frozen=True, order=True)
class Tier:
    """Minimum P25 output speed (tokens/s) and maximum P95 time to first token (s)."""

    floor: float
    ttft: float

    @property
    def name(self) -> str:
        return f"{self.floor:g} tok/s, TTFT ≤ {self.ttft:g} s"


DEFAULT_TIERS: tuple[Tier, ...] = (Tier(20, 10), Tier(60, 5), Tier(180, 3))
"""AA-AgentPerf's DeepSeek V4 Pro tiers."""


def parse(spec: str) -> Tier:
    """`FLOOR:TTFT`, e.g. `60:5` (tokens/s : seconds)."""
    floor, sep, ttft = spec.strip().partition(":")
    try:
        tier = Tier(float(floor), float(ttft.rstrip("s")))
    except ValueError:
        tier = None
    if not sep or tier is None or not (math.isfinite(tier.floor) and math.isfinite(tier.ttft)):
        raise ConfigError(f"--slo {spec!r}: expected FLOOR:TTFT in tok/s and seconds, e.g. 60:5")
    if tier.floor < 0 or tier.ttft <= 0:
        raise ConfigError(f"--slo {spec!r}: the floor must be ≥ 0 and the TTFT ceiling > 0")
    return tier


def speeds(output: np.ndarray, first: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Per-request output speed in tokens/s; NaN where it is undefined (≤ 1 token, no time)."""
    dt = end - first
    with np.errstate(divide="ignore", invalid="ignore"):
        v = (output - 1) / dt
    return np.where((output > 1) & (dt > 0) & (first > 0), v, np.nan)


def p25_speed(values: np.ndarray) -> float | None:
    v = values[~np.isnan(values)]
    return float(np.percentile(v, 25)) if v.size else None


def p95_ttft(values: np.ndarray) -> float | None:
    v = values[~np.isnan(values)]
    return float(np.percentile(v, 95)) if v.size else None


@dataclass(frozen=True)
class Verdict:
    """Whether a set of requests meets `tier`, and why not. An `inconclusive` verdict (no
    request to judge: every agent was waiting through the window) is not a pass: the
    search measures the level again with a longer window, or leaves the tier unresolved."""

    tier: Tier
    passed: bool
    reason: str = ""
    inconclusive: bool = False


def judge(
    tier: Tier, p25: float | None, p95: float | None, *, error_rate: float = 0.0,
    max_error_rate: float = 1.0,
) -> Verdict:
    """Judge percentiles already computed over a level's window."""
    if error_rate > max_error_rate:
        return Verdict(tier, False, f"error rate {error_rate:.1%} > {max_error_rate:.1%}")
    if p25 is None and p95 is None:
        return Verdict(tier, False, "no request to judge in the window", inconclusive=True)
    if p25 is not None and p25 < tier.floor:
        return Verdict(tier, False, f"P25 speed {p25:.1f} < {tier.floor:g} tok/s")
    if p95 is not None and p95 > tier.ttft:
        return Verdict(tier, False, f"P95 TTFT {p95:.2f} s > {tier.ttft:g} s")
    return Verdict(tier, True)


def agent_shares(
    tiers: Sequence[Tier], agent: np.ndarray, speed: np.ndarray, ttft: np.ndarray
) -> tuple[list[float | None], int]:
    """Per-agent view: for each tier, the share of agents whose own requests meet it (P25 of
    their speeds, P95 of their TTFTs), and how many agents had requests to judge."""
    if agent.size == 0:
        return [None for _ in tiers], 0
    order = np.argsort(agent, kind="stable")
    a, s, t = agent[order], speed[order], ttft[order]
    cuts = np.flatnonzero(np.diff(a)) + 1
    groups = list(zip(np.split(s, cuts), np.split(t, cuts), strict=True))
    stats = [(p25_speed(gs), p95_ttft(gt)) for gs, gt in groups]
    judged = [(p, q) for p, q in stats if p is not None and q is not None]
    if not judged:
        return [None for _ in tiers], 0
    shares: list[float | None] = [
        sum(1 for p, q in judged if p >= tier.floor and q <= tier.ttft) / len(judged)
        for tier in tiers
    ]
    return shares, len(judged)
