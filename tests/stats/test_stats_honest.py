"""Honest counts and samples: provider counts, intervals, too few sessions, --top-level, and a
corpus drawn like the reference judged as such."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from corpus import synth
from stats import compare, describe
from stats.comparison import TOO_FEW, ratio_verdict

Build = Callable[..., Path]


def sessions(
    n: int, *, first: int = 4_000, growth: int = 800, usage_extra: int | None = None, seed: int = 0
) -> list[dict[str, Any]]:
    """`n` sessions of 6 turns whose context grows by `growth`; with `usage_extra`, the
    provider reports that many more input tokens on every turn (a missing system prompt)."""
    out = []
    ids = iter(range(100_000 * (seed + 1), 10**9))
    for s in range(n):
        blocks: list[int] = []
        turns = []
        for k in range(6):
            tokens = first + k * growth
            blocks = blocks[: (tokens - growth) // 64] if k else []
            while len(blocks) * 64 < tokens:
                blocks.append(next(ids))
            turn: dict[str, Any] = {
                "t": 2.0 * k,
                "input": tokens,
                "output": 100 + (s * 7 + k * 13) % 200,
                "blocks": list(blocks),
                "after": "tool" if k else "start",
                "wait": 1.0 + ((s + k) % 5) * 0.2 if k else 0.0,
            }
            if usage_extra is not None:
                turn["usage_input"] = tokens + usage_extra
            turns.append(turn)
        out.append({"start": 5.0 * s, "turns": turns})
    return out


def test_provider_counts_replace_a_transcripts_missing_prompt(build: Build) -> None:
    # The transcript lacks a 30K-token system prompt and tools the provider counted.
    path = build(sessions(25, usage_extra=30_000), 64)
    d = describe(path)
    assert d["tokens"]["basis"] == "provider"
    assert d["tokens"]["reason"] == "missing"
    assert d["tokens"]["provider_ratio"] > 5
    assert d["tokens"]["tokenizer"] == "cl100k_base"
    assert "the provider's usage" in d["notes"][0]
    assert d["turn"]["input"]["p50"] > 30_000  # the provider's count, not the transcript's
    assert d["turn"]["new"]["p50"] < 1_000  # the missing prompt is a reused prefix
    local = describe(build(sessions(25), 64))
    assert local["tokens"]["basis"] == "local"
    assert local["turn"]["input"]["p50"] < 10_000


def test_counts_within_five_percent_stay_local(build: Build) -> None:
    d = describe(build(sessions(3, usage_extra=100), 64))
    assert d["tokens"]["basis"] == "local"
    assert "within 5%" in d["tokens"]["note"]


def test_every_compared_figure_has_an_interval(build: Build) -> None:
    got = compare(build(sessions(25), 64), reference=build(sessions(25, growth=400, seed=1), 64))
    for name, m in got["metrics"].items():
        if name == "prefix_hit_ratio":
            lo, hi = m["difference_interval"]
            assert lo <= m["difference"] <= hi
            continue
        lo, hi = m["yours"]["p50_interval"]
        assert lo <= m["yours"]["p50"] <= hi, name
        if m["median_ratio"] is not None:
            lo, hi = m["median_ratio_interval"]
            assert lo <= m["median_ratio"] <= hi, name
    assert got["interval"].startswith("90 %")


def test_a_handful_of_sessions_is_too_few_to_judge(build: Build) -> None:
    small = build(sessions(3, first=60_000), 64)
    got = compare(small, reference=build(sessions(25, seed=1), 64))
    assert got["verdict"] == TOO_FEW
    assert all(m["verdict"] == TOO_FEW for m in got["metrics"].values())
    assert got["implications"] == ["too few sessions to judge: 3 sessions, at least 20 needed"]
    judged = compare(small, reference=build(sessions(25, seed=2), 64), min_sessions=3)
    assert judged["metrics"]["input"]["verdict"] == "far"


def test_top_level_leaves_sub_agents_out(build: Build) -> None:
    corpus = sessions(21)
    corpus += [{**s, "parent": i} for i, s in enumerate(sessions(4, first=50_000, seed=3))]
    path = build(corpus, 64)
    assert describe(path)["counts"]["sessions"] == 25
    got = compare(path, reference=path, top_level=True)
    assert got["sessions"] == 21
    assert any("4 sub-agent sessions left out" in n for n in got["notes"])
    assert got["verdict"] == "match"


def test_ratio_verdicts_judge_what_the_interval_allows() -> None:
    assert ratio_verdict(1.4, 0.9, 2.6) == "match"
    assert ratio_verdict(2.0, 1.3, 2.6) == "differs"
    assert ratio_verdict(3.5, 1.3, 4.6) == "differs"  # the sample can't tell it is beyond 3×
    assert ratio_verdict(4.0, 2.5, 5.0) == "differs"  # not surely beyond 3×
    assert ratio_verdict(4.0, 3.5, 5.0) == "far"
    assert ratio_verdict(0.2, 0.1, 0.3) == "far"


@pytest.mark.parametrize("seed", [11, 12])
def test_a_corpus_drawn_like_the_reference_has_no_metric_judged_far(
    tmp_path: Path, seed: int
) -> None:
    path = tmp_path / "like.zst"
    synth.generate(synth.coding(), path, n=30, seed=seed)
    got = compare(path)  # the default reference: coding
    assert got["verdict"] in ("match", "differs")
    far = [name for name, m in got["metrics"].items() if m["verdict"] == "far"]
    assert not far


def test_real_claude_code_sessions_are_far_from_the_reference() -> None:
    from corpus import reference

    got = compare(reference.path("example"))
    assert got["metrics"]["tool_wait"]["verdict"] == "far"  # 8 s vs ≈ 1 s
    assert got["metrics"]["input"]["median_ratio"] > 1.3
