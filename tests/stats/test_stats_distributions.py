from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stats import ks, percentiles, summary
from stats.distributions import share_within

floats = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False)


def test_percentiles_interpolate_linearly_between_order_statistics() -> None:
    assert percentiles([10, 20, 30, 40], [0, 50, 100]).tolist() == [10, 25, 40]


def test_percentiles_drop_missing_values() -> None:
    assert percentiles([1.0, math.nan, 3.0], [50]).tolist() == [2.0]


def test_percentiles_of_nothing_are_nan() -> None:
    assert np.isnan(percentiles([], [10, 90])).all()


@given(st.lists(floats, min_size=1, max_size=200), st.lists(st.floats(0, 100), max_size=20))
def test_percentiles_are_monotone_in_q(values: list[float], qs: list[float]) -> None:
    qs = sorted(qs)
    got = percentiles(values, qs)
    assert np.all(np.diff(got) >= -1e-6 * (1 + np.abs(got[1:])))
    assert all(min(values) - 1e-6 <= g <= max(values) + 1e-6 for g in got)


def test_summary_of_empty_has_count_and_nulls() -> None:
    s = summary([])
    assert s["n"] == 0
    assert s["p50"] is None
    assert s["mean"] is None


def test_summary_keys_and_values() -> None:
    s = summary(list(range(101)))
    assert list(s) == ["n", "mean", "min", "p10", "p25", "p50", "p75", "p90", "p95", "p99", "max"]
    assert (s["n"], s["p10"], s["p50"], s["p99"], s["max"]) == (101, 10, 50, 99, 100)


def test_ks_is_zero_for_the_same_sample_and_one_for_disjoint() -> None:
    assert ks([1, 2, 3], [3, 2, 1]) == 0
    assert ks([1, 2, 3], [10, 11]) == 1


def test_ks_hand_computed() -> None:
    # F_a steps at 1,2,3,4 by 1/4; F_b at 3,4,5,6. Largest gap at x = 2: 0.5 - 0.
    assert ks([1, 2, 3, 4], [3, 4, 5, 6]) == pytest.approx(0.5)


@given(st.lists(floats, min_size=1, max_size=50), st.lists(floats, min_size=1, max_size=50))
def test_ks_is_a_symmetric_distance_in_unit_interval(a: list[float], b: list[float]) -> None:
    d = ks(a, b)
    assert 0 <= d <= 1
    assert d == pytest.approx(ks(b, a))
    assert ks(a, a) == 0


def test_share_within_counts_inclusive_bounds() -> None:
    assert share_within([1, 2, 3, 4], 2, 3) == 0.5
    assert math.isnan(share_within([], 0, 1))
