"""Tier parsing and judging, per-request speed, and the per-agent view."""

from __future__ import annotations

import numpy as np
import pytest

from replay.errors import ConfigError
from replay.tiers import DEFAULT_TIERS, Tier, agent_shares, judge, parse, speeds


def test_default_tiers_are_aas_deepseek_v4_pro_tiers() -> None:
    assert DEFAULT_TIERS == (Tier(20, 10), Tier(60, 5), Tier(180, 3))


def test_slo_specs_parse() -> None:
    assert parse("60:5") == Tier(60, 5)
    assert parse(" 20 : 10s ") == Tier(20, 10)
    for bad in ("60", "a:b", "60:0", "-1:5", "inf:5"):
        with pytest.raises(ConfigError):
            parse(bad)


def test_speed_counts_tokens_after_the_first_over_the_decode_time() -> None:
    out = np.array([101, 1, 50, 10])
    first = np.array([1.0, 1.0, -1.0, 2.0])
    end = np.array([3.0, 2.0, 5.0, 2.0])
    v = speeds(out, first, end)
    assert v[0] == pytest.approx(50.0)
    assert np.isnan(v[1:]).all()


def test_judging_checks_floor_ceiling_and_errors() -> None:
    t = Tier(60, 5)
    assert judge(t, 61, 4.9).passed
    assert not judge(t, 59, 1).passed
    assert "TTFT" in judge(t, 100, 5.1).reason
    empty = judge(t, None, None)
    assert not empty.passed  # nothing to judge is never a pass
    assert empty.inconclusive
    assert judge(t, None, 1.0).passed  # no measurable speed (1-token outputs): TTFT decides
    assert not judge(t, None, 9.0).passed
    failed = judge(t, 100, 1, error_rate=0.1, max_error_rate=0.05)
    assert not failed.passed
    assert "error rate" in failed.reason


def test_per_agent_view_judges_each_agents_own_requests() -> None:
    agent = np.array([0, 0, 0, 1, 1, 2])
    speed = np.array([70, 80, 90, 30, 40, np.nan])
    ttft = np.array([1, 1, 1, 1, 1, 1.0])
    shares, judged = agent_shares([Tier(20, 10), Tier(60, 5)], agent, speed, ttft)
    assert judged == 2  # agent 2 has no measurable speed
    assert shares == [1.0, 0.5]
    assert agent_shares([Tier(1, 1)], np.array([], dtype=int), np.array([]), np.array([])) == (
        [None], 0,
    )
