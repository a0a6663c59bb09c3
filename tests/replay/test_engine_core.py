"""The simulated engine without HTTP: output text, profiles, prefix cache, power, scheduling."""

from __future__ import annotations

import asyncio
import inspect
import re
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corpus.tokenizer import encode
from replay import virtual
from replay.engine import (
    PROFILES,
    ContextLengthExceeded,
    Engine,
    Overloaded,
    PrefixCache,
    profiles,
)
from replay.engine.cache import block_hashes
from replay.engine.output import WORDS, natural_length, text
from replay.engine.power import PowerMeter

H100 = PROFILES["h100"]
FAST = msgspec.structs.replace(H100, name="fast")  # h100 logic; tests pass time_scale=0


def test_every_output_word_is_one_cl100k_token() -> None:
    assert len(set(WORDS)) == len(WORDS) > 30
    for word in WORDS:
        assert len(encode(word)) == 1, word


@pytest.mark.parametrize("count", [1, 2, 7, len(WORDS) + 5, 1000])
def test_generated_text_has_exactly_count_tokens(count: int) -> None:
    assert len(encode(text(0, count))) == count
    cut = count // 2
    assert text(0, count) == text(0, cut) + text(cut, count - cut)


def test_natural_length_is_seeded_and_prompt_derived() -> None:
    assert natural_length(42, 0, 150) == natural_length(42, 0, 150)
    lengths = [natural_length(k, 0, 150) for k in range(2000)]
    assert min(lengths) >= 1
    assert 100 < sorted(lengths)[1000] < 220  # median near 150
    assert lengths != [natural_length(k, 1, 150) for k in range(2000)]


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_profiles_are_documented_and_sane(name: str) -> None:
    p = PROFILES[name]
    assert p.name == name
    assert p.description
    assert p.kv_capacity_tokens >= p.max_context >= p.default_max_tokens
    assert p.idle_power_w <= p.power(1) <= p.power(10**6) == p.max_power_w
    if name == "instant":
        assert p.instant
        assert p.step_time(1000, 1000, 10**6) == 0
    else:
        assert not p.instant
        # More sequences, more prefill and more KV each make a step slower.
        assert p.step_time(0, 16, 0) > p.step_time(0, 1, 0) > 0
        assert p.step_time(512, 1, 0) > p.step_time(0, 1, 0)
        assert p.step_time(0, 1, 100_000) > p.step_time(0, 1, 0)


def test_every_profile_parameter_has_a_docstring() -> None:
    source = inspect.getsource(profiles)
    for field in msgspec.structs.fields(profiles.Profile):
        assert re.search(rf'\n    {field.name}: [^\n]+\n    """\S', source), field.name


def test_power_meter_integrates_piecewise_power() -> None:
    meter = PowerMeter(100.0, now=0.0)
    meter.set(500.0, now=2.0)
    assert meter.energy_j(3.0) == pytest.approx(100 * 2 + 500 * 1)
    meter.set(100.0, now=4.0)
    assert meter.energy_j(4.0) == pytest.approx(1200)


