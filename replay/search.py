"""The capacity search as a pure state machine: which agent count to measure next.

Exponential ramp (1, 2, 4, … up to `max_agents`) while some tier still passes, then bisection
per tier between its highest passing and lowest failing level, until every tier is bracketed
to the resolution. Each measured level is judged against every tier once and reused by all of
them. Levels are assumed monotone (more agents never help); a noisy pass above a failure is
ignored: a tier's answer is its highest passing level below its lowest failing one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from replay.errors import ConfigError


@dataclass(frozen=True)
class Resolution:
    """Stop bisecting when hi − lo ≤ max(1, `relative` × lo, `absolute`)."""

    relative: float = 0.0
    absolute: int = 1

    def resolved(self, lo: int, hi: int) -> bool:
        return hi - lo <= max(1, self.relative * lo, self.absolute)

    def __str__(self) -> str:
        return f"{self.relative:.0%}" if self.relative else f"{self.absolute} agent(s)"


def parse_resolution(spec: str) -> Resolution:
    """`10%` (relative) or `1` (agents)."""
    text = spec.strip()
    try:
        if text.endswith("%"):
            rel = float(text[:-1]) / 100
            if not math.isfinite(rel) or not 0 < rel < 1:
                raise ValueError
            return Resolution(relative=rel, absolute=1)
        n = int(text)
        if n < 1:
            raise ValueError
        return Resolution(relative=0.0, absolute=n)
    except ValueError:
        raise ConfigError(
            f"--resolution {spec!r}: expected a percentage like 10% or a number of agents like 1"
        ) from None


class Search:
    """Decides the next level. `record` every measured level's per-tier pass/fail in tier
    order; `next()` returns the next agent count, or None when every tier is resolved."""

    def __init__(
        self,
        tiers: int,
        *,
        max_agents: int,
        resolution: Resolution | None = None,
        fixed: Sequence[int] | None = None,
    ) -> None:
        if tiers < 1:
            raise ConfigError("at least one SLO tier is needed")
        if max_agents < 1:
            raise ConfigError(f"--max-agents must be at least 1, got {max_agents}")
        self.tiers = tiers
        self.max_agents = max_agents
        self.resolution = resolution or Resolution(relative=0.1)
        self.fixed = list(fixed) if fixed is not None else None
        self.results: dict[int, tuple[bool, ...]] = {}
        self._ramping = fixed is None
        self._last = 0

    def record(self, agents: int, passed: Sequence[bool]) -> None:
        if len(passed) != self.tiers:
            raise ValueError(f"expected {self.tiers} verdicts, got {len(passed)}")
        self.results[agents] = tuple(passed)
        if self._ramping and agents == self._last:
            if not any(passed) or agents >= self.max_agents:
                self._ramping = False

    def bounds(self, tier: int) -> tuple[int, int | None]:
        """(highest passing level below the lowest failing one or 0, lowest failing or None)."""
        fails = [n for n, p in self.results.items() if not p[tier]]
        hi = min(fails) if fails else None
        passes = [n for n, p in self.results.items() if p[tier] and (hi is None or n < hi)]
        return (max(passes) if passes else 0), hi

    def capped(self, tier: int) -> bool:
        """True when the tier passed at `max_agents` (the true capacity may be higher)."""
        lo, hi = self.bounds(tier)
        return hi is None and lo >= self.max_agents

    def next(self) -> int | None:
        if self.fixed is not None:
            for n in self.fixed:
                if n not in self.results:
                    return n
            return None
        if self._ramping:
            n = 1 if self._last == 0 else min(self._last * 2, self.max_agents)
            self._last = n
            return n
        for tier in range(self.tiers):
            lo, hi = self.bounds(tier)
            if hi is None or self.resolution.resolved(lo, hi):
                continue
            mid = (lo + hi) // 2
            if mid in self.results or mid <= lo:
                continue
            return mid
        return None

    def answer(self, tier: int) -> int:
        """Most agents known to meet `tier` (0 when even one agent fails)."""
        return self.bounds(tier)[0]
