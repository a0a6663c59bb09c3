"""Where a level's agents run: the `Fleet` protocol the level loop talks to, the `Worker` that runs
a share of a level's agents in the current event loop, and `LocalFleet` (one worker, this loop).
`replay.processes.ProcessFleet` shards agents over worker processes. An agent replays whole
session trees (a top-level session with its sub-agents), so a tree never splits across workers.

Nothing here reads a clock or sleeps except through the `Clock` it is given, so the same fleet
runs live (monotonic time) and in a forecast (virtual time).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from replay.agent import Agent
from replay.clock import Clock
from replay.endpoint import Endpoint
from replay.prompts import Synth
from replay.results import Sample
from replay.waits import Wait
from replay.workload import Deck, Workload


@dataclass(frozen=True)
class Shard:
    """One level for one worker: agents `ids` of `agents` in level `level`, agent 0 starting
    at `t0` (ns) and the last one `ramp` seconds later (staggered evenly)."""

    level: int
    agents: int
    ids: tuple[int, ...]
    t0: int
    ramp: float

    def start_of(self, agent: int) -> int:
        if self.agents <= 1:
            return self.t0
        return self.t0 + int(self.ramp * 1e9 * agent / (self.agents - 1))


class Worker:
    """Owns the agent tasks of the current level (never fire-and-forget: `finish` cancels and
    awaits every one of them)."""

    def __init__(
        self,
        *,
        workload: Workload,
        synth: Synth,
        endpoint: Endpoint,
        wait: Wait,
        clock: Clock,
        epoch: int,
        seed: int,
        tag: str,
        scale: float = 1.0,
    ) -> None:
        self.workload = workload
        self.scale = scale
        self.synth = synth
        self.endpoint = endpoint
        self.wait = wait
        self.clock = clock
        self.epoch = epoch
        self.seed = seed
        self.tag = tag
        self.deck = Deck(len(workload.roots), seed)
        self.agents: list[Agent] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._new: list[Sample] = []
        self.failure: BaseException | None = None

    def begin(self, shard: Shard) -> None:
        """Start the shard's agents (each sleeps until its own start time)."""
        if self._tasks:
            raise RuntimeError("a level is already running in this worker")
        self.agents = [
            Agent(
                i, shard.agents, level=shard.level, workload=self.workload, deck=self.deck,
                synth=self.synth, endpoint=self.endpoint, wait=self.wait, clock=self.clock,
                sink=self._sink, epoch=self.epoch, scale=self.scale, seed=self.seed,
                tag=self.tag,
            )
            for i in shard.ids
        ]
        self._tasks = [
            asyncio.create_task(a.run(shard.start_of(a.index)), name=f"agent-{a.index}")
            for a in self.agents
        ]
        for task in self._tasks:
            task.add_done_callback(self._done)

    def begin_open(self, level: int, arrivals: Sequence[tuple[int, int]]) -> None:
        """Start an open population: at each (time ns, root index) a new agent replays that
        top-level session once and leaves. Agent k is the k-th arrival."""
        if self._tasks:
            raise RuntimeError("a level is already running in this worker")
        self.agents = []
        launcher = asyncio.create_task(self._launch(level, arrivals), name="arrivals")
        launcher.add_done_callback(self._done)
        self._tasks = [launcher]

    async def _launch(self, level: int, arrivals: Sequence[tuple[int, int]]) -> None:
        n = len(arrivals)
        for k, (at, root) in enumerate(arrivals):
            await self.clock.sleep_until(at)
            agent = Agent(
                k, n, level=level, workload=self.workload, deck=self.deck, synth=self.synth,
                endpoint=self.endpoint, wait=self.wait, clock=self.clock, sink=self._sink,
                epoch=self.epoch, scale=self.scale, seed=self.seed, tag=self.tag,
            )
            self.agents.append(agent)
            task = asyncio.create_task(agent.once(at, root, k), name=f"arrival-{k}")
            self._tasks.append(task)
            task.add_done_callback(self._done)
            task.add_done_callback(functools.partial(self._left, agent))

    def _left(self, agent: Agent, task: asyncio.Task[None]) -> None:
        """An arrival's session ended: it no longer counts in flight."""
        if not task.cancelled():
            with contextlib.suppress(ValueError):  # `stop` may have let go of both already
                self.agents.remove(agent)
                self._tasks.remove(task)

    @property
    def sessions(self) -> int:
        """Agents (top-level sessions) running now."""
        return len(self.agents)

    def _done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None and self.failure is None:
            self.failure = task.exception()

    def _sink(self, sample: Sample) -> None:
        self._new.append(sample)

    def take(self) -> list[Sample]:
        """Samples recorded since the last call."""
        out, self._new = self._new, []
        return out

    @property
    def inflight(self) -> int:
        """Requests in flight (an agent has more than one while its sub-agents run)."""
        return sum(a.inflight for a in self.agents)

    def _pending(self, before: int) -> bool:
        return any(f.since < before for a in self.agents for f in a.flights.values())

    async def finish(self, before: int, drain: float) -> list[Sample]:
        """Let requests that started before `before` (ns) complete, at most `drain` seconds,
        then stop every agent. Returns the samples not yet taken, plus a `cut` sample
        for each request started before `before` that was still in flight."""
        deadline = self.clock.now() + int(drain * 1e9)
        while self._pending(before) and self.clock.now() < deadline:  # noqa: ASYNC110
            if self.failure is not None:
                break
            await self.clock.sleep(0.05)  # polls the agents' state; there is no event to wait on
        now = self.clock.now()
        cut = [s for a in self.agents for s in a.unfinished_all(now, before)]
        await self.stop()
        return self.take() + cut

    async def stop(self) -> None:
        """Cancel and await every agent task."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self.agents = []
        if self.failure is not None:
            failure, self.failure = self.failure, None
            raise failure


class Fleet(Protocol):
    """The agents of one level at a time, wherever they run. Times are ns on the run's clock."""

    async def begin(self, level: int, agents: int, t0: int, ramp: float) -> None: ...

    def take(self) -> list[Sample]: ...

    @property
    def inflight(self) -> int: ...

    async def finish(self, before: int, drain: float) -> list[Sample]: ...

    async def close(self) -> None: ...


class LocalFleet:
    """All agents in the current event loop, in one `Worker`."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    async def begin(self, level: int, agents: int, t0: int, ramp: float) -> None:
        self.worker.begin(Shard(level, agents, tuple(range(agents)), t0, ramp))

    async def begin_open(self, level: int, arrivals: Sequence[tuple[int, int]]) -> None:
        self.worker.begin_open(level, arrivals)

    @property
    def sessions(self) -> int:
        return self.worker.sessions

    def take(self) -> list[Sample]:
        return self.worker.take()

    @property
    def inflight(self) -> int:
        return self.worker.inflight

    async def finish(self, before: int, drain: float) -> list[Sample]:
        return await self.worker.finish(before, drain)

    async def close(self) -> None:
        await self.worker.stop()
