"""The capacity search as a pure state machine: which agent count to measure next.

Exponential ramp (1, 2, 4, … up to `max_agents`) while some tier still passes, then bisection
per tier between its highest passing and lowest failing level, until every tier is bracketed
to the resolution. Each measured level is judged against every tier once and reused by all of
them. Levels are assumed monotone (more agents never help); a noisy pass above a failure is
ignored: a tier's answer is its highest passing level below its lowest failing one.

A verdict is True (passed), False (failed) or None (the level could not judge: unstable, too
short, empty; such a level's failures still count, its passes do not). Only True answers a
tier. A level that left a tier unjudged is measured again once (the runner gives it longer
windows); if it still cannot judge, a tier whose bracket needed it stays unresolved. With
`repeats` N, the levels either side of each tier's boundary are measured until each holds N
judgements; a level passes only if it passed every time, so a repeat that fails moves the
boundary down and the search goes on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from replay.errors import ConfigError

Verdicts = tuple[bool | None, ...]


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
            f"resolution {spec!r}: expected a percentage like 10% or a number of agents like 1",
            params=("resolution",),
        ) from None


UNKNOWN_STREAK = 2
"""The ramp stops after this many consecutive levels that passed no tier and left one unjudged.
A level that was only *short* (it completed requests, but fewer than the window needs) does not
count: more agents send more requests, so a corpus with long think times, whose smallest levels
are short, still ramps up to the levels that can judge."""

UNKNOWN_IN_BRACKET = 2
"""A tier stops bisecting once this many levels inside its bracket judged nothing."""


class Search:
    """Decides the next level. `record` every measured level's per-tier verdicts in tier
    order (True, False, or None when the level could not judge); `next()` returns the next
    agent count, or None when every tier is resolved or cannot be."""

    def __init__(
        self,
        tiers: int,
        *,
        max_agents: int,
        resolution: Resolution | None = None,
        fixed: Sequence[int] | None = None,
        repeats: int = 1,
        retries: int = 1,
    ) -> None:
        if tiers < 1:
            raise ConfigError("at least one SLO tier is needed")
        if max_agents < 1:
            raise ConfigError(f"max_agents must be at least 1, got {max_agents}",
                              params=("max_agents",))
        if repeats < 1:
            raise ConfigError(f"repeats must be at least 1, got {repeats}", params=("repeats",))
        self.tiers = tiers
        self.max_agents = max_agents
        self.resolution = resolution or Resolution(relative=0.1)
        self.fixed = list(fixed) if fixed is not None else None
        self.repeats = repeats
        self.retries = retries
        self.results: dict[int, list[Verdicts]] = {}
        self._ramping = fixed is None
        self._last = 0
        self._streak = 0
        self._retry: int | None = None

    # --- what has been measured -------------------------------------------------------

    def record(self, agents: int, passed: Sequence[bool | None], *, short: bool = False) -> None:
        """`short`: the level could not judge only because its window held too few completed
        requests (see `UNKNOWN_STREAK`)."""
        if len(passed) != self.tiers:
            raise ValueError(f"expected {self.tiers} verdicts, got {len(passed)}")
        verdicts = tuple(passed)
        self.results.setdefault(agents, []).append(verdicts)
        unsure = None in verdicts
        self._retry = agents if unsure and self.unjudged(agents) <= self.retries else None
        if self._ramping and agents == self._last and self._retry is None:
            if not short:
                self._streak = self._streak + 1 if unsure and True not in verdicts else 0
            merged = [self.verdict(agents, t) for t in range(self.tiers)]
            if (all(v is False for v in merged) or agents >= self.max_agents
                    or self._streak >= UNKNOWN_STREAK):
                self._ramping = False

    def verdict(self, agents: int, tier: int) -> bool | None:
        """True when every judgement of `agents` passed `tier`, False when one failed, None
        when none judged it."""
        vs = [m[tier] for m in self.results.get(agents, ()) if m[tier] is not None]
        return all(vs) if vs else None

    def judged(self, agents: int, tier: int) -> int:
        """How many measurements of `agents` judged `tier`."""
        return sum(1 for m in self.results.get(agents, ()) if m[tier] is not None)

    def unjudged(self, agents: int) -> int:
        """How many measurements of `agents` left some tier unjudged."""
        return sum(1 for m in self.results.get(agents, ()) if None in m)

    def needs_longer(self, agents: int) -> bool:
        """True when a measurement of `agents` left some tier unjudged (so measure it with
        longer windows this time)."""
        return self.unjudged(agents) > 0

    def bounds(self, tier: int) -> tuple[int, int | None]:
        """(highest passing level below the lowest failing one or 0, lowest failing or None)."""
        verdicts = {n: self.verdict(n, tier) for n in self.results}
        fails = [n for n, v in verdicts.items() if v is False]
        hi = min(fails) if fails else None
        passes = [n for n, v in verdicts.items() if v is True and (hi is None or n < hi)]
        return (max(passes) if passes else 0), hi

    def answer(self, tier: int) -> int | None:
        """Most agents known to meet `tier`: 0 when one agent fails it, None when no level
        measured it (nothing passed, and the lowest failing level is above 1)."""
        lo, hi = self.bounds(tier)
        if lo > 0:
            return lo
        return 0 if hi == 1 else None

    def capped(self, tier: int) -> bool:
        """True when the tier passed at `max_agents` (the true capacity may be higher)."""
        lo, hi = self.bounds(tier)
        return hi is None and lo >= self.max_agents

    def resolved(self, tier: int) -> bool:
        """The answer is bracketed to the resolution (or passed at `max_agents`)."""
        lo, hi = self.bounds(tier)
        if self.capped(tier):
            return True
        return hi is not None and self.answer(tier) is not None and (
            self.resolution.resolved(lo, hi) or self.fixed is not None and lo + 1 == hi)

    def interval(self, tier: int) -> tuple[int, int | None] | None:
        """Where the capacity lies: (the answer, one below the lowest level that failed every
        time it was judged, or None when no level did). None without an answer."""
        n = self.answer(tier)
        if n is None:
            return None
        always = [k for k in self.results
                  if self.judged(k, tier) and not any(m[tier] for m in self.results[k])]
        above = [k for k in always if k > n]
        return n, (min(above) - 1 if above else None)

    # --- what to measure next ---------------------------------------------------------

    def next(self) -> int | None:
        if self._retry is not None:
            n, self._retry = self._retry, None
            return n
        if self.fixed is not None:
            for n in self.fixed:
                if n not in self.results:
                    return n
            return self._repeat()
        if self._ramping:
            n = 1 if self._last == 0 else min(self._last * 2, self.max_agents)
            self._last = n
            return n
        return self._bisect() or self._repeat()

    def _bisect(self) -> int | None:
        for tier in range(self.tiers):
            lo, hi = self.bounds(tier)
            if hi is None or self.resolution.resolved(lo, hi):
                continue
            inside = [n for n in range(lo + 1, hi) if n in self.results]
            if len(inside) >= UNKNOWN_IN_BRACKET:
                continue  # levels in the bracket judge nothing: leave the tier unresolved
            mid = (lo + hi) // 2
            free = [n for n in range(lo + 1, hi) if n not in self.results]
            if free:
                return min(free, key=lambda n: (abs(n - mid), n))
        return None

    def _repeat(self) -> int | None:
        """The next boundary level with fewer than `repeats` judgements."""
        if self.repeats <= 1:
            return None
        for tier in range(self.tiers):
            lo, hi = self.bounds(tier)
            for n in (lo, hi):
                if not n:
                    continue
                tries = len(self.results.get(n, ()))
                if (self.judged(n, tier) < self.repeats
                        and tries < self.repeats + self.retries):
                    return n
        return None
