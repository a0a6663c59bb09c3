"""Prompt synthesis: exact ids, stable text token counts, shared prefixes, run-tag isolation."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corpus.tokenizer import encode
from replay.prompts import ID_LIMIT, Context, Synth, vocabulary

BS = 64


def synth(tag: str = "run", shared: set[int] | None = None) -> Synth:
    return Synth(block_size=BS, tag=tag, shared=shared)


def test_vocabulary_is_single_token_words_below_the_id_limit() -> None:
    v = vocabulary()
    assert len(v.ids) > 5000
    assert int(v.ids.max()) < ID_LIMIT
    for i, w in zip(v.ids[:200].tolist(), v.words[:200].tolist(), strict=True):
        assert w.startswith(" ")
        assert encode(w) == [i]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=8000), min_size=1, max_size=300))
def test_any_concatenation_of_vocabulary_words_retokenizes_to_its_ids(picks: list[int]) -> None:
    v = vocabulary()
    ids = [int(v.ids[p % len(v.ids)]) for p in picks]
    text = "".join(v.words[p % len(v.ids)] for p in picks)
    assert encode(text) == ids


def test_completions_prompt_has_exactly_the_recorded_token_count() -> None:
    ctx = Context(synth(), "ids")
    for tokens in (1, 63, 64, 65, 1000, 12_345):
        blocks = list(range(-(-tokens // BS)))
        p = ctx.build(blocks, tokens, scope=0)
        assert p.ids is not None
        assert len(p.ids) == tokens
        assert p.text is None


@pytest.mark.parametrize("tokens", [10, 64, 100, 777, 5000, 30_001])
def test_chat_text_tokenizes_to_the_recorded_count_minus_the_role_marker(tokens: int) -> None:
    s = synth()
    ctx = Context(s, "text")
    p = ctx.build(list(range(-(-tokens // BS))), tokens, scope=0)
    assert p.text is not None
    n = len(encode(p.text))
    assert n == tokens - s.template
    # the server adds its own chat template: with our role marker the count is exact
    assert abs(len(encode("<|user|>" + p.text)) - tokens) <= 0.01 * tokens


def test_text_and_ids_forms_carry_the_same_tokens() -> None:
    s = synth()
    blocks = [5, 6, 7]
    ids = Context(s, "ids").build(blocks, 150, scope=3).ids
    text = Context(s, "text", template=0).build(blocks, 150, scope=3).text
    assert text is not None
    assert encode(text) == ids


def test_shared_blocks_are_byte_identical_across_agents_and_private_ones_differ() -> None:
    s = synth(shared={0, 1})
    a = Context(s, "text", template=0).build([0, 1, 2, 3], 4 * BS, scope=1)
    b = Context(s, "text", template=0).build([0, 1, 2, 3], 4 * BS, scope=2)
    assert a.text is not None
    assert b.text is not None
    ta, tb = encode(a.text), encode(b.text)
    assert ta[: 2 * BS] == tb[: 2 * BS]
    assert ta[2 * BS :] != tb[2 * BS :]


def test_without_a_shared_set_every_block_ignores_the_scope() -> None:
    s = synth(shared=None)
    a = Context(s, "ids").build([0, 1, 2], 3 * BS, scope=1).ids
    b = Context(s, "ids").build([0, 1, 2], 3 * BS, scope=2).ids
    assert a == b


def test_run_tags_isolate_runs() -> None:
    a = Context(synth("one"), "ids").build([0, 1], 2 * BS, scope=0).ids
    b = Context(synth("two"), "ids").build([0, 1], 2 * BS, scope=0).ids
    assert a is not None
    assert b is not None
    assert a[:BS] != b[:BS]


def test_next_prompt_extends_the_previous_one_exactly_as_recorded() -> None:
    ctx = Context(synth(), "text", template=0)
    first = ctx.build([0, 1, 2], 3 * BS, scope=0).text
    second = ctx.build([0, 1, 2, 3, 4], 5 * BS, scope=0).text
    assert first is not None
    assert second is not None
    assert second.startswith(first)
    # a turn that keeps only the first block diverges right after it
    third = ctx.build([0, 9], 2 * BS, scope=0).text
    assert third is not None
    assert encode(third)[:BS] == encode(first)[:BS]
    assert encode(third)[BS:] != encode(first)[BS : 2 * BS]


def test_partial_last_block_is_the_head_of_its_block_content() -> None:
    s = synth()
    whole = Context(s, "ids").build([0, 1], 2 * BS, scope=0).ids
    part = Context(s, "ids").build([0, 1], BS + 10, scope=0).ids
    assert whole is not None
    assert part == whole[: BS + 10]


def test_missing_blocks_are_padded_to_the_recorded_count() -> None:
    p = Context(synth(), "ids").build([0], 3 * BS + 5, scope=0)
    assert p.ids is not None
    assert len(p.ids) == 3 * BS + 5


def test_ideal_cache_counts_leading_full_blocks_already_sent() -> None:
    s = synth(shared={0})
    a = Context(s, "ids")
    assert a.build([0, 1], 2 * BS, scope=0).ideal_cached == 0
    assert a.build([0, 1, 2], 3 * BS, scope=0).ideal_cached == 2 * BS
    b = Context(s, "ids")  # another agent: only the shared block was seen
    assert b.build([0, 7], 2 * BS, scope=5).ideal_cached == BS


def test_block_content_is_spread_over_the_vocabulary() -> None:
    s = synth()
    ids = Context(s, "ids").build(list(range(100)), 100 * BS, scope=0).ids
    assert ids is not None
    assert len(set(ids)) > 3000
    rng = random.Random(0)
    sample = rng.sample(ids, 500)
    assert np.isin(sample, s.vocab.ids).all()


def test_long_runs_of_seeds_match_the_per_block_arithmetic() -> None:
    synth = Synth(block_size=64, tag="x", shared={1, 5, 7})
    blocks = [*range(200), -3]
    short = [s for i in range(0, len(blocks), 10) for s in synth.seeds(blocks[i : i + 10], 12)]
    assert synth.seeds(blocks, 12) == short


@pytest.mark.parametrize("cut", [0, 1, 63, 64, 65, 200, 299])
def test_a_rewritten_context_keeps_exactly_the_blocks_before_the_change(cut: int) -> None:
    s = synth(shared=set(range(0, 300, 7)))
    ctx = Context(s, "blocks")
    old = list(range(300))
    ctx.build(old, 300 * BS, scope=1)
    new = old[:cut] + [1000 + i for i in range(300 - cut)]  # the conversation rewrote here
    p = ctx.build(new, 300 * BS, scope=1)
    fresh = Context(s, "blocks").build(new, 300 * BS, scope=1)
    assert p.blocks == fresh.blocks
    assert p.blocks is not None
    assert p.blocks[:cut] == s.seeds(old[:cut], 1)
    assert p.ideal_cached == cut * BS  # the blocks before the change were sent already
