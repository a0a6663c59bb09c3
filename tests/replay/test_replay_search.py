"""The search state machine: exponential ramp, per-tier bisection, resolution, caps."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from replay.errors import ConfigError, flagged
from replay.search import Resolution, Search, parse_resolution


def drive(search: Search, capacity: list[int]) -> list[int]:
    """Run the search against tiers that pass while agents <= capacity[tier]."""
    measured: list[int] = []
    while (n := search.next()) is not None:
        assert measured.count(n) < search.repeats, "a level is measured `repeats` times"
        measured.append(n)
        search.record(n, [n <= c for c in capacity])
        assert len(measured) < 100
    return measured


@pytest.mark.parametrize("capacity", [[37, 12, 3], [1, 1, 1], [100, 50, 0], [5, 5, 5]])
def test_exact_resolution_finds_every_tier_boundary(capacity: list[int]) -> None:
    s = Search(3, max_agents=1024, resolution=Resolution(absolute=1))
    measured = drive(s, capacity)
    assert [s.answer(t) for t in range(3)] == capacity
    ramp = [n for n in measured if n & (n - 1) == 0]
    assert ramp[:3] == [1, 2, 4][: len(ramp[:3])]


def test_relative_resolution_stops_within_ten_percent() -> None:
    s = Search(1, max_agents=4096, resolution=parse_resolution("10%"))
    drive(s, [731])
    lo, hi = s.bounds(0)
    assert hi is not None
    assert lo <= 731 < hi
    assert hi - lo <= max(1, 0.1 * lo)


def test_levels_are_shared_between_tiers() -> None:
    s = Search(3, max_agents=1024, resolution=Resolution(absolute=1))
    measured = drive(s, [40, 40, 40])
    assert len(measured) == len(set(measured)) <= 14


def test_max_agents_caps_the_ramp_and_flags_the_tier() -> None:
    s = Search(2, max_agents=10, resolution=Resolution(absolute=1))
    measured = drive(s, [500, 6])
    assert max(measured) == 10
    assert s.answer(0) == 10
    assert s.capped(0)
    assert s.answer(1) == 6
    assert not s.capped(1)


def test_a_noisy_pass_above_a_failure_is_ignored() -> None:
    s = Search(1, max_agents=64)
    s.record(8, [False])
    s.record(4, [True])
    s.record(16, [True])
    assert s.bounds(0) == (4, 8)


def test_fixed_level_is_measured_once() -> None:
    s = Search(3, max_agents=1, fixed=[7])
    assert s.next() == 7
    s.record(7, [True, True, False])
    assert s.next() is None
    assert [s.answer(t) for t in range(3)] == [7, 7, None]  # 7 failed; nothing below measured


def test_one_agent_failing_is_a_measured_zero() -> None:
    s = Search(1, max_agents=8)
    s.record(1, [False])
    assert s.answer(0) == 0
    assert s.resolved(0)


def test_a_level_that_cannot_judge_is_retried_once_and_never_passes() -> None:
    s = Search(2, max_agents=64, resolution=Resolution(absolute=1))
    assert s.next() == 1
    s.record(1, [None, False])  # e.g. not stable: its failure counts, its pass does not
    assert s.next() == 1  # measured again (the runner gives it longer windows)
    assert s.needs_longer(1)
    s.record(1, [None, False])
    assert s.answer(0) is None
    assert s.answer(1) == 0
    assert not s.resolved(0)
    assert s.next() == 2  # tier 0 is still open: the ramp goes on


def test_the_ramp_stops_after_levels_that_judge_nothing() -> None:
    s = Search(1, max_agents=1024)
    measured = []
    while (n := s.next()) is not None:
        measured.append(n)
        s.record(n, [None])
        assert len(measured) < 20
    assert sorted(set(measured)) == [1, 2]  # each measured twice, then the ramp gave up
    assert s.answer(0) is None


def test_unjudged_levels_inside_a_bracket_leave_the_tier_unresolved() -> None:
    s = Search(1, max_agents=1024, resolution=Resolution(absolute=1), retries=0)
    verdicts = {1: True, 2: True, 4: True, 8: False}
    measured = []
    while (n := s.next()) is not None:
        measured.append(n)
        s.record(n, [verdicts.get(n)])  # every level between 4 and 8 judges nothing
    assert measured == [1, 2, 4, 8, 6, 5]
    assert s.answer(0) == 4
    assert s.bounds(0) == (4, 8)
    assert not s.resolved(0)


def test_repeats_measure_both_sides_of_the_boundary_and_give_an_interval() -> None:
    s = Search(1, max_agents=64, resolution=Resolution(absolute=1), repeats=3)
    measured = drive(s, [5])
    assert measured.count(5) == 3
    assert measured.count(6) == 3
    assert s.answer(0) == 5
    assert s.interval(0) == (5, 5)


def test_a_repeat_that_fails_moves_the_answer_down() -> None:
    s = Search(1, max_agents=64, resolution=Resolution(absolute=1), repeats=2)
    flaky = {5: [True, False]}  # 5 passes once, then fails: it is not a pass
    measured: list[int] = []
    while (n := s.next()) is not None:
        measured.append(n)
        outcomes = flaky.get(n)
        s.record(n, [outcomes.pop(0) if outcomes else n <= 4])
        assert len(measured) < 40
    assert s.answer(0) == 4
    assert s.judged(4, 0) == 2
    assert s.interval(0) == (4, 5)  # 5 passed once, so the capacity may reach it


def test_capacity_function_with_noise_free_search_is_logarithmic() -> None:
    cap: Callable[[int], bool] = lambda n: n <= 300  # noqa: E731
    s = Search(1, max_agents=10_000, resolution=Resolution(absolute=1))
    count = 0
    while (n := s.next()) is not None:
        s.record(n, [cap(n)])
        count += 1
    assert s.answer(0) == 300
    assert count <= 2 * 10 + 2


@pytest.mark.parametrize("spec", ["0%", "150%", "x", "0", "-3"])
def test_bad_resolutions_are_rejected(spec: str) -> None:
    with pytest.raises(ConfigError):
        parse_resolution(spec)


def test_search_errors_name_parameters_and_the_cli_says_flags() -> None:
    with pytest.raises(ConfigError) as info:
        Search(1, max_agents=0)
    assert str(info.value) == "max_agents must be at least 1, got 0"
    assert flagged(info.value) == "--max-agents must be at least 1, got 0"
    with pytest.raises(ConfigError) as info:
        parse_resolution("lots")
    assert flagged(info.value).startswith("--resolution 'lots': expected a percentage")


def test_short_levels_do_not_stop_the_ramp() -> None:
    # long think times: the smallest levels complete too few requests to judge, larger ones can
    s = Search(1, max_agents=1024, resolution=Resolution(absolute=1))
    measured = []
    while (n := s.next()) is not None:
        measured.append(n)
        s.record(n, [None if n < 16 else n <= 40], short=n < 16)
        assert len(measured) < 40
    assert measured[:10] == [1, 1, 2, 2, 4, 4, 8, 8, 16, 32]
    assert s.answer(0) == 40
    assert s.resolved(0)
