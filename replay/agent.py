"""An agent: replays one corpus session at a time, turn by turn, then takes the next one.

Each turn: wait as the policy says (from the end of the previous response), synthesize the
prompt, send it with `max_tokens` = the recorded output, record a `Sample`. An error result is
recorded and the conversation goes on with the next turn, as the recorded agent's did.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from replay.endpoint import Clock, Endpoint, Progress, Request
from replay.prompts import Context, Synth
from replay.results import Sample
from replay.waits import Wait
from replay.workload import Deck, Workload, scope

ERROR_BACKOFF_NS = 100_000_000
"""Least pause after a failed request, so a refusing server can't spin an agent."""


class Agent:
    """Agent `index` of `agents` in level `level`. `epoch` (ns) is the run's time origin for
    samples; `scale` is the wall seconds per reported second (below 1 when the simulated engine
    runs faster than modelled: waits shrink by it and sample times are divided by it).
    `busy_since` is the start of the request in flight, None between requests."""

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
        self.tag = tag
        self.context = Context(synth, endpoint.form)
        self.rng = random.Random(hash((seed, level, index)))
        self.busy_since: int | None = None
        self.current: tuple[int, int, int, int, int] | None = None
        """(session, cycle, turn, input, asked) of the request in flight."""
        self.progress = Progress()
        self.planned = 0
        self.ideal = 0
        self.sessions_done = 0

    def _t(self, ns: int) -> float:
        return (ns - self.epoch) / 1e9 / self.scale

    async def run(self, start: int) -> None:
        """Start at `start` (ns) and replay sessions until cancelled."""
        clock = self.clock
        await clock.sleep_until(start)
        ready = clock.now()
        k = 0
        while True:
            index, cycle = self.deck.deal(self.index, k, self.agents)
            k += 1
            session = self.workload.sessions[index]
            self.context.reset()
            sc = scope(self.level, cycle)
            affinity = f"{self.tag}-{self.level}-{cycle}-{session.id}"
            prev: list[int] = []
            for i, turn in enumerate(session.turns):
                blocks = prev[: turn.reuse] + list(turn.blocks)
                prev = blocks
                planned = ready
                if i:
                    planned += int(self.wait.delay(turn.wait, self.rng) * self.scale * 1e9)
                await clock.sleep_until(planned)
                prompt = self.context.build(blocks, turn.input, sc)
                asked = max(1, turn.output)
                self.current = (session.id, cycle, i, turn.input, asked)
                self.progress = Progress()
                self.planned = planned
                self.ideal = prompt.ideal_cached
                self.busy_since = clock.now()
                try:
                    result = await self.endpoint.send(
                        Request(prompt, asked, affinity, self.progress)
                    )
                finally:
                    self.busy_since = None
                ready = clock.now()
                self.sink(
                    Sample(
                        agent=self.index,
                        session=session.id,
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
                    )
                )
                if result.error:
                    ready = max(ready, result.end + ERROR_BACKOFF_NS)
            self.sessions_done += 1

    def unfinished(self, now: int) -> Sample | None:
        """A `cut` sample for the request in flight when the level stopped, or None."""
        if self.busy_since is None or self.current is None:
            return None
        session, cycle, turn, inp, asked = self.current
        p = self.progress
        return Sample(
            agent=self.index, session=session, cycle=cycle, turn=turn,
            planned=self._t(self.planned), start=self._t(self.busy_since),
            first=self._t(p.first) if p.first else -1.0, end=self._t(now), input=inp,
            asked=asked, output=p.tokens, server_input=-1, server_cached=-1,
            ideal_cached=self.ideal, status=0, error="", cut=True,
        )
