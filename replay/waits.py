"""Wait policies: how long an agent pauses between a response and its next request.

`recorded` replays the corpus's `wait` (tool run time or user think time); `scale:X` multiplies
it; `cap:S` clips it at S seconds; `fixed:S` waits S seconds; `none` sends at once; `aa` draws
AA-AgentPerf-style simulated tool delays: log-normal with median 1 s (sigma 0.8), clipped to
0.1–5 s, seeded per agent so runs are reproducible. The first turn of a session never waits:
an agent starts its next session as soon as the previous one ends.

A `limit` (the CLI's `--max-wait`, 300 s by default) clips whatever the policy gives: recorded
waits include human think times of hours, and an agent idle for longer than a measurement level
lasts adds no load to the window while still counting as an agent.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from replay.errors import ConfigError

AA_MEDIAN_S = 1.0
AA_SIGMA = 0.8
AA_MIN_S = 0.1
AA_MAX_S = 5.0

KINDS = ("recorded", "scale", "cap", "fixed", "none", "aa")


@dataclass(frozen=True)
class Wait:
    """A parsed policy; `value` is the factor or the seconds of `scale`, `cap` and `fixed`."""

    kind: str
    value: float = 0.0
    limit: float | None = None

    def delay(self, recorded: float, rng: random.Random) -> float:
        """Seconds to wait before a turn whose recorded wait was `recorded`."""
        value = self._policy(max(0.0, recorded), rng)
        return value if self.limit is None else min(value, self.limit)

    def clips(self, recorded: float) -> bool:
        """Whether `limit` shortens the wait this policy gives for a recorded wait (only
        the deterministic policies are counted; `aa` draws stay within 0.1–5 s)."""
        if self.limit is None or self.kind == "aa":
            return False
        return self._policy(max(0.0, recorded), random.Random(0)) > self.limit

    def _policy(self, recorded: float, rng: random.Random) -> float:
        match self.kind:
            case "recorded":
                return recorded
            case "scale":
                return recorded * self.value
            case "cap":
                return min(recorded, self.value)
            case "fixed":
                return self.value
            case "aa":
                draw = rng.lognormvariate(math.log(AA_MEDIAN_S), AA_SIGMA)
                return min(AA_MAX_S, max(AA_MIN_S, draw))
            case _:
                return 0.0

    def __str__(self) -> str:
        if self.kind in ("scale", "cap", "fixed"):
            return f"{self.kind}:{self.value:g}"
        return self.kind


def parse(spec: str, *, limit: float | None = None) -> Wait:
    """`recorded`, `scale:X`, `cap:S`, `fixed:S`, `none` or `aa` as a `Wait`, clipped at
    `limit` seconds when given."""
    if limit is not None and (not math.isfinite(limit) or limit < 0):
        raise ConfigError(f"maximum wait must be a number ≥ 0, got {limit!r}")
    kind, _, arg = spec.strip().partition(":")
    kind = kind.lower()
    if kind in ("recorded", "none", "aa"):
        if arg:
            raise ConfigError(f"wait policy {kind!r} takes no value, got {spec!r}")
        return Wait(kind, limit=limit)
    if kind in ("scale", "cap", "fixed"):
        try:
            value = float(arg.rstrip("s"))
        except ValueError:
            raise ConfigError(
                f"wait policy {spec!r}: expected a number after '{kind}:', e.g. '{kind}:2'"
            ) from None
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"wait policy {spec!r}: the value must be ≥ 0")
        return Wait(kind, value, limit)
    raise ConfigError(
        f"unknown wait policy {spec!r}; expected recorded, scale:X, cap:S, fixed:S, none or aa"
    )
