"""An agent: replays one top-level corpus session at a time, turn by turn, with the session's
sub-agents running concurrently inside it, then takes the next top-level session.

Each turn: wait as the policy says (from the end of the previous response), synthesize the
prompt, send it with `max_tokens` = the recorded output, record a `Sample`. An error result is
recorded and the conversation goes on with the next turn, as the recorded agent's did.

Sub-agents (sessions whose `parent` is the session being replayed, e.g. Claude Code Task
sub-agents) are launched and joined against the parent's turns as `replay.workload` describes:
each starts after the parent's turn that spawned it, and a parent turn that followed a
sub-agent's end in the recording waits for it to finish. Every sub-agent has its own prompt
context (its own conversation; blocks shared across sessions stay shared), its own seeded
random stream for waits, and its own requests in flight; their samples carry this agent's
index, so they count in the per-agent view. The agent's session ends when the top-level
session and all its sub-agents have finished. A corpus without sub-agents replays exactly as
one conversation at a time.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass

from replay.clock import Clock
from replay.endpoint import Endpoint, Progress, Request
from replay.prompts import Context, Synth
from replay.results import Sample
from replay.waits import Wait
from replay.workload import Child, Deck, Workload, scope

ERROR_BACKOFF_NS = 100_000_000
"""Least pause after a failed request, so a refusing server can't spin an agent."""


@dataclass(slots=True)
class Flight:
    """A request in flight: what it replays and when it was due and sent (ns)."""

    session: int
    cycle: int
    turn: int
    input: int
    asked: int
    planned: int
    since: int
    ideal: int
    progress: Progress


