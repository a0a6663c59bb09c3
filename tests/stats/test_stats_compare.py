from __future__ import annotations

import math
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corpus import Reader
from stats import StatsError, compare, resolve
from stats.comparison import (
    THRESHOLDS,
    ks_verdict,
    overall,
    points_verdict,
    ratio_verdict,
    worst,
)

Build = Callable[..., Path]


def agents(
    n: int = 4,
    turns: int = 6,
    first: int = 2_000,
    growth: int = 500,
    output: int = 150,
    tool_wait: float = 1.0,
    bs: int = 64,
    shared: int = 0,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """`n` sessions whose context starts at `first` tokens and grows by `growth` a turn;
    the first `shared` blocks are the same in every session (a common system prompt)."""
    sessions = []
    next_id = 10_000 * (seed + 1)
    for s in range(n):
        blocks: list[int] = []
        ts = []
        t = 0.0
        for k in range(turns):
            tokens = first + k * growth
            # keep the full blocks of the previous turn (its partial tail is rewritten)
            blocks = list(range(shared)) if not k else blocks[: (tokens - growth) // bs]
            while len(blocks) * bs < tokens:
                blocks.append(next_id)
                next_id += 1
            blocks = blocks[: -(-tokens // bs)]
            t += tool_wait + 1.0
            ts.append(
                {
                    "t": t,
                    "input": tokens,
                    "output": output + s + k,
                    "blocks": list(blocks),
                    "after": "tool" if k else "start",
                    "wait": tool_wait if k else 0.0,
                }
            )
        sessions.append({"start": 10.0 * s, "turns": ts})
    return sessions


# -- thresholds ------------------------------------------------------------------------------


def test_ratio_verdict_thresholds_are_symmetric() -> None:
    assert THRESHOLDS["ratio_match"] == 1.5
    assert THRESHOLDS["ratio_far"] == 3.0
    assert [ratio_verdict(x) for x in (1.0, 1.5, 1 / 1.5, 1.51, 3.0, 1 / 3.0, 3.01, 1 / 3.01)] == [
        "match",
        "match",
        "match",
        "differs",
        "differs",
        "differs",
        "far",
        "far",
    ]
    assert ratio_verdict(0.0) == "far"
    assert ratio_verdict(math.inf) == "far"


def test_ks_and_points_thresholds() -> None:
    assert [ks_verdict(d) for d in (0.0, 0.15, 0.151, 0.40, 0.401, 1.0)] == [
        "match",
        "match",
        "differs",
        "differs",
        "far",
        "far",
    ]
    assert [points_verdict(d) for d in (0.0, -0.05, 0.051, 0.15, -0.151)] == [
        "match",
        "match",
        "differs",
        "differs",
        "far",
    ]


def test_worst_and_overall_rules() -> None:
    assert worst([]) == "match"
    assert worst(["match", "far", "differs"]) == "far"

    def m(v: str) -> dict[str, str]:
        return {"verdict": v}

    key_match = {"input": m("match"), "output": m("match"), "prefix_hit_ratio": m("match")}
    assert overall(key_match) == "match"
    assert overall({**key_match, "turns": m("differs")}) == "match"  # secondary may differ
    assert overall({**key_match, "turns": m("far")}) == "differs"  # but not be far
    assert overall({**key_match, "output": m("differs")}) == "differs"
    assert overall({**key_match, "new": m("far")}) == "far"


# -- compare(x, x) ---------------------------------------------------------------------------


@st.composite
def workloads(draw: st.DrawFn) -> list[dict[str, Any]]:
    return agents(
        n=draw(st.integers(1, 4)),
        turns=draw(st.integers(1, 5)),
        first=draw(st.integers(1, 5_000)),
        growth=draw(st.integers(0, 2_000)),
        output=draw(st.integers(0, 500)),
        tool_wait=draw(st.sampled_from([0.0, 0.3, 2.0])),
        bs=draw(st.sampled_from([16, 64])),
        shared=draw(st.integers(0, 3)),
    )


def _figures(summ: dict[str, Any]) -> dict[str, Any]:
    """A summary without its intervals (each corpus is resampled with its own seed)."""
    return {k: v for k, v in summ.items() if not k.endswith("_interval")}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workloads())
def test_a_corpus_matches_itself_perfectly(build: Build, sessions: list[dict[str, Any]]) -> None:
    path = build(sessions, 64)
    got = compare(path, reference=path, min_sessions=1)
    assert got["verdict"] == "match"
    for name, m in got["metrics"].items():
        assert m["verdict"] == "match", name
        if name != "prefix_hit_ratio":
            assert m["ks"] == 0
            assert _figures(m["yours"]) == _figures(m["reference"])
    assert got["implications"][0].startswith("no metric differs")


def test_a_table_can_be_the_reference(build: Build) -> None:
    path = build(agents())
    assert compare(path, reference=Reader(path).table(), min_sessions=1)["verdict"] == "match"


# -- against corpora and published figures ---------------------------------------------------


def test_longer_inputs_are_far_and_explained(build: Build) -> None:
    mine = build(agents(first=40_000, growth=4_000, seed=1), 64)
    ref = build(agents(first=8_000, growth=1_000, seed=2), 64)
    got = compare(mine, reference=ref, min_sessions=1)
    m = got["metrics"]["input"]
    assert m["verdict"] == "far"
    assert m["median_ratio"] == pytest.approx(50_000 / 10_500, rel=0.2)
    assert m["ks"] == 1.0
    assert got["verdict"] == "far"
    line = next(x for x in got["implications"] if x.startswith("inputs"))
    assert "longer at the median" in line
    assert "fewer agents per MW" in line


def test_lower_prefix_reuse_is_reported_in_points_and_prefill_factor(build: Build) -> None:
    # Reference: long shared prompt and growing contexts (high reuse). Yours: every turn
    # fresh (no block seen before), so nothing is reused.
    ref = build(agents(shared=30, first=2_000, growth=100, seed=3), 64)
    fresh = agents(first=2_000, growth=100, seed=4)
    ids = iter(range(900_000, 10**9))
    for sess in fresh:
        for turn in sess["turns"]:
            turn["blocks"] = [next(ids) for _ in turn["blocks"]]
    got = compare(build(fresh, 64), reference=ref, min_sessions=1)
    hit = got["metrics"]["prefix_hit_ratio"]
    assert hit["yours"] == 0
    assert hit["verdict"] == "far"
    line = next(x for x in got["implications"] if x.startswith("prefix reuse"))
    assert line.startswith(f"prefix reuse 0 % vs {hit['reference'] * 100:.0f} % → less KV reuse")
    assert "more input tokens to prefill per input token" in line


def test_published_figures_judge_inputs_by_mean_and_range(build: Build) -> None:
    # AA: mean ≈ 27K, 5K–131K. Inputs of 108K+ are 4× the mean: far.
    got = compare(
        build(agents(first=108_000, growth=0, output=150), 64),
        reference="agentperf-published",
        min_sessions=1,
    )
    m = got["metrics"]["input"]
    assert m["basis"] == "published"
    checks = {c["check"]: c for c in m["published"]["checks"]}
    assert checks["mean"]["ratio"] == pytest.approx(4.0)
    assert checks["mean"]["verdict"] == "far"
    assert checks["range"]["share_within"] == 1.0
    assert m["verdict"] == "far"
    assert "new" in got["skipped"]  # AA published nothing about it
    assert any(x.startswith("inputs 4.0× longer on average") for x in got["implications"])


def test_published_tool_waits_and_floor(build: Build) -> None:
    got = compare(
        build(agents(tool_wait=10.0, first=50_000, growth=20_000), 64),
        reference="agentperf-published",
        min_sessions=1,
    )
    wait = got["metrics"]["tool_wait"]
    assert wait["verdict"] == "far"  # median 10 s vs 1 s, none within 0.1–5 s
    assert any(x.startswith("tool waits 10× longer at the median") for x in got["implications"])
    floor = got["metrics"]["final_context"]["published"]["checks"][0]
    assert floor["check"] == "floor"
    assert floor["verdict"] == "match"  # 150K > 100K


# -- resolving references --------------------------------------------------------------------


def test_unknown_reference_names_the_choices() -> None:
    with pytest.raises(StatsError, match="'nope': not a bundled reference .*claude-code"):
        resolve("nope")


@pytest.fixture
def fake_bundle(build: Build) -> Iterator[dict[str, Path]]:
    paths: dict[str, Path] = {"coding": build(agents(seed=5), 64)}
    mod = types.ModuleType("corpus.reference")

    def path(name: str) -> Path:
        return paths.get(name, Path("/nonexistent") / f"{name}.zst")

    mod.path = path  # type: ignore[attr-defined]
    old = sys.modules.get("corpus.reference")
    sys.modules["corpus.reference"] = mod
    yield paths
    if old is None:
        del sys.modules["corpus.reference"]
    else:
        sys.modules["corpus.reference"] = old


def test_coding_uses_published_figures_and_the_coding_corpus(
    build: Build, fake_bundle: dict[str, Path]
) -> None:
    ref = resolve("coding")
    assert ref.corpus == str(fake_bundle["coding"])
    assert "input" in ref.published
    got = compare(build(agents(seed=6), 64), min_sessions=1)
    assert got["reference"]["name"] == "coding"
    assert got["metrics"]["input"]["basis"] == "both"
    assert got["metrics"]["input"]["ks"] is not None  # the corpus is there too
    assert got["metrics"]["new"]["basis"] == "corpus"


def test_missing_bundled_corpus_is_a_clear_error(fake_bundle: dict[str, Path]) -> None:
    with pytest.raises(StatsError, match="reference 'support': bundled corpus .* is missing"):
        resolve("support")


def test_coding_without_bundled_corpora_falls_back_to_published_figures(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "corpus.reference", None)  # import fails
    ref = resolve("coding")
    assert ref.corpus is None
    assert ref.published
    assert "published figures only" in ref.notes[0]
