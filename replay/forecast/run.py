"""Run the replay loop against a modelled cluster on virtual time: the same agents, waits,
sub-agents, level windows, search, per-agent view and power accounting as a live run, with the
`Cluster` as the endpoint and the engines' energy as the power source. Call it inside a
`replay.virtual` loop (`replay.virtual.run`)."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable

import msgspec

from replay.arrivals import Arrivals
from replay.clock import LoopClock
from replay.engine.profiles import Profile
from replay.fleet import LocalFleet
from replay.forecast.cluster import Cluster, Counters, Power
from replay.forecast.topology import Topology
from replay.level import Live
from replay.population import run_open
from replay.power import Recorder
from replay.processes import Settings, make_worker
from replay.results import Level, Modelled, Run
from replay.runner import Plan, run
from replay.workload import Workload

BLOCKS_PER_PROMPT = 256
"""A forecast's cache block grows (by powers of two, up to 16 corpus blocks) until the corpus's
mean prompt holds about this many: cache work per request stays bounded on long-context
corpora, at a granularity error under 1 / BLOCKS_PER_PROMPT of a prompt."""


GC_THRESHOLD = 50_000
"""Allocations between young-generation collections during a forecast (Python's default is
700; a forecast allocates millions of short-lived objects, few of them in cycles)."""


def grain(workload: Workload) -> int:
    """Corpus blocks per forecast cache block for `workload` (see `BLOCKS_PER_PROMPT`)."""
    mean = workload.input_tokens / max(1, workload.turns)
    k = 1
    while k < 16 and mean / (workload.header.block_size * 2 * k) >= BLOCKS_PER_PROMPT:
        k *= 2
    return k


def engine_profile(profile: Profile, workload: Workload) -> Profile:
    """`profile` with a block of whole corpus blocks (`grain` of them), so the prefix cache
    works on the prompts' block seeds (there are no tokens to cut finer): equal seeds mean an
    equal prefix, so every `grain`-th seed is the chained hash of a coarser block."""
    return msgspec.structs.replace(
        profile, block_size=workload.header.block_size * grain(workload))


def modelled(topology: Topology, profile: Profile) -> Modelled:
    """The `Modelled` record describing `topology` of `profile` engines."""
    return Modelled(
        engine=profile.name, engine_description=profile.description,
        gpus_per_engine=profile.gpus, topology=topology.describe(profile.name, profile.gpus),
        replicas=topology.engines, router=topology.router,
        prefill_replicas=topology.prefill, decode_replicas=topology.decode,
        kv_gbps=topology.kv_gbps if topology.disaggregated else None,
        gpus=topology.engines * profile.gpus, block_size=profile.block_size,
    )


async def forecast(
    record: Run,
    workload: Workload,
    plan: Plan,
    *,
    topology: Topology,
    profile: Profile,
    settings: Settings,
    power_interval: float = 0.5,
    arrivals: Arrivals | None = None,
    on_tick: Callable[[Live], None] | None = None,
    on_level: Callable[[Level], None] | None = None,
) -> Run:
    """Search (or measure `plan.agents`, or run an open population of `arrivals`) on the
    modelled cluster, filling `record` in place (`record.modelled` gets the modelled and
    wall seconds, also when cancelled)."""
    clock = LoopClock()
    epoch = clock.now()
    wall = time.perf_counter()
    # The corpus, loaded, lives as long as the run: keep the cycle collector off it (it is
    # most of the heap, and a forecast allocates fast enough to walk it over and over).
    gc.collect()
    gc.freeze()
    threshold = gc.get_threshold()
    gc.set_threshold(GC_THRESHOLD, *threshold[1:])
    profile = engine_profile(profile, workload)
    if record.modelled is None:
        record.modelled = modelled(topology, profile)
    cluster = Cluster(topology, profile, clock, grain=grain(workload))
    await cluster.start()
    worker = make_worker(msgspec.structs.replace(settings, epoch=epoch, time_scale=1.0),
                         workload, cluster, clock)
    fleet = LocalFleet(worker)
    recorder = Recorder(Power(cluster), power_interval, clock=clock)
    poller = asyncio.create_task(recorder.run())
    try:
        if arrivals is not None:
            await run_open(record, fleet, plan, arrivals, workload, epoch=epoch, clock=clock,
                           seed=settings.seed, recorder=recorder, counters=Counters(cluster),
                           on_tick=on_tick, on_level=on_level)
        else:
            await run(record, fleet, plan, epoch=epoch, clock=clock, recorder=recorder,
                      counters=Counters(cluster), on_tick=on_tick, on_level=on_level)
    finally:
        poller.cancel()
        await asyncio.gather(poller, return_exceptions=True)
        await fleet.close()
        await cluster.close()
        record.modelled.modelled_s = round((clock.now() - epoch) / 1e9, 3)
        record.modelled.wall_s = round(time.perf_counter() - wall, 3)
        gc.set_threshold(*threshold)
        gc.unfreeze()
    return record
