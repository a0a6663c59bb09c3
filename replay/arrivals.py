"""Open populations (`--arrivals`): top-level sessions arriving at their recorded start times
(time-compressed) or at a Poisson rate, each replayed once, as long as it lasts — instead of N
closed-loop agents. Pure: a spec and a schedule; `replay.population` runs it."""

from __future__ import annotations

import random

import msgspec

from replay.errors import ConfigError
from replay.workload import Workload


class Arrivals(msgspec.Struct, frozen=True, kw_only=True):
    """`recorded` with `rate` = how many times faster than recorded sessions arrive, or
    `poisson` with `rate` = top-level sessions per second."""

    kind: str
    rate: float

    def describe(self) -> str:
        if self.kind == "recorded":
            return f"sessions at their recorded start times, {self.rate:g}× compressed"
        return f"sessions arriving as a Poisson process, {self.rate:g} per second"

    def schedule(self, workload: Workload, *, seed: int, horizon: float) -> list[tuple[float, int]]:
        """(seconds from the start, index into `workload.roots`) of every arrival before
        `horizon`, in time order. Recorded arrivals start at the first session's start; a
        corpus shorter than the horizon repeats (the next pass starts after the last)."""
        roots = workload.roots
        out: list[tuple[float, int]] = []
        if self.kind == "recorded":
            starts = sorted((workload.sessions[r].start, i) for i, r in enumerate(roots))
            t0 = starts[0][0]
            span = max(starts[-1][0] - t0, 0.0) / self.rate
            if span <= 0:
                raise ConfigError(
                    f"{workload.path}: every top-level session starts at the same time (the "
                    "source recorded no start times), so there are no arrivals to replay; "
                    "use --arrivals poisson:RATE"
                )
            period = span + 1.0 / self.rate
            offset = 0.0
            while True:
                for start, i in starts:
                    t = offset + (start - t0) / self.rate
                    if t >= horizon:
                        return out
                    out.append((t, i))
                    _check(len(out))
                offset += period
        rng = random.Random(hash(("poisson", seed)))
        order: list[int] = []
        t = rng.expovariate(self.rate)
        while t < horizon:
            if not order:
                order = list(range(len(roots)))
                rng.shuffle(order)
            out.append((t, order.pop()))
            _check(len(out))
            t += rng.expovariate(self.rate)
        return out


MAX_ARRIVALS = 1_000_000


def _check(n: int) -> None:
    if n > MAX_ARRIVALS:
        raise ConfigError(
            f"arrivals: more than {MAX_ARRIVALS:,} sessions would arrive in one level; lower "
            "the rate or the window (--duration, --warmup)"
        )


def parse(spec: str) -> Arrivals:
    """`recorded`, `recorded:SCALE` (SCALE times the recorded arrival rate) or `poisson:RATE`
    (sessions per second)."""
    kind, _, value = spec.partition(":")
    if kind not in ("recorded", "poisson"):
        raise ConfigError(
            f"arrivals {spec!r}: expected recorded, recorded:SCALE or poisson:RATE"
        )
    if not value:
        if kind == "poisson":
            raise ConfigError(f"arrivals {spec!r}: poisson needs a rate, e.g. poisson:0.5")
        value = "1"
    try:
        rate = float(value)
    except ValueError:
        raise ConfigError(f"arrivals {spec!r}: {value!r} is not a number") from None
    if not rate > 0:
        raise ConfigError(f"arrivals {spec!r}: the rate must be positive")
    return Arrivals(kind=kind, rate=rate)
