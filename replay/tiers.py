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
from replay.slo import Limit, percentile


@dataclass(frozen=True, order=True)
class Tier:
    """Minimum output speed (tokens/s) at percentile `speed_pct` of the window's requests and
    maximum time to first token (s) at percentile `ttft_pct` (P25 and P95 by default), plus
    any further `limits` (see `replay.slo`)."""

    floor: float
    ttft: float
    speed_pct: float = 25.0
    ttft_pct: float = 95.0
    limits: tuple[Limit, ...] = ()

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
    max_error_rate: float = 1.0, extra: Sequence[tuple[Limit, float | None]] = (),
) -> Verdict:
    """Judge statistics already computed over a level's window: `p25` is the speed at the
    tier's `speed_pct`, `p95` the TTFT at its `ttft_pct`, `extra` each further limit with its
    figure (None: nothing to judge it on, which does not fail it)."""
    if error_rate > max_error_rate:
        return Verdict(tier, False, f"error rate {error_rate:.1%} > {max_error_rate:.1%}")
    if p25 is None and p95 is None:
        return Verdict(tier, False, "no request to judge in the window", inconclusive=True)
    if p25 is not None and p25 < tier.floor:
        return Verdict(tier, False, f"P{tier.speed_pct:g} speed {p25:.1f} < {tier.floor:g} tok/s")
    if p95 is not None and p95 > tier.ttft:
        return Verdict(tier, False, f"P{tier.ttft_pct:g} TTFT {p95:.2f} s > {tier.ttft:g} s")
    for limit, value in extra:
        if value is not None and not limit.met(value):
            return Verdict(tier, False, limit.reason(value))
    return Verdict(tier, True)


def agent_shares(
    tiers: Sequence[Tier], agent: np.ndarray, speed: np.ndarray, ttft: np.ndarray
) -> tuple[list[float | None], int]:
    """Per-agent view: for each tier, the share of agents whose own requests meet it (the
    tier's statistics of their own speeds and TTFTs, P25 and P95 by default), and how many
    agents had requests to judge."""
    if agent.size == 0:
        return [None for _ in tiers], 0
    order = np.argsort(agent, kind="stable")
    a, s, t = agent[order], speed[order], ttft[order]
    cuts = np.flatnonzero(np.diff(a)) + 1
    groups = list(zip(np.split(s, cuts), np.split(t, cuts), strict=True))
    groups = [(gs, gt) for gs, gt in groups
              if np.any(~np.isnan(gs)) and np.any(~np.isnan(gt))]
    if not groups:
        return [None for _ in tiers], 0
    shares: list[float | None] = []
    for tier in tiers:
        met = 0
        for gs, gt in groups:
            p, q = percentile(gs, tier.speed_pct), percentile(gt, tier.ttft_pct)
            met += p is not None and q is not None and p >= tier.floor and q <= tier.ttft
        shares.append(met / len(groups))
    return shares, len(groups)