class Agent:
    """Agent `index` of `agents` in level `level`. `epoch` (ns) is the run's time origin for
    samples; `scale` is the wall seconds per reported second (below 1 when the simulated engine
    runs faster than modelled: waits shrink by it and sample times are divided by it).
    `flights` holds the requests in flight, one at most per conversation (the top-level session
    and each running sub-agent), keyed by session id."""

    def __init__(
        self,
        index: int,
        agents: int,
        *,
        level: int,
        workload: Workload,
        deck: Deck,
        synth: Synth,
        endpoint: Endpoint,
        wait: Wait,
        clock: Clock,
        sink: Callable[[Sample], None],
        epoch: int = 0,
        scale: float = 1.0,
        seed: int = 0,
        tag: str = "",
    ) -> None:
        self.index = index
        self.agents = agents
        self.level = level
        self.workload = workload
        self.deck = deck
        self.endpoint = endpoint
        self.wait = wait
        self.clock = clock
        self.sink = sink
        self.epoch = epoch
        self.scale = scale
        self.seed = seed
        self.tag = tag
        self.context = Context(synth, endpoint.form)
        self.rng = random.Random(hash((seed, level, index)))
        self.flights: dict[int, Flight] = {}
        self.sessions_done = 0
        """Top-level sessions (with all their sub-agents) replayed to the end."""
        self.sub_sessions_done = 0

    @property
    def busy_since(self) -> int | None:
        """Start of the earliest request in flight, None when none is."""
        return min((f.since for f in self.flights.values()), default=None)

    @property
    def inflight(self) -> int:
        return len(self.flights)

    def _t(self, ns: int) -> float:
        return (ns - self.epoch) / 1e9 / self.scale

    async def run(self, start: int) -> None:
        """Start at `start` (ns) and replay top-level sessions until cancelled."""
        await self.clock.sleep_until(start)
        ready = self.clock.now()
        k = 0
        while True:
            index, cycle = self.deck.deal(self.index, k, self.agents)
            k += 1
            self.context.reset()
            ready = await self._session(
                self.workload.roots[index], cycle, ready, self.context, self.rng
            )
            self.sessions_done += 1

    async def once(self, start: int, root: int, cycle: int) -> None:
        """Replay top-level session `workload.roots[root]` once from `start` (ns), then end
        (an open population's arrival; `cycle` makes its prompts its own)."""
        await self.clock.sleep_until(start)
        self.context.reset()
        await self._session(
            self.workload.roots[root], cycle, self.clock.now(), self.context, self.rng
        )
        self.sessions_done += 1

    async def _session(
        self, index: int, cycle: int, ready: int, context: Context, rng: random.Random
    ) -> int:
        """Replay `workload.sessions[index]` from `ready` (ns), with its sub-agents; returns
        when the last of them ended (the next session's start)."""
        kids = self.workload.children.get(index)
        if not kids:
            return await self._turns(index, cycle, ready, context, rng, None)
        try:
            async with asyncio.TaskGroup() as group:
                return await self._turns(index, cycle, ready, context, rng, (kids, group))
        except BaseExceptionGroup as eg:  # a sub-agent failed: raise its error, not the group
            if len(eg.exceptions) == 1:
                raise eg.exceptions[0] from None
            raise

    def _spawn(
        self, child: Child, cycle: int, base: int, group: asyncio.TaskGroup
    ) -> asyncio.Task[int]:
        """Start sub-agent `child` the recorded gap (through the wait policy) after `base`."""
        rng = random.Random(hash((self.seed, self.level, self.index, cycle, child.index)))
        at = base + int(self.wait.delay(child.gap, rng) * self.scale * 1e9)
        context = Context(self.context.synth, self.context.form, template=self.context.template)
        sid = self.workload.sessions[child.index].id
        return group.create_task(self._sub(child.index, cycle, at, context, rng), name=f"sub-{sid}")

    async def _sub(
        self, index: int, cycle: int, at: int, context: Context, rng: random.Random
    ) -> int:
        end = await self._session(index, cycle, at, context, rng)
        self.sub_sessions_done += 1
        return end

    async def _turns(
        self,
        index: int,
        cycle: int,
        ready: int,
        context: Context,
        rng: random.Random,
        tree: tuple[tuple[Child, ...], asyncio.TaskGroup] | None,
    ) -> int:
        clock = self.clock
        session = self.workload.sessions[index]
        sid = session.id
        sc = scope(self.level, cycle)
        affinity = f"{self.tag}-{self.level}-{cycle}-{sid}"
        running: dict[int, asyncio.Task[int]] = {}
        joins: dict[int, list[int]] = {}
        launches: dict[int, list[Child]] = {}
        group: asyncio.TaskGroup | None = None
        if tree is not None:
            kids, group = tree
            for c in kids:
                launches.setdefault(c.anchor, []).append(c)
                joins.setdefault(c.join, []).append(c.index)
            for c in launches.get(-1, ()):
                running[c.index] = self._spawn(c, cycle, ready, group)
        prev: list[int] = []
        for i, turn in enumerate(session.turns):
            blocks = prev[: turn.reuse] + list(turn.blocks)
            prev = blocks
            planned = ready
            if i:
                planned += int(self.wait.delay(turn.wait, rng) * self.scale * 1e9)
            for k in joins.get(i, ()):  # this turn follows those sub-agents' ends
                planned = max(planned, await running.pop(k))
            await clock.sleep_until(planned)
            prompt = context.build(blocks, turn.input, sc)
            asked = max(1, turn.output)
            flight = Flight(sid, cycle, i, turn.input, asked, planned, clock.now(),
                            prompt.ideal_cached, Progress())
            self.flights[sid] = flight
            try:
                result = await self.endpoint.send(
                    Request(prompt, asked, affinity, flight.progress, agent=self.index)
                )
            finally:
                del self.flights[sid]
            ready = clock.now()
            self.sink(
                Sample(
                    agent=self.index,
                    session=sid,
                    cycle=cycle,
                    turn=i,
                    planned=self._t(planned),
                    start=self._t(result.start),
                    first=self._t(result.first) if result.first else -1.0,
                    end=self._t(result.end),
                    input=turn.input,
                    asked=asked,
                    output=result.output,
                    server_input=result.server_input,
                    server_cached=result.server_cached,
                    ideal_cached=prompt.ideal_cached,
                    status=result.status,
                    error=result.error,
                    recorded=turn.duration if turn.duration is not None else -1.0,
                    gap=result.gap / 1e9 / self.scale if result.gap else -1.0,
                )
            )
            if result.error:
                ready = max(ready, result.end + ERROR_BACKOFF_NS)
            if group is not None:
                for c in launches.get(i, ()):
                    running[c.index] = self._spawn(c, cycle, ready, group)
        for task in list(running.values()):  # sub-agents that outlive the parent's last turn
            ready = max(ready, await task)
        return ready

    def _cut(self, f: Flight, now: int) -> Sample:
        p = f.progress
        return Sample(
            agent=self.index, session=f.session, cycle=f.cycle, turn=f.turn,
            planned=self._t(f.planned), start=self._t(f.since),
            first=self._t(p.first) if p.first else -1.0, end=self._t(now), input=f.input,
            asked=f.asked, output=p.tokens, server_input=-1, server_cached=-1,
            ideal_cached=f.ideal, status=0, error="", cut=True,
        )

    def unfinished_all(self, now: int, before: int | None = None) -> list[Sample]:
        """A `cut` sample for each request in flight (that started before `before`, when
        given) when the level stopped."""
        return [
            self._cut(f, now) for f in self.flights.values()
            if before is None or f.since < before
        ]

    def unfinished(self, now: int) -> Sample | None:
        """A `cut` sample for the earliest request in flight when the level stopped, or None."""
        if not self.flights:
            return None
        return self._cut(min(self.flights.values(), key=lambda f: f.since), now)