def test_prefix_cache_hits_shared_prefix_and_evicts_lru_tail_first() -> None:
    cache = PrefixCache(capacity=8)
    a = block_hashes(list(range(64)), 16)  # 4 blocks
    assert cache.match(a) == 0
    assert cache.reserve(a, 0, 5)
    cache.register(a, 0)
    assert (cache.private, cache.cached, cache.pinned) == (1, 4, 5)
    cache.release(a, 1)
    assert (cache.pinned, cache.evictable) == (0, 4)
    b = block_hashes(list(range(32)) + [9] * 32, 16)  # shares 2 blocks with a
    assert cache.match(b) == 2
    assert cache.reserve(b, 2, 7)  # 5 new blocks: 4 free + evict 1 (a's tail block)
    assert cache.match(a) == 3
    assert cache.pinned == 7
    assert not cache.reserve(a, 0, 4)  # 1 free + 1 evictable < 4
    assert cache.pinned == 7


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.integers(1, 120), st.integers(1, 40), st.booleans()),
        min_size=1,
        max_size=30,
    )
)
def test_prefix_cache_accounting_invariants(requests: list[tuple[int, int, int, bool]]) -> None:
    cache = PrefixCache(capacity=24)
    live: list[tuple[list[int], int, int]] = []
    for family, length, out, finish_first in requests:
        if finish_first and live:
            hashes, pinned, private = live.pop(0)
            cache.release(hashes[:pinned], private)
        ids = [family] * length
        hashes = block_hashes(ids, 16)
        blocks = -(-(length + out) // 16)
        hit = cache.match(hashes, (length - 1) // 16)
        if cache.reserve(hashes, hit, blocks):
            cache.register(hashes, hit)
            live.append((hashes, len(hashes), blocks - len(hashes)))
        assert 0 <= cache.pinned <= cache.used <= cache.capacity
    for hashes, pinned, private in live:
        cache.release(hashes[:pinned], private)
    assert cache.pinned == 0
    assert cache.private == 0


async def test_ignore_eos_generates_exactly_max_tokens() -> None:
    async with Engine(FAST, time_scale=0) as engine:
        gen = engine.submit(list(range(100)), max_tokens=37, ignore_eos=True)
        chunks = [n async for n in gen]
        assert sum(chunks) == gen.generated == 37
        assert gen.finish_reason == "length"


async def test_natural_stop_respects_min_tokens_and_repeats_per_prompt() -> None:
    async with Engine(FAST, time_scale=0, seed=7) as engine:
        prompt = list(range(300))
        first = engine.submit(prompt, max_tokens=100_000 - 300)
        await first.wait()
        again = engine.submit(prompt, max_tokens=100_000 - 300)
        await again.wait()
        assert first.generated == again.generated < 100_000 - 300
        assert first.finish_reason == "stop"
        floor = engine.submit(prompt, max_tokens=5000, min_tokens=first.generated + 10)
        await floor.wait()
        assert floor.generated >= first.generated + 10


async def test_second_request_with_shared_prefix_skips_cached_blocks() -> None:
    async with Engine(FAST, time_scale=0) as engine:
        shared = list(range(1000))
        a = engine.submit(shared + [1, 2, 3], max_tokens=4, ignore_eos=True)
        await a.wait()
        b = engine.submit(shared + [4, 5, 6, 7], max_tokens=4, ignore_eos=True)
        await b.wait()
        assert a.cached_tokens == 0
        assert b.cached_tokens == 992  # whole 16-token blocks of the shared 1000
        stats = engine.stats()
        assert stats.prefix_cache_hits_total == 992
        assert stats.prefix_cache_queries_total == 2007
        assert stats.kv_blocks_used == 0
        assert stats.running == stats.waiting == 0


async def test_long_prompt_prefills_in_chunks_of_the_budget() -> None:
    async with Engine(FAST, time_scale=0) as engine:
        gen = engine.submit(list(range(20_000)), max_tokens=1, ignore_eos=True)
        await gen.wait()
        assert engine.stats().steps_total == 3  # 8192 + 8192 + 3616


async def test_requests_queue_when_kv_is_full_and_run_when_it_frees() -> None:
    small = msgspec.structs.replace(FAST, kv_capacity_tokens=64)
    async with Engine(small, time_scale=0) as engine:
        first = engine.submit(list(range(40)), max_tokens=20, ignore_eos=True)  # 4 blocks
        second = engine.submit(list(range(100, 140)), max_tokens=20, ignore_eos=True)
        assert engine.stats().running == 1
        assert engine.stats().waiting == 1
        await first.wait()
        await second.wait()
        assert second.generated == 20


async def test_full_queue_rejects_with_overloaded() -> None:
    one = msgspec.structs.replace(FAST, max_batch=1)
    async with Engine(one, time_scale=0, max_queue=1) as engine:
        gens = [engine.submit([i] * 20, max_tokens=5, ignore_eos=True) for i in range(2)]
        with pytest.raises(Overloaded, match="--max-queue 1"):
            engine.submit([9] * 20, max_tokens=5)
        await asyncio.gather(*(g.wait() for g in gens))


async def test_oversized_requests_are_rejected_up_front() -> None:
    async with Engine(FAST, time_scale=0) as engine:
        with pytest.raises(ContextLengthExceeded, match="maximum context length is 131072"):
            engine.submit([1] * 131_000, max_tokens=1000)
    tiny = msgspec.structs.replace(FAST, kv_capacity_tokens=1024)
    async with Engine(tiny, time_scale=0) as engine:
        with pytest.raises(ContextLengthExceeded, match="KV-cache tokens"):
            engine.submit([1] * 1000, max_tokens=100, ignore_eos=True)


async def test_cancel_frees_kv_blocks() -> None:
    async with Engine(FAST, time_scale=0) as engine:
        gen = engine.submit(list(range(500)), max_tokens=10_000, ignore_eos=True)
        async for _ in gen:
            break
        gen.cancel()
        for _ in range(3):
            await asyncio.sleep(0)
        stats = engine.stats()
        assert stats.kv_blocks_used == 0
        assert stats.running == 0
        assert stats.requests_finished["abort"] == 1


def test_energy_grows_faster_while_busy() -> None:
    # Virtual time: the energy counter integrates the loop's clock, so wall-clock windows (a
    # sleep that overshoots on a loaded machine) would change the figures being compared.
    async def main() -> tuple[list[float], list[float], float]:
        loop = asyncio.get_running_loop()
        async with Engine(H100) as engine:
            t0, before = loop.time(), engine.stats()
            await engine.submit(list(range(4000)), max_tokens=20, ignore_eos=True).wait()
            t1, busy = loop.time(), engine.stats()
            await asyncio.sleep(1.0)
            t2, idle = loop.time(), engine.stats()
        return [t0, t1, t2], [before.energy_j, busy.energy_j, idle.energy_j], idle.power_w

    (t0, t1, t2), (e0, e1, e2), idle_w = virtual.run(main())
    assert idle_w == H100.idle_power_w
    assert t1 > t0
    assert e2 - e1 == pytest.approx(H100.idle_power_w * (t2 - t1))
    assert (e1 - e0) / (t1 - t0) > 2 * H100.idle_power_w


def test_engine_readme_documents_every_profile_and_parameter() -> None:
    readme = (Path(profiles.__file__).parent / "README.md").read_text()
    assert "Not calibrated" in readme
    for name in PROFILES:
        assert f"`{name}`" in readme
    for field in msgspec.structs.fields(profiles.Profile):
        if field.name not in ("name", "description", "model", "gpu_name"):
            assert field.name in readme, field.name
