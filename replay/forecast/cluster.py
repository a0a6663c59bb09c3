"""The modelled cluster as an `Endpoint`: requests go straight to engine cores in this event loop
(no HTTP, no tokens: a prompt is its size and block seeds), so on a `replay.virtual` loop the
agents, the level loop and every engine share one virtual clock.

Disaggregated serving: a request prefills on a prefill engine (which samples the first token),
its prompt's KV crosses the link (`tokens × kv_bytes_per_token / bandwidth`), then a decode
engine admits it with the KV and that token in place and generates the rest; the first token
reaches the agent when the decode engine admits it (TTFT = queueing + prefill + transfer).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from replay.clock import Clock
from replay.endpoint import Request, Result
from replay.engine.errors import EngineError
from replay.engine.profiles import Profile
from replay.engine.scheduler import Engine, Generation
from replay.forecast.routers import Router, make
from replay.forecast.topology import Topology
from replay.power import Reading
from replay.prompts import Form
from replay.results import Load


class Pool:
    """Engines behind one router, with the requests each has in flight."""

    def __init__(self, engines: Sequence[Engine], router: Router) -> None:
        self.engines = list(engines)
        self.router = router
        self.load = [0] * len(self.engines)


class Cluster:
    """An `Endpoint` over the engines of `topology`, all running `profile` in burst mode."""

    def __init__(
        self, topology: Topology, profile: Profile, clock: Clock, *, grain: int = 1
    ) -> None:
        """`grain`: corpus blocks per engine block (`profile.block_size` is that many corpus
        blocks); a prompt's blocks are every `grain`-th seed."""
        self.topology = topology
        self.grain = grain
        self.profile = profile
        self.clock = clock
        capacity = max(1, profile.kv_capacity_tokens // profile.block_size)

        def pool(n: int) -> Pool:
            engines = [Engine(profile, burst=True) for _ in range(n)]
            return Pool(engines, make(topology.router, capacity_blocks=n * capacity))

        if topology.disaggregated:
            self.prefill: Pool | None = pool(topology.prefill)
            self.decode = pool(topology.decode)
        else:
            self.prefill = None
            self.decode = pool(topology.replicas)
        self.engines = [*(self.prefill.engines if self.prefill else ()), *self.decode.engines]
        self._transfer_s_per_token = profile.kv_bytes_per_token / (topology.kv_gbps * 1e9)

    @property
    def form(self) -> Form:
        return "blocks"

    async def start(self) -> None:
        for engine in self.engines:
            await engine.start()

    async def close(self) -> None:
        for engine in self.engines:
            await engine.stop()

    async def send(self, request: Request) -> Result:
        clock = self.clock
        prompt = request.prompt
        blocks = prompt.blocks or []
        if self.grain > 1:
            blocks = blocks[self.grain - 1 :: self.grain]
        start = clock.now()
        cached = -1
        try:
            if self.prefill is not None:
                gen, i = self._submit(self.prefill, request, blocks, 1, prefilled=False)
                try:
                    await gen.wait()
                finally:
                    self.prefill.load[i] -= 1
                    gen.cancel()
                cached = gen.cached_tokens
                await clock.sleep(prompt.tokens * self._transfer_s_per_token)
            gen, i = self._submit(
                self.decode, request, blocks, request.max_tokens,
                prefilled=self.prefill is not None,
            )
        except EngineError as exc:
            return self._failed(start, exc)
        if cached < 0:
            cached = gen.cached_tokens
        progress = request.progress
        gen.quiet = True  # woken at the first token and the end; the engine keeps `progress`
        gen.progress = progress
        first = 0
        try:
            async for _ in gen:
                if not first:
                    first = clock.now()
                    if progress is not None:
                        progress.first = first
                if progress is not None:
                    progress.tokens = gen.generated
        except EngineError as exc:
            return self._failed(start, exc)
        finally:
            self.decode.load[i] -= 1
            gen.cancel()  # a no-op once done; frees the KV when the agent is cancelled
        return Result(start, first, clock.now(), gen.generated, server_input=prompt.tokens,
                      server_cached=cached)

    def _submit(
        self, pool: Pool, request: Request, blocks: list[int], max_tokens: int, *,
        prefilled: bool,
    ) -> tuple[Generation, int]:
        i = pool.router.pick(request.affinity, blocks, pool.load)
        gen = pool.engines[i].submit_blocks(
            request.prompt.tokens, blocks, max_tokens, prefilled=prefilled
        )
        pool.load[i] += 1
        return gen, i

    def _failed(self, start: int, exc: EngineError) -> Result:
        return Result(start, 0, self.clock.now(), 0, status=exc.status,
                      error=f"http_{exc.status}", detail=str(exc))

    def power(self) -> tuple[float, float]:
        """(watts now, joules so far) summed over every engine (each its GPU group's)."""
        now = asyncio.get_running_loop().time()
        return (sum(e.power.watts for e in self.engines),
                sum(e.power.energy_j(now) for e in self.engines))

    def counters(self) -> dict[str, float]:
        """The engines' counters now, summed (prefix-cache figures from the engines that
        prefill)."""
        pool = self.prefill or self.decode
        stats = [e.stats() for e in self.engines]
        prefilling = [e.stats() for e in pool.engines]
        return {
            "queries": float(sum(s.prefix_cache_queries_total for s in prefilling)),
            "hits": float(sum(s.prefix_cache_hits_total for s in prefilling)),
            "prompt": float(sum(s.prompt_tokens_total for s in prefilling)),
            "generated": float(sum(s.generation_tokens_total for s in stats)),
            "t": asyncio.get_running_loop().time(),
        }


class Power:
    """A `PowerSampler` over the cluster's engines."""

    name = "forecast"

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    async def read(self) -> Reading:
        watts, joules = self.cluster.power()
        return Reading(self.cluster.clock.now(), watts, joules)

    async def close(self) -> None:
        return None


class Counters:
    """`CacheCounters` over the cluster's engines: counter deltas over a level's window (a
    forecast polls no gauges)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    async def begin(self) -> dict[str, float] | None:
        return self.cluster.counters()

    async def end(self, first: dict[str, float] | None) -> Load | None:
        if first is None:
            return None
        last = self.cluster.counters()
        seconds = max(last["t"] - first["t"], 1e-9)
        queries = last["queries"] - first["queries"]
        hits = last["hits"] - first["hits"]
        prompt = last["prompt"] - first["prompt"]
        generated = last["generated"] - first["generated"]
        return Load(
            source="forecast", polls=2, prefix_queries=queries, prefix_hits=hits,
            cache_hit_ratio=hits / queries if queries > 0 else None,
            prompt_tokens=prompt, generation_tokens=generated,
            prompt_tps=prompt / seconds, generation_tps=generated / seconds,
        )
