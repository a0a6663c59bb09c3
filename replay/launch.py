"""Assemble and run one `replay` run from its `RunConfig`.

Live: start the simulated engine (no endpoints) or probe the endpoint, build the worker
settings, the fleet (in-process, worker processes or Ray), the power recorder and the server
counters, then search or measure (`replay.runner`, `replay.population`). Forecast
(`RunConfig.topology`): the same loop against modelled engines on virtual time
(`replay.forecast`). Either way the record gets its notes; `unusable` says whether anything
measured can be used. Printing and exit codes stay in the CLI.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

import aiohttp

from corpus import CorpusError
from corpus import tokenizer as bpe
from corpus.wire import apis
from replay import results as res
from replay import virtual
from replay.client import Client, ClientFactory, base_url, server_root
from replay.clock import RealClock
from replay.config import RunConfig
from replay.dialect import DIALECTS, EXTRAS
from replay.engine.server import resolve as resolve_profile
from replay.errors import ConfigError, ReplayError
from replay.fleet import LocalFleet
from replay.forecast import forecast
from replay.forecast.run import engine_profile, modelled
from replay.level import Live
from replay.population import run_open
from replay.power import LocalGpus, Recorder, sampler
from replay.probe import PROBE_WORDS, Target, describe, reset_cache
from replay.probe import probe as probe_server
from replay.processes import ProcessFleet, make_worker
from replay.prompts import Synth
from replay.rayfleet import RayFleet, is_loopback
from replay.runner import run as run_plan
from replay.scrapers import Counters
from replay.simulated import Simulated, error_band
from replay.waits import parse as parse_wait
from replay.workload import Workload


class View(Protocol):
    """What watches the run: every tick of a level, and each level when it ends
    (`replay.progress.View` in the CLI)."""

    def tick(self, live: Live) -> None: ...

    def level(self, level: res.Level) -> None: ...


type Keep = Callable[[res.Run], None]
"""Called once with the run's record as soon as it exists, so a caller keeps the partial
record when the run is interrupted."""


def run(
    config: RunConfig, workload: Workload, view: View, keep: Keep, *,
    wrap: Callable[[Coroutine[Any, Any, res.Run]], Coroutine[Any, Any, res.Run]] | None = None,
) -> res.Run:
    """Assemble and run the run `config` describes: live on asyncio's loop, a forecast on
    `replay.virtual`'s. `wrap` wraps the run's coroutine (the CLI's SIGTERM handling)."""
    work = (_forecast if config.topology is not None else _live)(config, workload, view, keep)
    if wrap is not None:
        work = wrap(work)
    return virtual.run(work) if config.topology is not None else asyncio.run(work)


async def _live(opts: RunConfig, workload: Workload, view: View, keep: Keep) -> res.Run:
    if opts.endpoint is None:
        async with Simulated(opts.profile, time_scale=opts.time_scale) as root:
            return await _live_at(opts, workload, view, keep, url=root + "/v1")
    return await _live_at(opts, workload, view, keep, url=opts.endpoint)


async def _live_at(
    opts: RunConfig, workload: Workload, view: View, keep: Keep, *, url: str
) -> res.Run:
    simulated = opts.endpoint is None
    probe = Client(url, api=opts.api, api_key=opts.api_key, headers=opts.headers)
    try:
        listed = await probe.models(needed=not opts.model)
    finally:
        await probe.close()
    model = opts.model
    if not model:
        if not listed:
            raise ReplayError(f"{probe.base}/models lists no model; pass --model NAME")
        model = listed[0]
    root = server_root(probe.base)
    found: res.Server | None = None
    if not simulated:
        found = await _probe(opts, url, model)
    power = opts.power or ("sim" if simulated else "none")
    source = sampler(power, sim_metrics=root + "/metrics" if simulated else None)
    clock = RealClock()
    epoch = clock.now()
    factory = ClientFactory(
        url=url, api=opts.api, model=model, api_key=opts.api_key, headers=opts.headers,
        affinity_header=opts.affinity_header, timeout=opts.request_timeout,
        extras=opts.extras if found is None else frozenset(found.sends), replicas=opts.replicas,
    )
    s = opts.worker_settings(
        workload.path, epoch=epoch, time_scale=opts.time_scale,
        template=None if found is None or not found.template_source else found.template,
        cache_block=None if found is None else found.block_size,
    )
    plan = opts.plan
    record = res.Run(
        simulated=simulated, profile=opts.profile if simulated else None, endpoint=probe.base,
        api=opts.api, model=model,
        corpus=_corpus(workload),
        run_tag=opts.tag, seed=opts.seed, settings=opts.settings(), short_windows=opts.quick,
        power_source=power, time_scale=opts.time_scale,
    )
    if simulated:
        record.notes.append(
            f"simulated: every figure comes from the built-in simulated engine (profile "
            f"{opts.profile}; model error: {error_band(opts.profile)}), not from hardware"
        )
    _workload_notes(record, workload, opts)
    if found is not None:
        record.server = found
        marker = Synth(block_size=1, tag="", tokenizer=opts.tokenizer).template
        record.notes.extend(describe(found, corpus_block=workload.header.block_size,
                                     marker=marker, api=opts.api))
    keep(record)
    metrics_url = opts.metrics_url
    names = DIALECTS[found.dialect].metrics if found is not None else None
    gpu_url = power[len("dcgm:"):] if power.startswith("dcgm:") else None
    counters = (
        Counters(metrics_url or root + "/metrics", names=names, gpu_url=gpu_url,
                 gpu=source.telemetry if isinstance(source, LocalGpus) else None)
        if metrics_url != "none" else None
    )
    resets = [server_root(base_url(u)) for u in (url, *opts.replicas)]

    async def cold_cache() -> None:
        path = found.reset if found is not None else None
        if path is None:
            return
        async with aiohttp.ClientSession() as session:
            for r in resets:
                await reset_cache(session, r, path)

    recorder = Recorder(source, opts.power_interval, clock=clock) if source is not None else None
    fleet: LocalFleet | ProcessFleet | RayFleet
    client = None
    if opts.ray is not None:
        fleet = RayFleet(s, factory, opts.ray, per_node=opts.workers)
        await fleet.start()
        far = sorted({p.address for p in fleet.places} - {fleet.driver})
        near = [u for u in (url, *opts.replicas) if is_loopback(u)]
        if far and near:
            await fleet.close()
            raise ConfigError(
                f"--ray: nodes {', '.join(far)} cannot reach {near[0]} (loopback); pass --endpoint "
                "with an address every node reaches (e.g. 'replay serve --host 0.0.0.0' for "
                "the simulated engine)")
        record.notes.append(
            f"ray: {fleet.n} shards on {len(fleet.places)} nodes; node clocks aligned to this "
            f"machine's within {max(p.error for p in fleet.places) / 1e6:.3g} ms")
    elif opts.workers > 1 and opts.open_population is None:
        fleet = ProcessFleet(s, factory, opts.workers)
        await fleet.start()
    else:
        client = await factory.open()
        fleet = LocalFleet(make_worker(s, workload, client, clock))
    poller: asyncio.Task[None] | None = None
    try:
        if recorder is not None:
            poller = asyncio.create_task(recorder.run())
        if opts.open_population is not None:
            assert isinstance(fleet, LocalFleet)
            await run_open(record, fleet, plan, opts.open_population, workload, epoch=epoch,
                           clock=clock, seed=opts.seed, recorder=recorder, counters=counters,
                           on_tick=view.tick, on_level=view.level)
        else:
            await run_plan(record, fleet, plan, epoch=epoch, clock=clock, scale=opts.time_scale,
                      recorder=recorder, counters=counters, on_tick=view.tick,
                      on_level=view.level,
                      before_level=cold_cache if found is not None and found.reset else None)
    finally:
        if poller is not None:
            poller.cancel()
            await asyncio.gather(poller, return_exceptions=True)
        await fleet.close()
        if isinstance(fleet, RayFleet):
            record.nodes = fleet.nodes(len(record.levels))
        if client is not None:
            await client.close()
        if counters is not None:
            await counters.close()
        if source is not None:
            await source.close()
        _add_notes(record)
    return record


async def _probe(opts: RunConfig, url: str, model: str) -> res.Server:
    """Probe the (first) server once: dialect, refused extensions, template, block size."""
    wanted = set(EXTRAS)
    if not opts.extras:
        wanted -= {"ignore_eos", "min_tokens"}
    headers = dict(opts.headers)
    if opts.affinity_header:
        headers[opts.affinity_header] = f"{opts.tag}-probe"
    if opts.api_key:
        if opts.api == apis.ANTHROPIC:
            headers["x-api-key"] = opts.api_key
        else:
            headers["authorization"] = f"Bearer {opts.api_key}"
    try:
        ids = bpe.encoding(opts.tokenizer).encode(PROBE_WORDS)
    except CorpusError as exc:
        raise ConfigError(str(exc)) from exc
    target = Target(url=url, api=opts.api, model=model, headers=headers, ids=ids)
    found = await probe_server(target, dialect=opts.dialect, wanted=frozenset(wanted),
                        reset=opts.reset_cache)
    found.endpoints = [base_url(u) for u in (url, *opts.replicas)]
    return found


def _workload_notes(record: res.Run, workload: Workload, opts: RunConfig) -> None:
    record.notes.extend(opts.slo_notes)
    if opts.time_scale != 1.0:
        record.notes.append(
            f"time-scaled: the simulated engine ran {1 / opts.time_scale:g}× faster than "
            "modelled and waits shrank to match; every figure is in modelled seconds"
        )
    if workload.sub_agents:
        n = workload.sub_agents
        record.notes.append(
            f"{n} sub-agent session{'s' if n != 1 else ''} replayed inside their parents' "
            "agents (agents = concurrent top-level sessions)"
        )
    if opts.max_wait is not None:
        policy = parse_wait(opts.wait, limit=opts.max_wait)
        long = sum(1 for s in workload.sessions for t in s.turns if policy.clips(t.wait))
        if long:
            record.notes.append(
                f"{long} wait{'s' if long != 1 else ''} longer than {opts.max_wait:g} s "
                f"under --wait {policy} clipped to it (--max-wait; 0 keeps them)"
            )
    if opts.quick:
        record.notes.append(
            f"short windows (quick mode: {opts.plan.timing.duration:g} s steady windows, "
            f"{opts.plan.timing.warmup_min:g}–{opts.plan.timing.warmup_max:g} s warm-up"
            f"{' in modelled time' if opts.time_scale != 1.0 else ''}): indicative only; "
            "use --full or --duration for real measurements"
        )


def _corpus(workload: Workload) -> res.Corpus:
    return res.Corpus(
        path=workload.path, domain=workload.header.domain, sessions=len(workload.sessions),
        sub_agents=workload.sub_agents,
        turns=workload.turns, block_size=workload.header.block_size,
        tokenizer=workload.header.tokenizer, recorded_api=workload.api,
        ideal_cache_ratio=workload.ideal_cache_ratio,
    )


def _forecast_record(workload: Workload, opts: RunConfig) -> res.Run:
    """The record of a forecast, before it runs (`_forecast` fills it)."""
    assert opts.topology is not None
    profile = opts.engine or resolve_profile(opts.profile)
    info = modelled(opts.topology, engine_profile(profile, workload))
    record = res.Run(
        simulated=False, forecast=True, modelled=info, profile=profile.name,
        endpoint=f"forecast: {info.topology}", api="model", model=profile.model,
        corpus=_corpus(workload), run_tag=opts.tag, seed=opts.seed, settings=opts.settings(),
        short_windows=opts.quick, power_source="forecast",
    )
    record.notes.append(
        f"forecast: every figure is modelled — {info.topology}; engine {profile.name} "
        f"({profile.description}; model error: {profile.error_band}); virtual time, no "
        "hardware was used"
    )
    _workload_notes(record, workload, opts)
    return record


async def _forecast(opts: RunConfig, workload: Workload, view: View, keep: Keep) -> res.Run:
    assert opts.topology is not None
    record = _forecast_record(workload, opts)
    keep(record)
    profile = opts.engine or resolve_profile(opts.profile)
    settings = opts.worker_settings(workload.path)
    try:
        await forecast(record, workload, opts.plan, topology=opts.topology, profile=profile,
                       settings=settings, power_interval=opts.power_interval,
                       arrivals=opts.open_population, on_tick=view.tick, on_level=view.level)
    finally:
        _add_notes(record)
        if record.modelled is not None:
            m = record.modelled
            record.notes.append(
                f"forecast: {m.modelled_s:,.0f} modelled seconds in {m.wall_s:,.1f} wall "
                f"seconds ({m.modelled_s / max(m.wall_s, 1e-9):,.0f}× real time)"
            )
    return record


def _add_notes(record: res.Run) -> None:
    """Run notes about the levels: what each could not judge, why one stopped early, power."""
    if record.arrivals is not None and record.levels and not record.levels[0].partial:
        lv = record.levels[0]
        peak = max((n for _, n in lv.in_flight), default=0)
        record.notes.append(
            f"open population: {record.arrivals}; {lv.arrivals} arrived in the window, "
            f"{lv.agents} agents in flight on average (peak {peak}); SLO attainment "
            + ", ".join(f"{v.floor:g} tok/s·{v.ttft:g} s {v.attainment:.0%}"
                        for v in lv.verdicts if v.attainment is not None)
        )
    unsure: dict[str, list[str]] = {}
    for lv in record.levels:
        if lv.problem and not lv.partial:
            unsure.setdefault(lv.problem.split(":")[0], []).append(str(lv.index + 1))
    for why, which in unsure.items():
        record.notes.append(
            f"level{'s' if len(which) > 1 else ''} {', '.join(which)}: {why}; such a level "
            "passes no tier (it was measured again with longer windows, or left out)")
    for lv in record.levels:
        if lv.stopped:
            record.notes.append(f"level {lv.index + 1} ({lv.agents} agents) {lv.stopped}")
    failing = next((lv for lv in record.levels if lv.bottleneck and not lv.partial), None)
    if failing is not None:
        record.notes.append(
            f"level {failing.index + 1} ({failing.agents} agents) {failing.bottleneck}"
        )
    bad = [lv for lv in record.levels if lv.power is not None and not lv.power.ok]
    if bad:
        record.notes.append(f"power: level {bad[0].index + 1}: "
                            f"{bad[0].power.problem if bad[0].power else ''}")


def unusable(record: res.Run, max_error_rate: float) -> str:
    """Why nothing `record` measured is usable, or "" when something is: a level that judged
    its tiers with errors within the limit, and no level whose endpoint stopped answering."""
    for lv in record.levels:
        if lv.stopped and lv.errors_by_kind and max(
                lv.errors_by_kind, key=lv.errors_by_kind.__getitem__) in ("connect", "timeout"):
            return f"the endpoint stopped answering: level {lv.index + 1} ({lv.agents} " \
                f"agents) {lv.stopped}"
    done = [lv for lv in record.levels if not lv.partial]
    if any(not lv.problem and lv.error_rate <= max_error_rate for lv in done):
        return ""
    if not done:
        return "no level completed"
    lv = done[0]
    why = lv.stopped or lv.problem or (lv.verdicts[0].reason if lv.verdicts else "")
    return f"nothing usable was measured: level {lv.index + 1} ({lv.agents} agents): {why}"


