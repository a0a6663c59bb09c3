"""Intervals by resampling sessions (turns of one session are not independent samples).

A Poisson bootstrap: each replicate gives every session a weight drawn from Poisson(1) (the
count of times an ordinary bootstrap would draw it), and a statistic is recomputed over the
values weighted by their session's weight. Replicates are seeded, so the same corpus gives the
same interval. `LEVEL` is the two-sided coverage reported (5th–95th percentile of replicates).
"""

from __future__ import annotations

import math

import numpy as np

REPS = 200
LEVEL = 0.90
_CHUNK = 4_000_000  # weight-matrix elements per step (bounds memory on 1M-turn corpora)

Interval = tuple[float, float]


class Resampler:
    """Session weights for `reps` replicates over `n` sessions (seeded)."""

    def __init__(self, n: int, *, reps: int = REPS, seed: int = 0) -> None:
        self.n = n
        self.reps = reps
        self.weights = np.random.default_rng(seed).poisson(1.0, size=(reps, n)).astype(np.float64)

    def replicates(self, values: np.ndarray, session: np.ndarray, stat: str) -> np.ndarray:
        """The statistic (`p50`, `p95`, … or `mean`) of `values` (session index of each in
        `session`) in every replicate; NaN where a replicate drew none of them."""
        v = np.asarray(values, dtype=np.float64)
        ok = np.isfinite(v)
        v, s = v[ok], np.asarray(session)[ok]
        out = np.full(self.reps, math.nan)
        if not v.size:
            return out
        by = np.argsort(v, kind="stable")
        v, s = v[by], s[by]
        step = max(1, _CHUNK // v.size)
        for a in range(0, self.reps, step):
            w = self.weights[a : a + step][:, s]
            total = w.sum(axis=1)
            if stat == "mean":
                with np.errstate(invalid="ignore", divide="ignore"):
                    out[a : a + step] = (w @ v) / total
                continue
            q = float(stat.removeprefix("p")) / 100.0
            cum = np.cumsum(w, axis=1)
            for i in range(w.shape[0]):
                if total[i] > 0:
                    k = int(np.searchsorted(cum[i], q * total[i], side="left"))
                    out[a + i] = v[min(k, v.size - 1)]
        return out

    def ratio(self, num: np.ndarray, den: np.ndarray, session: np.ndarray) -> np.ndarray:
        """sum(num) / sum(den) in every replicate (e.g. hit tokens / input tokens)."""
        w = self.weights[:, np.asarray(session)]
        with np.errstate(invalid="ignore", divide="ignore"):
            return (w @ np.asarray(num, np.float64)) / (w @ np.asarray(den, np.float64))

    def share(self, mask: np.ndarray, session: np.ndarray) -> np.ndarray:
        """Share of True in `mask` in every replicate."""
        m = np.asarray(mask, dtype=np.float64)
        return self.ratio(m, np.ones_like(m), session)


def interval(reps: np.ndarray, point: float | None = None) -> Interval:
    """The `LEVEL` interval of the finite replicates (NaN, NaN when there are none), widened to
    hold `point`, the statistic on the whole sample (replicates of a quantile of few distinct
    values can miss the interpolated point)."""
    r = np.asarray(reps, dtype=np.float64)
    r = r[np.isfinite(r)]
    if not r.size:
        return (math.nan, math.nan)
    tail = (1 - LEVEL) / 2 * 100
    lo, hi = (float(x) for x in np.percentile(r, [tail, 100 - tail]))
    if point is not None and math.isfinite(point):
        lo, hi = min(lo, point), max(hi, point)
    return (lo, hi)
