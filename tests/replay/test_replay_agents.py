"""Agents with a fake endpoint and virtual time: pacing, waits, the deal, errors."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fixtures_replay import FakeClock, FakeEndpoint, make_corpus

from replay.agent import ERROR_BACKOFF_NS, Agent
from replay.endpoint import Request, Result
from replay.prompts import Synth
from replay.results import Sample
from replay.waits import parse
from replay.workload import Deck, Workload


@pytest.fixture(scope="module")
def workload(tmp_path_factory: pytest.TempPathFactory) -> Workload:
    path = make_corpus(tmp_path_factory.mktemp("c") / "c.zst", sessions=3, turns=4, wait=2.0)
    return Workload.load(path)


async def run_agent(
    workload: Workload, *, wait: str = "recorded", turns: int = 8, fail_every: int = 0,
    index: int = 0, agents: int = 1,
) -> tuple[list[Sample], FakeEndpoint, FakeClock]:
    clock = FakeClock()
    ep = FakeEndpoint(clock, latency_s=0.5, ttft_s=0.1, fail_every=fail_every)
    samples: list[Sample] = []
    agent = Agent(
        index, agents, level=0, workload=workload, deck=Deck(len(workload.sessions), 3),
        synth=Synth(block_size=64, tag="t", shared=workload.shared), endpoint=ep,
        wait=parse(wait), clock=clock, sink=samples.append, epoch=clock.now(), tag="t",
    )
    task = asyncio.create_task(agent.run(clock.now()))
    while len(samples) < turns:  # noqa: ASYNC110 - virtual time: the agent runs on yields
        await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return samples[:turns], ep, clock


async def test_turns_start_the_recorded_wait_after_the_previous_response(
    workload: Workload,
) -> None:
    samples, _, _ = await run_agent(workload, turns=4)
    for prev, cur in zip(samples, samples[1:], strict=False):
        assert cur.turn == prev.turn + 1
        assert cur.start - prev.end == pytest.approx(2.0, abs=1e-6)
        assert cur.planned == pytest.approx(cur.start)


@pytest.mark.parametrize(
    ("policy", "gap"), [("none", 0.0), ("fixed:0.3", 0.3), ("scale:0.5", 1.0), ("cap:1.5", 1.5)]
)
async def test_wait_policies_set_the_gap(workload: Workload, policy: str, gap: float) -> None:
    samples, _, _ = await run_agent(workload, wait=policy, turns=4)
    gaps = [b.start - a.end for a, b in zip(samples, samples[1:], strict=False)]
    assert gaps == pytest.approx([gap] * 3, abs=1e-6)


async def test_max_tokens_is_the_recorded_output_and_samples_carry_timings(
    workload: Workload,
) -> None:
    samples, ep, _ = await run_agent(workload, turns=4)
    session = next(s for s in workload.sessions if s.id == samples[0].session)
    assert [r.max_tokens for r in ep.seen] == [t.output for t in session.turns]
    assert [r.prompt.tokens for r in ep.seen] == [t.input for t in session.turns]
    s = samples[0]
    assert s.first - s.start == pytest.approx(0.1)
    assert s.end - s.start == pytest.approx(0.5)
    assert s.output == s.asked
    assert ep.seen[0].affinity.startswith("t-0-0-")


async def test_an_agent_takes_the_next_session_when_one_ends(workload: Workload) -> None:
    samples, _, _ = await run_agent(workload, turns=12)
    sessions = [s.session for s in samples]
    assert sessions[:4] == [sessions[0]] * 4
    assert len(set(sessions)) == 3
    assert [s.turn for s in samples] == [0, 1, 2, 3] * 3


async def test_errors_are_recorded_and_the_conversation_goes_on(workload: Workload) -> None:
    samples, _, _ = await run_agent(workload, wait="none", turns=6, fail_every=2)
    assert [bool(s.error) for s in samples] == [False, True] * 3
    after_error = samples[2].start - samples[1].end
    assert after_error >= ERROR_BACKOFF_NS / 1e9 - 1e-9


def test_the_deal_is_round_robin_and_cycles_without_repeats() -> None:
    deck = Deck(5, seed=1)
    dealt = [deck.deal(a, k, 3) for k in range(5) for a in range(3)]
    assert len(set(dealt)) == 15
    assert {s for s, c in dealt if c == 0} == set(range(5))
    assert {s for s, c in dealt if c == 1} == set(range(5))
    assert Deck(5, seed=1).deal(2, 3, 3) == deck.deal(2, 3, 3)
    assert [Deck(5, seed=2).deal(a, 0, 5)[0] for a in range(5)] != [
        deck.deal(a, 0, 5)[0] for a in range(5)
    ]


def test_workload_finds_shared_blocks_and_the_ideal_cache_ratio(tmp_path: Path) -> None:
    w = Workload.load(make_corpus(tmp_path / "w.zst", sessions=3, turns=3, system=200))
    assert len(w.shared) == 3  # 200 shared tokens = 3 full 64-token blocks
    assert 0.3 < w.ideal_cache_ratio < 1
    assert w.turns == 9


async def test_a_request_in_flight_becomes_a_cut_sample_with_its_progress(
    workload: Workload,
) -> None:
    clock = FakeClock()

    class Hanging(FakeEndpoint):
        async def send(self, request: Request) -> Result:
            assert request.progress is not None
            request.progress.first = clock.now() + 100_000_000
            request.progress.tokens = 7
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

    ep = Hanging(clock)
    agent = Agent(0, 1, level=0, workload=workload, deck=Deck(len(workload.sessions), 3),
                  synth=Synth(block_size=64, tag="t"), endpoint=ep, wait=parse("none"),
                  clock=clock, sink=lambda s: None, epoch=clock.now(), tag="t")
    task = asyncio.create_task(agent.run(clock.now()))
    while agent.busy_since is None:  # noqa: ASYNC110 - virtual time: the agent runs on yields
        await asyncio.sleep(0)
    s = agent.unfinished(clock.now() + 2_000_000_000)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert s is not None
    assert s.cut
    assert s.error == ""
    assert s.output == 7
    assert s.first == pytest.approx(0.1)
    assert s.end == pytest.approx(2.0)
    assert agent.unfinished(clock.now()) is None


async def test_a_time_scaled_agent_shrinks_waits_and_reports_modelled_seconds(
    workload: Workload,
) -> None:
    clock = FakeClock()
    ep = FakeEndpoint(clock, latency_s=0.5, ttft_s=0.1)
    samples: list[Sample] = []
    agent = Agent(0, 1, level=0, workload=workload, deck=Deck(len(workload.sessions), 3),
                  synth=Synth(block_size=64, tag="t"), endpoint=ep, wait=parse("fixed:2"),
                  clock=clock, sink=samples.append, epoch=clock.now(), scale=0.1, tag="t")
    task = asyncio.create_task(agent.run(clock.now()))
    while len(samples) < 3:  # noqa: ASYNC110 - virtual time: the agent runs on yields
        await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert clock.sleeps[:2] == [200_000_000, 200_000_000]  # 2 s modelled = 0.2 s wall
    a, b = samples[0], samples[1]
    assert b.start - a.end == pytest.approx(2.0)  # reported in modelled seconds
    assert a.end - a.start == pytest.approx(5.0)  # 0.5 s wall = 5 s modelled


def test_timing_scales_every_duration() -> None:
    from replay.level import QUICK

    t = QUICK.scaled(10)
    assert t.duration == QUICK.duration * 10
    assert t.drain == QUICK.drain * 10
    assert t.ramp(1000) == QUICK.ramp(1000) * 10
    assert t.min_requests == QUICK.min_requests
