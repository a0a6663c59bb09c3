"""The engine core on virtual time: the burst driver (a forecast's) and the step-by-step driver
(`replay serve`'s) give the same per-request times, tokens, cache hits and energy."""

from __future__ import annotations

import asyncio
import random

import msgspec
import pytest

from replay import virtual
from replay.engine import PROFILES, Engine
from replay.engine.scheduler import Generation

H100 = msgspec.structs.replace(PROFILES["h100"], block_size=64, max_batch=6)


def trace(seed: int, n: int = 40) -> list[tuple[float, int, list[int], int, bool]]:
    """(arrival s, prompt tokens, block hashes, output tokens, cancel after 3 s) requests that
    share prefixes, arriving over ~20 s."""
    rng = random.Random(seed)
    out = []
    t = 0.0
    for i in range(n):
        t += rng.expovariate(2.0)
        tokens = rng.randrange(200, 6000)
        family = rng.randrange(4)
        hashes = [hash((family, j)) if j < 20 else hash((i, j)) for j in range(tokens // 64)]
        out.append((t, tokens, hashes, rng.randrange(1, 400), rng.random() < 0.1))
    return out


async def drive(burst: bool, seed: int) -> tuple[list[tuple[float, float, int]], object]:
    loop = asyncio.get_running_loop()
    engine = Engine(H100, burst=burst)
    t0 = loop.time()
    got: list[tuple[float, float, int]] = []

    async def one(at: float, tokens: int, hashes: list[int], out: int, cancel: bool) -> None:
        await asyncio.sleep(at)
        gen: Generation = engine.submit_blocks(tokens, hashes, out)
        if cancel:  # the client goes away 3 s after sending
            loop.call_later(3.0, gen.cancel)
        first = 0.0
        async for _ in gen:
            if not first:
                first = loop.time() - t0
        got.append((first, loop.time() - t0, gen.generated))

    async with engine:
        async with asyncio.TaskGroup() as tg:
            for req in trace(seed):
                tg.create_task(one(*req))
        await asyncio.sleep(1.0)  # let cancelled blocks go back
        stats = engine.stats()
    return sorted(got), stats


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_bursts_give_the_same_times_as_single_steps(seed: int) -> None:
    steps, s1 = virtual.run(drive(False, seed))
    bursts, s2 = virtual.run(drive(True, seed))
    assert len(steps) == len(bursts) == 40
    for (f1, e1, n1), (f2, e2, n2) in zip(steps, bursts, strict=True):
        assert f1 == pytest.approx(f2, abs=1e-6)
        assert e1 == pytest.approx(e2, abs=1e-6)
        assert n1 == n2
    assert msgspec.structs.asdict(s1) | {"steps_total": 0, "energy_j": 0} == (
        msgspec.structs.asdict(s2) | {"steps_total": 0, "energy_j": 0}
    )
    assert s1.steps_total == s2.steps_total
    assert s1.energy_j == pytest.approx(s2.energy_j, rel=1e-9)


def test_a_burst_is_one_wake_up_per_event() -> None:
    async def main() -> tuple[int, int]:
        engine = Engine(H100, burst=True)
        async with engine:
            gen = engine.submit_blocks(64, [1], 1000)
            wakes = 0
            async for _ in gen:
                wakes += 1
            return wakes, engine.stats().steps_total

    wakes, steps = virtual.run(main())
    assert steps == 1000
    assert wakes == 2  # the first token, then the other 999 at once


def test_a_quiet_generation_wakes_for_its_first_token_and_end_only() -> None:
    class Tokens:
        tokens = 0

    async def main() -> tuple[int, int, list[int]]:
        engine = Engine(H100, burst=True)
        async with engine:
            gen = engine.submit_blocks(64, [1], 500)
            gen.quiet, gen.progress = True, Tokens()
            seen: list[int] = []

            async def others() -> None:  # arrivals cut the burst: commits, not wake-ups
                for i in range(5):
                    await asyncio.sleep(1.0)
                    other = engine.submit_blocks(64, [100 + i], 5)
                    await other.wait()
                    seen.append(gen.progress.tokens)

            task = asyncio.create_task(others())
            wakes = 0
            async for _ in gen:
                wakes += 1
            await task
            return wakes, gen.progress.tokens, seen

    wakes, tokens, seen = virtual.run(main())
    assert wakes == 2
    assert tokens == 500
    assert seen == sorted(seen)
    assert 0 < seen[0] < 500  # progress followed the commits in between
