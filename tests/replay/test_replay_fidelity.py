"""Fidelity math and level summaries recomputed from raw samples."""

from __future__ import annotations

import pytest

from replay.fidelity import measure
from replay.results import Level, Sample
from replay.summary import fill
from replay.tiers import Tier


def sample(agent: int = 0, *, start: float = 10.0, first: float = 10.5, end: float = 12.5,
           inp: int = 1000, asked: int = 101, out: int = 101, server_in: int = 1005,
           cached: int = 500, ideal: int = 640, planned: float = 9.9, error: str = "") -> Sample:
    return Sample(agent=agent, session=0, cycle=0, turn=1, planned=planned, start=start,
                  first=first, end=end, input=inp, asked=asked, output=out,
                  server_input=server_in, server_cached=cached, ideal_cached=ideal,
                  status=200 if not error else 500, error=error)


def test_fidelity_compares_server_counts_with_the_corpus() -> None:
    f = measure([sample(), sample(out=51, server_in=990, cached=0, planned=10.0),
                 sample(error="http_500")], counters=0.4)
    assert f.input_checked == 2
    assert f.input_ratio == pytest.approx(1995 / 2000)
    assert f.input_max_dev == pytest.approx(0.01)
    assert f.output_ratio == pytest.approx(152 / 202)
    assert f.output_exact_share == 0.5
    assert f.cache_server == pytest.approx(500 / 1995)
    assert f.cache_ideal == pytest.approx(0.64)
    assert f.cache_counters == 0.4
    assert f.lag_max == pytest.approx(0.1)
    assert f.lag_p50 == pytest.approx(0.05)


def test_unreported_server_counts_are_left_out() -> None:
    f = measure([sample(server_in=-1, cached=-1)])
    assert f.input_checked == 0
    assert f.input_ratio is None
    assert f.cache_server is None


def test_level_figures_use_requests_started_in_the_window() -> None:
    samples = [sample(agent=a, start=10 + a, first=10.2 + a, end=12.2 + a) for a in range(5)]
    samples.append(sample(agent=9, start=5.0, first=5.1, end=5.2))  # before the window
    samples.append(sample(agent=1, start=11.0, error="http_429"))
    lv = Level(agents=10, index=0, started=0, window_start=10, window_end=15, warmup_s=1,
               stable=True)
    fill(lv, samples, [Tier(20, 1), Tier(60, 0.1)], max_error_rate=0.5)
    assert lv.requests == 6
    assert lv.errors == 1
    assert lv.errors_by_kind == {"http_429": 1}
    assert lv.p25_speed == pytest.approx(50.0)
    assert lv.p95_ttft == pytest.approx(0.2)
    assert [v.passed for v in lv.verdicts] == [True, False]
    assert lv.verdicts[0].agent_share == 1.0
    assert lv.agents_measured == 5
    assert len(lv.samples) == 7
    strict = Level(agents=10, index=0, started=0, window_start=10, window_end=15, warmup_s=1,
                   stable=True)
    fill(strict, samples, [Tier(20, 1)], max_error_rate=0.05)
    assert not strict.verdicts[0].passed
    assert "error rate" in strict.verdicts[0].reason


def test_cut_requests_are_judged_on_what_they_delivered() -> None:
    def cut(first: float, out: int) -> Sample:
        return Sample(agent=1, session=0, cycle=0, turn=0, planned=10.0, start=10.0,
                      first=first, end=30.0, input=100, asked=500, output=out, server_input=-1,
                      server_cached=-1, ideal_cached=0, status=0, error="", cut=True)

    samples = [sample(start=10 + i / 10, first=10.5 + i / 10, end=12.5 + i / 10)
               for i in range(18)]
    samples += [cut(first=-1.0, out=0), cut(first=11.0, out=191)]
    lv = Level(agents=2, index=0, started=0, window_start=10, window_end=15, warmup_s=1,
               stable=True)
    fill(lv, samples, [Tier(5, 1.5)], max_error_rate=0.05)
    assert lv.cut == 2
    assert lv.errors == 0
    assert lv.completed == 18
    # the cut request that never got a token has waited 20 s: the P95 TTFT shows it
    assert lv.p95_ttft is not None
    assert lv.p95_ttft > 1.0
    assert not lv.verdicts[0].passed
    assert lv.fidelity.output_exact_share == 1.0  # cut requests are left out of fidelity
