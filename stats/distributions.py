"""Percentiles, summaries and the two-sample KS distance over numpy arrays.

Non-finite values (NaN marks "not recorded" in a `corpus.Table`) are dropped first.
Percentiles use numpy's default linear interpolation between order statistics.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

# The percentiles every summary carries (JSON keys p10 … p99).
QS: tuple[int, ...] = (10, 25, 50, 75, 90, 95, 99)

Summary = dict[str, float | int | None]


def finite(values: ArrayLike) -> np.ndarray:
    """`values` as a float64 array without NaN/inf."""
    arr = np.asarray(values, dtype=np.float64).ravel()
    return arr[np.isfinite(arr)]


def percentiles(values: ArrayLike, qs: Sequence[float] = QS) -> np.ndarray:
    """The `qs` percentiles (0–100) of the finite `values`; all NaN when there are none.

    Monotone in `q` for any input; the small pure API `replay` uses for its summaries.
    """
    arr = finite(values)
    q = np.asarray(qs, dtype=np.float64)
    if not arr.size:
        return np.full(q.shape, math.nan)
    return np.asarray(np.percentile(arr, q), dtype=np.float64)


def _num(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def summary(values: ArrayLike) -> Summary:
    """`n`, `mean`, `min`, `p10`…`p99` (see `QS`), `max` of the finite `values`; statistics are
    None when n == 0."""
    arr = finite(values)
    out: Summary = {"n": int(arr.size)}
    if not arr.size:
        out.update({"mean": None, "min": None})
        out.update({f"p{q}": None for q in QS})
        out["max"] = None
        return out
    out["mean"] = float(arr.mean())
    out["min"] = float(arr.min())
    for q, v in zip(QS, percentiles(arr, QS), strict=True):
        out[f"p{q}"] = _num(float(v))
    out["max"] = float(arr.max())
    return out


def ks(a: ArrayLike, b: ArrayLike) -> float:
    """Two-sample Kolmogorov–Smirnov statistic sup_x |F_a(x) − F_b(x)| (0 = same empirical
    distribution, 1 = disjoint); NaN when either sample is empty."""
    x = np.sort(finite(a))
    y = np.sort(finite(b))
    if not x.size or not y.size:
        return math.nan
    grid = np.concatenate([x, y])
    fx = np.searchsorted(x, grid, side="right") / x.size
    fy = np.searchsorted(y, grid, side="right") / y.size
    return float(np.max(np.abs(fx - fy)))


def share_within(values: ArrayLike, lo: float, hi: float) -> float:
    """Share of the finite `values` inside [lo, hi]; NaN when there are none."""
    arr = finite(values)
    if not arr.size:
        return math.nan
    return float(np.count_nonzero((arr >= lo) & (arr <= hi)) / arr.size)
