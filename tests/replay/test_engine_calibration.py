"""Calibration: a deterministic fit, a reproducible leave-one-out backtest, the stored result."""

from __future__ import annotations

import math

import msgspec
import numpy as np
import pytest

from replay.engine import calibration, setups
from replay.engine.errors import CatalogError


def test_the_fit_is_deterministic_and_explains_the_points() -> None:
    points = calibration.load_points()
    first, second = calibration.fit(points), calibration.fit(points)
    assert first == second
    errors = sorted(abs(calibration.predict(p, first) / p.measured - 1) for p in points)
    assert errors[len(errors) // 2] < 0.15  # in-sample median
    start = sorted(abs(calibration.predict(p, calibration.START) / p.measured - 1)
                   for p in points)
    assert sum(errors) < sum(start)  # the fit moved the factors somewhere better


def test_backtest_reproduces_the_stored_calibration() -> None:
    """catalog/calibration.json is what `replay engines --backtest --save` writes today; if
    this fails, points or the model changed: rerun that command and commit the file."""
    result = calibration.backtest()
    stored = setups.stored()
    assert stored.factors == result.factors
    assert stored.median_abs_error == pytest.approx(result.median_abs_error, abs=1e-12)
    assert stored.max_abs_error == pytest.approx(result.max_abs_error, abs=1e-12)
    assert stored.points == len(result.points) == len(calibration.load_points())
    assert calibration.stored_text(result) == setups.CALIBRATION_FILE.read_bytes()


def test_backtest_errors_are_out_of_sample() -> None:
    result = calibration.backtest()
    points = calibration.load_points()
    full = calibration.fitted()
    in_sample = [abs(calibration.predict(p, full) / p.measured - 1) for p in points]
    out = [abs(r.error) for r in result.points]
    assert [r.id for r in result.points] == [p.id for p in points]
    assert sum(out) > sum(in_sample)  # leaving a point out can only hurt it, on the whole
    for r in result.points:
        assert r.error == pytest.approx(r.predicted / r.measured - 1)


def test_a_point_the_kv_cache_cannot_hold_is_an_error() -> None:
    p = calibration.load_points()[0]
    huge = msgspec.structs.replace(p, isl=50_000_000.0)
    with pytest.raises(CatalogError, match="does not fit the KV cache"):
        calibration.predict(huge, calibration.START)


def test_fit_needs_points() -> None:
    with pytest.raises(CatalogError, match="no calibration points"):
        calibration.fit([])


def test_readme_shows_the_current_backtest_table() -> None:
    """The README's table is `replay engines --backtest --markdown`; regenerate it when this
    fails."""
    from replay.engine.catalog_cli import _markdown

    readme = (setups.CALIBRATION_FILE.parents[3] / "README.md").read_text()
    assert _markdown(calibration.backtest()) in readme
    s = setups.stored()
    assert f"median {s.median_abs_error:.1%}, max {s.max_abs_error:.1%}" in readme


@pytest.mark.parametrize("which", ["start", "fitted", "odd"])
def test_the_fast_fitting_loss_matches_predict(which: str) -> None:
    points = calibration.load_points()
    factors = {"start": calibration.START, "fitted": calibration.fitted(),
               "odd": msgspec.structs.replace(calibration.START, compute=1.3, fp4=0.2,
                                              amd=2.0, memory=0.05)}[which]
    theta = np.log(np.array([getattr(factors, n) for n in calibration.FITTED]))
    reference = sum(math.log(calibration.predict(p, factors) / p.measured) ** 2 for p in points)
    reference += calibration._penalty(factors)
    fast = calibration._Design(points).loss(theta, np.ones(len(points), dtype=bool))
    assert fast == pytest.approx(reference, rel=1e-12)
