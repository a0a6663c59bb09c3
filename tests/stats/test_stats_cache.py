"""Hit-ratio rules on hand-computed corpora, and exactness against a brute-force LRU."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corpus import Reader
from stats import profile
from stats.cache import block_tokens

Build = Callable[..., Path]


def ratios(path: Path, capacities: list[int]) -> tuple[float, list[float]]:
    p = profile(path)
    return p.hits.ratio, [p.lru.ratio(c) for c in capacities]


# -- infinite cache: partial blocks, inherited prefixes, sharing across sessions ------------


def test_partial_last_block_counts_only_its_tokens(build: Build) -> None:
    # bs 4. Turn 1: 10 tokens = blocks a b c, c partial (2 tokens). Turn 2: 14 tokens keeps a b
    # (8 hit tokens) and rewrites c as a full block d plus a partial e (2 tokens): 6 miss.
    path = build(
        [
            {
                "turns": [
                    {"t": 0, "input": 10, "blocks": [1, 2, 3]},
                    {"t": 1, "input": 14, "blocks": [1, 2, 4, 5]},
                ]
            }
        ]
    )
    hit, _ = ratios(path, [])
    assert hit == pytest.approx(8 / 24)


def test_repeated_request_hits_its_partial_block_with_its_own_size(build: Build) -> None:
    # The same 10-token request twice: second time all 3 blocks hit = 4 + 4 + 2 tokens.
    path = build(
        [
            {
                "turns": [
                    {"t": 0, "input": 10, "blocks": [1, 2, 3]},
                    {"t": 1, "input": 10, "blocks": [1, 2, 3]},
                ]
            }
        ]
    )
    assert profile(path).hits.per_turn.tolist() == [0, 10]


def test_shared_prefix_across_sessions_hits_in_request_time_order(build: Build) -> None:
    # X1 at 0: [p q] 8 tokens; Y1 at 5: [p q r] 9 tokens (r: 1 token) -> p q hit = 8;
    # X2 at 10: inherits [p q] (8 hit), adds s (4 tokens, miss). 16 of 29 tokens hit.
    path = build(
        [
            {
                "start": 0,
                "turns": [
                    {"t": 0, "input": 8, "blocks": [1, 2]},
                    {"t": 10, "input": 12, "blocks": [1, 2, 4]},
                ],
            },
            {"start": 5, "turns": [{"t": 0, "input": 9, "blocks": [1, 2, 3]}]},
        ]
    )
    p = profile(path)
    assert p.hits.per_turn.tolist() == [0, 8, 8]
    assert p.hits.ratio == pytest.approx(16 / 29)


def test_a_session_starting_later_in_the_file_can_be_earlier_in_time(build: Build) -> None:
    # File order X then Y, but Y starts first: Y's blocks are the misses, X's the hits.
    path = build(
        [
            {"start": 10, "turns": [{"t": 0, "input": 8, "blocks": [1, 2]}]},
            {"start": 0, "turns": [{"t": 0, "input": 6, "blocks": [1, 3]}]},
        ]
    )
    assert profile(path).hits.per_turn.tolist() == [4, 0]


def test_tokens_beyond_the_last_block_always_miss(build: Build) -> None:
    # Blocks cover 8 tokens, the turn claims 20; repeated, only the 8 block tokens hit.
    path = build(
        [
            {
                "turns": [
                    {"t": 0, "input": 20, "blocks": [1, 2]},
                    {"t": 1, "input": 20, "blocks": [1, 2]},
                ]
            }
        ]
    )
    assert profile(path).hits.ratio == pytest.approx(8 / 40)


def test_block_tokens_rule() -> None:
    import numpy as np

    got = block_tokens(np.array([10, 10, 10, 10]), np.array([0, 1, 2, 3]), 4)
    assert got.tolist() == [4, 4, 2, 0]


# -- LRU: hand-computed stack distances ------------------------------------------------------


def test_lru_hand_computed(build: Build) -> None:
    # block_size 1, so capacity in tokens = blocks. Touches in request order:
    # A1 [s a1] | B1 [s b1] | A2 [s a1 a2]. Stack distances: B1.s = 1 (a1 since),
    # A2.s = 1 (b1 since), A2.a1 = 2 (s, b1 since). 7 input tokens.
    path = build(
        [
            {
                "start": 0,
                "turns": [
                    {"t": 0, "input": 2, "blocks": [1, 2]},
                    {"t": 10, "input": 3, "blocks": [1, 2, 4]},
                ],
            },
            {"start": 5, "turns": [{"t": 0, "input": 2, "blocks": [1, 3]}]},
        ],
        block_size=1,
    )
    hit, lru = ratios(path, [0, 1, 2, 3, 100])
    assert hit == pytest.approx(3 / 7)
    assert lru == pytest.approx([0, 0, 2 / 7, 3 / 7, 3 / 7])
    assert profile(path).lru.saturation_tokens == 3


def test_lru_evicts_a_long_prefix_within_one_request(build: Build) -> None:
    # One 6-block request repeated: each block's distance is 5 (the other five blocks), so a
    # 5-block cache hits nothing and a 6-block cache everything.
    blocks = [1, 2, 3, 4, 5, 6]
    path = build(
        [
            {
                "turns": [
                    {"t": 0, "input": 24, "blocks": blocks},
                    {"t": 1, "input": 24, "blocks": blocks},
                ]
            }
        ]
    )
    _, lru = ratios(path, [5 * 4, 6 * 4, 6 * 4 + 3])
    assert lru == pytest.approx([0, 0.5, 0.5])


def test_capacity_counts_whole_blocks_only(build: Build) -> None:
    path = build(
        [{"turns": [{"t": 0, "input": 4, "blocks": [1]}, {"t": 1, "input": 4, "blocks": [1]}]}]
    )
    _, lru = ratios(path, [3, 4, 7])
    assert lru == [0, 0.5, 0.5]


# -- ids that break the prefix rule ----------------------------------------------------------


def test_an_id_after_a_different_prefix_is_a_different_block(build: Build) -> None:
    # Block id 9 follows 1 in one session and 2 in the other: not the same prefix, no hit.
    path = build(
        [
            {"start": 0, "turns": [{"t": 0, "input": 8, "blocks": [1, 9]}]},
            {"start": 1, "turns": [{"t": 0, "input": 8, "blocks": [2, 9]}]},
        ]
    )
    p = profile(path)
    assert p.split
    assert p.hits.hit_tokens == 0


# -- exactness against brute force, and invariants, on random corpora ------------------------


@st.composite
def corpora(draw: st.DrawFn, chained: bool = True) -> tuple[list[dict[str, Any]], int]:
    """Random sessions whose blocks come from a small alphabet of contents, so prefixes are
    shared within and across sessions; ids are chained (one per distinct prefix) unless
    `chained` is False (then an id is just the content: the prefix rule breaks)."""
    bs = draw(st.sampled_from([1, 2, 4]))
    ids: dict[tuple[int, ...], int] = {}
    sessions = []
    for _ in range(draw(st.integers(1, 5))):
        content: list[int] = []
        turns = []
        t = 0.0
        for _ in range(draw(st.integers(1, 6))):
            if content and draw(st.booleans()):
                content = content[: draw(st.integers(0, len(content)))]
            content = content + draw(st.lists(st.integers(0, 2), max_size=4))
            if chained:
                blocks = [
                    ids.setdefault(tuple(content[: j + 1]), len(ids)) for j in range(len(content))
                ]
            else:
                blocks = list(content)
            if blocks:
                inp = (len(blocks) - 1) * bs + draw(st.integers(1, bs))
            else:
                inp = draw(st.integers(0, 3))
            inp += draw(st.sampled_from([0, 0, 0, bs + 1]))  # sometimes tokens beyond blocks
            t += draw(st.sampled_from([0.0, 0.5, 2.0]))
            turns.append({"t": t, "input": inp, "blocks": blocks})
        sessions.append({"start": draw(st.sampled_from([0.0, 1.0, 2.5, 4.0])), "turns": turns})
    return sessions, bs


def brute(path: Path, capacities: list[int]) -> tuple[float, list[float]]:
    """Plain LRU over (prefix) keys, every block of every request touched in order."""
    reader = Reader(path)
    bs = reader.header.block_size
    reqs = []
    for s in reader.sessions():
        last = -math.inf
        for k, (turn, full) in enumerate(zip(s.turns, s.prefixes(), strict=True)):
            last = max(last, turn.t)
            keys = [tuple(full[: j + 1]) for j in range(len(full))]
            reqs.append((s.start + last, s.id, k, turn.input, keys))
    reqs.sort(key=lambda r: r[:3])
    total = sum(r[3] for r in reqs)
    seen: set[tuple[int, ...]] = set()
    inf = 0
    for *_, inp, keys in reqs:
        inf += sum(min(bs, max(0, inp - j * bs)) for j, b in enumerate(keys) if b in seen)
        seen.update(keys)
    out = []
    for cap in capacities:
        cache: OrderedDict[tuple[int, ...], None] = OrderedDict()
        hit = 0
        for *_, inp, keys in reqs:
            for j, b in enumerate(keys):
                if b in cache:
                    hit += min(bs, max(0, inp - j * bs))
                    cache.move_to_end(b)
                else:
                    cache[b] = None
                    if len(cache) > cap // bs:
                        cache.popitem(last=False)
        out.append(hit / total if total else math.nan)
    return (inf / total if total else math.nan), out


CAPS = [0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 40, 64, 1000]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(corpora())
def test_hit_ratios_equal_brute_force(build: Build, case: tuple[list[dict[str, Any]], int]) -> None:
    sessions, bs = case
    path = build(sessions, bs)
    caps = [c * bs for c in CAPS]
    got, want = ratios(path, caps), brute(path, caps)
    assert [got[0], *got[1]] == pytest.approx([want[0], *want[1]], nan_ok=True)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(corpora(chained=False))
def test_hit_ratios_equal_brute_force_when_ids_break_the_prefix_rule(
    build: Build, case: tuple[list[dict[str, Any]], int]
) -> None:
    sessions, bs = case
    path = build(sessions, bs)
    caps = [c * bs for c in CAPS]
    got, want = ratios(path, caps), brute(path, caps)
    assert [got[0], *got[1]] == pytest.approx([want[0], *want[1]], nan_ok=True)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(corpora())
def test_lru_ratio_is_bounded_monotone_and_reaches_the_infinite_ratio(
    build: Build, case: tuple[list[dict[str, Any]], int]
) -> None:
    sessions, bs = case
    p = profile(build(sessions, bs))
    if math.isnan(p.hits.ratio):
        return
    curve = [p.lru.ratio(c * bs) for c in range(0, 64)]
    assert all(0 <= r <= 1 for r in curve)
    assert all(b >= a for a, b in zip(curve, curve[1:], strict=False))
    assert all(r <= p.hits.ratio + 1e-12 for r in curve)
    assert p.lru.ratio(p.lru.saturation_tokens) == pytest.approx(p.hits.ratio)
    assert p.lru.ratio(10**12) == pytest.approx(p.hits.ratio)
    assert 0 <= p.hits.ratio <= 1


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(corpora())
def test_long_gap_block_sums_and_chunking_give_the_same_ratios(
    build: Build, case: tuple[list[dict[str, Any]], int]
) -> None:
    # Tiny blocks, span and chunks so small corpora take every branch of the walk.
    from stats import cache

    sessions, bs = case
    path = build(sessions, bs)
    caps = [c * bs for c in CAPS]
    want = brute(path, caps)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cache, "_SHIFT", 1)
        mp.setattr(cache, "_SPAN", 1)
        mp.setattr(cache, "_CHUNK", 3)
        got = ratios(path, caps)
    assert [got[0], *got[1]] == pytest.approx([want[0], *want[1]], nan_ok=True)
