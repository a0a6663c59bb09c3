"""Session trees: sub-agents replayed concurrently inside their top-level session's agent,
launched and joined against the parent's turns; only top-level sessions are dealt; a corpus
without sub-agents replays exactly as before."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from fixtures_replay import (
    FakeClock,
    FakeEndpoint,
    SimClock,
    SimEndpoint,
    Spec,
    make_corpus,
    make_tree_corpus,
)
from typer.testing import CliRunner

from corpus import Session, Turn
from replay.agent import Agent
from replay.cli import app
from replay.fleet import Shard, Worker
from replay.prompts import Synth
from replay.results import Level, Sample
from replay.summary import fill
from replay.tiers import Tier
from replay.waits import parse
from replay.workload import Deck, Workload, _tree

# A top-level session Q without sub-agents, then P whose turn 0 (t 0, 1 s long) spawns S1 and
# S2 at +1.5 s; both end long before P's turn 1 at t 30.
TREE = [
    Spec(start=0.0, t=(0.0, 5.0, 10.0)),
    Spec(start=100.0, t=(0.0, 30.0, 31.0)),
    Spec(start=101.5, parent=1, t=(0.0, 2.0, 4.0)),
    Spec(start=101.5, parent=1, t=(0.0, 3.0)),
]


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Workload:
    return Workload.load(make_tree_corpus(tmp_path_factory.mktemp("t") / "t.zst", TREE))


def make_agent(
    workload: Workload, clock: SimClock | FakeClock, ep: SimEndpoint | FakeEndpoint,
    samples: list[Sample], *, wait: str = "recorded", index: int = 0, agents: int = 1,
    seed: int = 3, level: int = 0, tag: str = "t",
) -> Agent:
    return Agent(
        index, agents, level=level, workload=workload, deck=Deck(len(workload.roots), seed),
        synth=Synth(block_size=64, tag=tag, shared=workload.shared), endpoint=ep,
        wait=parse(wait), clock=clock, sink=samples.append, epoch=clock.now(), seed=seed,
        tag=tag,
    )


class Fixed(Deck):
    """Deals top-level session `index` (cycle k) for every slot k."""

    def __init__(self, workload: Workload, session_index: int) -> None:
        super().__init__(len(workload.roots), 0)
        self.root = workload.roots.index(session_index)

    def deal(self, agent: int, k: int, agents: int) -> tuple[int, int]:
        return self.root, k


async def drive(clock: SimClock, done: Callable[[], bool], limit: int = 10_000) -> None:
    """Advance virtual time until `done()` holds."""
    for _ in range(limit):
        if done():
            return
        if not await clock.advance():
            break
    assert done(), "the replay stalled"


async def replay_tree(
    workload: Workload, *, latency_s: float = 0.5, wait: str = "recorded"
) -> tuple[list[Sample], SimEndpoint, dict[int, int]]:
    """One agent replays the tree rooted at P (session id 1) to its end; returns the samples
    of that tree, the endpoint and the session id of each session index."""
    clock = SimClock()
    ep = SimEndpoint(clock, latency_s=latency_s)
    samples: list[Sample] = []
    agent = make_agent(workload, clock, ep, samples, wait=wait)
    agent.deck = Fixed(workload, 1)
    task = asyncio.create_task(agent.run(clock.now()))
    await drive(clock, lambda: agent.sessions_done >= 1)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    ids = {i: s.id for i, s in enumerate(workload.sessions)}
    return [s for s in samples if s.cycle == 0], ep, ids


def test_the_tree_and_its_schedule(tree: Workload) -> None:
    assert tree.roots == (0, 1)
    assert tree.sub_agents == 2
    (s1, s2) = tree.children[1]
    assert (s1.index, s1.anchor, s1.join) == (2, 0, 1)
    assert (s2.index, s2.anchor, s2.join) == (3, 0, 1)
    assert s1.gap == pytest.approx(0.5)  # launched 0.5 s after turn 0's 1 s response
    assert s2.gap == pytest.approx(0.5)
    assert 0 not in tree.children


async def test_sub_agents_send_while_the_parent_waits_between_turns(tree: Workload) -> None:
    samples, ep, _ = await replay_tree(tree)
    parent = [s for s in samples if s.session == 1]
    subs = [s for s in samples if s.session in (2, 3)]
    assert [s.turn for s in parent] == [0, 1, 2]
    assert sorted((s.session, s.turn) for s in subs) == [(2, 0), (2, 1), (2, 2), (3, 0), (3, 1)]
    p0, p1 = parent[0], parent[1]
    # every sub-agent request runs while the parent is waiting between its turns 0 and 1
    assert all(p0.end < s.start and s.end <= p1.start for s in subs)
    # launched the recorded gap after the spawning turn's response
    assert min(s.start for s in subs) == pytest.approx(p0.end + 0.5)
    # the two sub-agents run concurrently with each other
    assert ep.peak >= 2
    s1 = [s for s in subs if s.session == 2]
    s2 = [s for s in subs if s.session == 3]
    assert any(a.start < b.end and b.start < a.end for a in s1 for b in s2)
    # the parent's own pacing is untouched when the sub-agents finish in time
    assert p1.start - p0.end == pytest.approx(29.0)
    # sub-agent requests count as this agent's
    assert {s.agent for s in samples} == {0}


async def test_a_slow_server_holds_the_parent_turn_until_its_sub_agents_end(
    tree: Workload,
) -> None:
    samples, _, _ = await replay_tree(tree, latency_s=5.0, wait="scale:0.1")
    parent = [s for s in samples if s.session == 1]
    subs = [s for s in samples if s.session in (2, 3)]
    last_sub = max(s.end for s in subs)
    assert parent[1].start - parent[0].end > 2.9 + 1.0  # longer than its own (scaled) wait
    assert parent[1].start == pytest.approx(last_sub)  # sent when the last sub-agent ended
    assert parent[1].planned == pytest.approx(last_sub)


async def test_agents_are_dealt_top_level_sessions_only(tree: Workload) -> None:
    clock = SimClock()
    ep = SimEndpoint(clock)
    worker = Worker(workload=tree, synth=Synth(block_size=64, tag="t", shared=tree.shared),
                    endpoint=ep, wait=parse("none"), clock=clock, epoch=clock.now(), seed=5,
                    tag="t")
    assert worker.deck.n == 2
    worker.begin(Shard(level=0, agents=2, ids=(0, 1), t0=clock.now(), ramp=0.0))
    got: list[Sample] = []

    def enough() -> bool:
        got.extend(worker.take())
        return len(got) >= 60

    await drive(clock, enough)
    await worker.stop()
    assert {s.agent for s in got} == {0, 1}
    # each (tree, cycle) is replayed by one agent, sub-agents with their parent
    owner: dict[tuple[int, int], int] = {}
    for s in got:
        root = 1 if s.session in (1, 2, 3) else 0
        assert owner.setdefault((root, s.cycle), s.agent) == s.agent
    # the first session of each agent is a top-level one (the deal holds roots only)
    firsts = {a: min((s for s in got if s.agent == a), key=lambda s: s.start) for a in (0, 1)}
    assert {f.session for f in firsts.values()} <= {0, 1}
    assert all(f.turn == 0 for f in firsts.values())
    level = Level(agents=2, index=0, started=0.0, window_start=-1e9, window_end=1e9,
                  warmup_s=0.0, stable=True)
    fill(level, got, [Tier(1, 1000)], max_error_rate=1.0)
    assert level.agents_measured == 2  # sub-agents are not agents of their own


async def test_nested_sub_agents_run_inside_the_same_agent(tmp_path: Path) -> None:
    specs = [
        Spec(start=0.0, t=(0.0, 40.0)),
        Spec(start=1.5, parent=0, t=(0.0, 10.0, 20.0)),
        Spec(start=3.0, parent=1, t=(0.0, 2.0)),  # spawned by the sub-agent's turn 0
    ]
    w = Workload.load(make_tree_corpus(tmp_path / "n.zst", specs))
    assert w.roots == (0,)
    ((nested,),) = [w.children[1]]
    assert (nested.index, nested.anchor, nested.join) == (2, 0, 1)
    assert nested.gap == pytest.approx(0.5)
    # the parent waits for the sub-agent, whose recorded end includes its own sub-agent's
    assert w.children[0][0].join == 1
    clock = SimClock()
    ep = SimEndpoint(clock)
    samples: list[Sample] = []
    agent = make_agent(w, clock, ep, samples)
    task = asyncio.create_task(agent.run(clock.now()))
    await drive(clock, lambda: agent.sessions_done >= 1)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    first = [s for s in samples if s.cycle == 0]
    by = {(s.session, s.turn): s for s in first}
    assert set(by) == {(0, 0), (0, 1), (1, 0), (1, 1), (1, 2), (2, 0), (2, 1)}
    assert by[(2, 0)].start == pytest.approx(by[(1, 0)].end + 0.5)
    assert by[(2, 1)].end <= by[(1, 1)].start
    assert by[(1, 2)].end <= by[(0, 1)].start
    assert agent.sub_sessions_done >= 2


async def test_cancelling_an_agent_stops_its_sub_agents_and_cuts_their_requests(
    tree: Workload,
) -> None:
    clock = SimClock()
    ep = SimEndpoint(clock, latency_s=100.0)
    samples: list[Sample] = []
    agent = make_agent(tree, clock, ep, samples)
    agent.deck = Fixed(tree, 1)
    task = asyncio.create_task(agent.run(clock.now()))
    await drive(clock, lambda: agent.inflight == 2)
    cuts = agent.unfinished_all(clock.now() + 1)
    assert sorted(s.session for s in cuts) == [2, 3]
    assert all(s.cut for s in cuts)
    assert agent.unfinished(clock.now()) is not None
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert agent.inflight == 0
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []


def test_orphans_and_cycles_become_top_level() -> None:
    turn = (Turn(t=0.0, input=10, output=1),)
    sessions = (
        Session(id=0, parent=9, turns=turn),  # parent not in the workload
        Session(id=1, parent=2, turns=turn),  # 1 <-> 2: a damaged file
        Session(id=2, parent=1, turns=turn),
        Session(id=3, parent=3, turns=turn),  # its own parent
    )
    roots, children = _tree(sessions)
    assert 0 in roots
    assert 3 in roots
    assert len(roots) == 3  # one of the cycle's two sessions
    assert sum(len(c) for c in children.values()) == 1


# Digests of the request sequence before session trees existed (same corpus, seed and tag):
# a corpus without sub-agents must replay exactly as it did.
GOLDEN = {
    (0, "ids", "aa"): "91bb1b712095b5b3609b4f35727c8dd72855690576134b3dc447637891a61269",
    (1, "text", "recorded"): "5b6b8169151072a95ef19d6cbb637448c4c00bf67fb717613c174befe5b96313",
}


@pytest.mark.parametrize(("index", "form", "wait"), list(GOLDEN))
async def test_a_corpus_without_sub_agents_replays_exactly_as_before(
    tmp_path: Path, index: int, form: str, wait: str
) -> None:
    w = Workload.load(make_corpus(tmp_path / "c.zst", sessions=3, turns=4, wait=2.0))
    assert w.roots == (0, 1, 2)
    assert w.children == {}
    assert w.sub_agents == 0
    clock = FakeClock()
    ep = FakeEndpoint(clock, form_="ids" if form == "ids" else "text", latency_s=0.5,
                      ttft_s=0.1)
    samples: list[Sample] = []
    agent = Agent(index, 2, level=1, workload=w, deck=Deck(len(w.sessions), 7),
                  synth=Synth(block_size=64, tag="g", shared=w.shared), endpoint=ep,
                  wait=parse(wait), clock=clock, sink=samples.append, epoch=clock.now(), seed=7,
                  tag="g")
    task = asyncio.create_task(agent.run(clock.now()))
    while len(samples) < 14:  # noqa: ASYNC110 - virtual time: the agent runs on yields
        await asyncio.sleep(0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    h = hashlib.sha256()
    for r, s in zip(ep.seen[:14], samples[:14], strict=True):
        h.update(repr((r.affinity, r.max_tokens, r.prompt.tokens, r.prompt.ideal_cached,
                       r.prompt.ids, r.prompt.text, s.session, s.cycle, s.turn,
                       round(s.planned, 6), round(s.start, 6), round(s.end, 6))).encode())
    assert h.hexdigest() == GOLDEN[(index, form, wait)]


def test_the_cli_notes_sub_agents_and_keeps_trees_in_one_worker(
    tmp_path: Path, engine_url: str
) -> None:
    specs: list[Spec] = []
    for k in range(3):
        root = len(specs)
        specs.append(Spec(start=100.0 * k, t=(0.0, 3.0, 6.0)))
        specs += [Spec(start=100.0 * k + 1.2, parent=root, t=(0.0, 1.0)) for _ in range(2)]
    corpus = make_tree_corpus(tmp_path / "cli.zst", specs)
    out = tmp_path / "r.json"
    # --warmup-max 60: warm-up waits for a steady rate (short, a loaded machine looks unstable)
    result = CliRunner().invoke(app, [
        str(corpus), "--endpoint", engine_url + "/v1", "--agents", "2", "--workers", "2",
        "--time-scale", "1", "--json", str(out), "--quick", "--duration", "1", "--warmup",
        "0.2", "--warmup-max", "60", "--min-requests", "5", "--no-progress", "--wait",
        "fixed:0.01",
    ])
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert doc["corpus"]["sessions"] == 9
    assert doc["corpus"]["sub_agents"] == 6
    assert any("6 sub-agent sessions replayed inside their parents' agents" in n
               for n in doc["notes"])
    *_, level = doc["levels"]  # a level too short or unstable to judge is measured again
    fields = doc["sample_fields"]
    rows = [dict(zip(fields, r, strict=True)) for r in level["samples"]]
    assert {r["agent"] for r in rows} == {0, 1}
    root_of = {i: i - i % 3 for i in range(9)}
    owner: dict[tuple[int, int], int] = {}
    for r in rows:
        key = (root_of[r["session"]], r["cycle"])
        assert owner.setdefault(key, r["agent"]) == r["agent"]
    assert any(r["session"] % 3 for r in rows)  # sub-agent requests were replayed
