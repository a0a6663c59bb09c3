from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import stats
from corpus import Reader
from stats.arrays import arrivals, grouped_percentiles, layout, session_metrics, turn_metrics

Build = Callable[..., Path]

# block_size 4. Session 0: turn 0 has 10 tokens in blocks [0, 1, 2] (block 2 partial, 2 tokens);
# turn 1 keeps blocks 0-1 and rewrites the partial one: reuse 2 -> 8 reused, 6 new tokens.
TWO_SESSIONS = [
    {
        "start": 0.0,
        "turns": [
            {
                "t": 0.0,
                "input": 10,
                "output": 5,
                "blocks": [0, 1, 2],
                "ttft": 0.5,
                "duration": 1.5,
                "stop": "tool_use",
            },
            {
                "t": 3.0,
                "input": 14,
                "output": 20,
                "blocks": [0, 1, 3, 4],
                "after": "tool",
                "wait": 1.5,
                "ttft": 1.0,
                "duration": 3.0,
                "stop": "end_turn",
            },
        ],
    },
    {
        "start": 100.0,
        "parent": 0,
        "turns": [
            {"t": 0.0, "input": 8, "output": 2, "blocks": [0, 1]},
            {"t": 10.0, "input": 9, "output": 1, "blocks": [0, 1, 5], "after": "user", "wait": 9.0},
        ],
    },
]


def test_turn_metrics_split_reused_and_new_tokens(build: Build) -> None:
    table = Reader(build(TWO_SESSIONS)).table()
    t = turn_metrics(table)
    assert t.reused.tolist() == [0, 8, 0, 8]
    assert t.new.tolist() == [10, 6, 8, 1]
    assert t.reuse_ratio[1] == pytest.approx(8 / 14)
    assert t.reuse_ratio[3] == pytest.approx(8 / 9)


def test_waits_split_by_what_filled_them(build: Build) -> None:
    t = turn_metrics(Reader(build(TWO_SESSIONS)).table())
    assert t.waits("tool").tolist() == [1.5]
    assert t.waits("user").tolist() == [9.0]
    assert t.waits("start").tolist() == [0.0, 0.0]


def test_speed_only_where_ttft_and_duration_were_captured(build: Build) -> None:
    t = turn_metrics(Reader(build(TWO_SESSIONS)).table())
    assert t.speed[:2].tolist() == [5.0, 10.0]  # 5 / (1.5 - 0.5), 20 / (3 - 1)
    assert np.isnan(t.speed[2:]).all()


def test_session_metrics(build: Build) -> None:
    table = Reader(build(TWO_SESSIONS)).table()
    lay = layout(table)
    s = session_metrics(table, lay, turn_metrics(table))
    assert s.turns.tolist() == [2, 2]
    assert s.duration.tolist() == [6.0, 10.0]  # max(t + duration); missing durations count 0
    assert s.final_context.tolist() == [34, 10]
    assert s.input.tolist() == [24, 17]
    assert s.output.tolist() == [25, 3]
    assert s.subagents.tolist() == [1, 0]
    assert s.is_subagent.tolist() == [False, True]


def test_arrivals_gaps_and_concurrency(build: Build) -> None:
    table = Reader(build(TWO_SESSIONS)).table()
    lay = layout(table)
    a = arrivals(session_metrics(table, lay, turn_metrics(table)))
    assert a.gaps.tolist() == [100.0]
    assert a.concurrency_max == 1
    assert a.span == 110.0
    assert a.concurrency_mean == pytest.approx((6 + 10) / 110)


def test_overlapping_sessions_count_together_but_touching_ones_do_not(build: Build) -> None:
    sessions = [
        {"start": 0.0, "turns": [{"t": 0.0, "input": 1, "duration": 10.0}]},
        {"start": 5.0, "turns": [{"t": 0.0, "input": 1, "duration": 10.0}]},
        {"start": 15.0, "turns": [{"t": 0.0, "input": 1, "duration": 1.0}]},  # starts at an end
    ]
    table = Reader(build(sessions)).table()
    lay = layout(table)
    assert arrivals(session_metrics(table, lay, turn_metrics(table))).concurrency_max == 2


def test_request_order_is_start_plus_t_and_never_goes_back_within_a_session(
    build: Build,
) -> None:
    sessions = [
        {
            "start": 0.0,
            "turns": [{"t": 0.0, "input": 1}, {"t": 50.0, "input": 1}, {"t": 20.0, "input": 1}],
        },  # clock went back: stays at 50
        {"start": 30.0, "turns": [{"t": 0.0, "input": 1}]},
    ]
    lay = layout(Reader(build(sessions)).table())
    assert lay.time.tolist() == [0.0, 50.0, 50.0, 30.0]
    assert lay.order.tolist() == [0, 3, 1, 2]
    assert lay.prev.tolist() == [-1, 0, 1, -1]


def test_grouped_percentiles_per_turn_number() -> None:
    values = np.array([1.0, 3.0, 10.0, 5.0, 7.0])
    group = np.array([0, 0, 1, 0, 2])
    counts, pct = grouped_percentiles(values, group, (0, 50, 100), 4)
    assert counts.tolist() == [3, 1, 1, 0]
    assert pct[0].tolist() == [1.0, 3.0, 5.0]
    assert pct[1].tolist() == [10.0, 10.0, 10.0]
    assert np.isnan(pct[3]).all()


def test_corpus_without_timings_reports_waits_as_missing_not_zero(build: Build) -> None:
    untimed = build(
        [
            {
                "turns": [
                    {"t": 0.0, "input": 4, "blocks": [0]},
                    {"t": 0.0, "input": 8, "after": "tool", "blocks": [0, 1]},
                ]
            }
        ]
    )
    doc = stats.describe(untimed)
    assert doc["turn"]["wait"]["tool"]["n"] == 0
    assert any("no timings recorded" in note for note in doc["notes"])
    timed = build(
        [
            {
                "turns": [
                    {"t": 0.0, "input": 4, "blocks": [0]},
                    {"t": 1.0, "input": 8, "after": "tool", "blocks": [0, 1]},
                ]
            }
        ]
    )
    doc = stats.describe(timed)
    assert doc["turn"]["wait"]["tool"]["n"] == 1
    assert doc["turn"]["wait"]["tool"]["p50"] == 0.0
    assert not any("no timings recorded" in note for note in doc["notes"])
