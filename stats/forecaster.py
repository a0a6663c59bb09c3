"""The `Forecaster` behind `stats compare`: replay's virtual-time forecast (`replay --forecast`)
of a corpus on a modelled engine setup, with quick windows so one forecast takes seconds.

The reference setup (`REFERENCE`) is stated in every answer: the engine profile, replicas,
tiers, the wait policy and the search resolution. Waits longer than `MAX_WAIT` are clipped as
`replay` does by default (an agent idle longer than a measurement level adds no load).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from replay import DEFAULT_TIERS, Plan, Resolution, Run, Tier, Workload, virtual
from replay.engine import PROFILES
from replay.engine.setup_options import setup_profile
from replay.forecast import Topology, forecast
from replay.forecast.run import engine_profile, modelled
from replay.level import QUICK, QUICK_TIME_SCALE
from replay.processes import Settings
from replay.results import Corpus
from stats.capacity import Capacity, Forecast
from stats.errors import StatsError

MAX_WAIT = 300.0
TIMING = dataclasses.replace(QUICK.scaled(1 / QUICK_TIME_SCALE), max_window=600.0)
"""replay's quick windows (50 modelled seconds), stretched up to 600 s until a level has the
requests it needs to judge: agents that wait minutes between calls complete few requests."""


@dataclass(frozen=True)
class Setup:
    """A modelled engine setup to forecast on: a named engine profile, or a catalogue GPU ×
    model (× GPUs per engine) with the calibrated roofline when `gpu` and `model` are set."""

    profile: str = "h100"
    gpu: str | None = None
    model: str | None = None
    gpus: int = 1
    replicas: int = 1
    tiers: tuple[Tier, ...] = DEFAULT_TIERS
    max_agents: int = 256
    resolution: float = 0.25  # relative: bisect until hi − lo ≤ 25 % of lo (replay's quick)
    seed: int = 0


REFERENCE = Setup()


class Engine:
    """Forecasts corpora on one `Setup` (a `stats.capacity.Forecaster`)."""

    def __init__(self, setup: Setup = REFERENCE) -> None:
        self.setup = setup
        try:
            modelled_setup = setup_profile(setup.gpu, setup.model, gpus=setup.gpus)
        except ValueError as exc:  # half a setup, or one the catalogues cannot model
            raise StatsError(str(exc)) from exc
        if modelled_setup is not None:
            self.profile = modelled_setup
        elif setup.profile in PROFILES:
            self.profile = PROFILES[setup.profile]
        else:
            raise StatsError(
                f"engine profile {setup.profile!r}: expected one of {', '.join(PROFILES)}, "
                "or --gpu and --model"
            )
        self.topology = Topology(replicas=setup.replicas)

    @property
    def engine(self) -> str:
        return (
            f"{self.topology.describe(self.profile.name, self.profile.gpus)} "
            f"(forecast: {self.profile.description})"
        )

    def __call__(self, corpus: Path) -> Forecast:
        s = self.setup
        try:
            workload = Workload.load(corpus)
        except Exception as exc:  # replay's load errors name the file
            raise StatsError(f"{corpus}: cannot forecast it ({exc})") from exc
        profile = engine_profile(self.profile, workload)
        info = modelled(self.topology, profile)
        plan = Plan(
            tiers=list(s.tiers),
            timing=TIMING,
            max_agents=s.max_agents,
            resolution=Resolution(relative=s.resolution),
        )
        record = Run(
            simulated=False,
            forecast=True,
            modelled=info,
            profile=s.profile,
            endpoint=f"forecast: {info.topology}",
            api="model",
            model=profile.model,
            corpus=Corpus(
                path=workload.path,
                domain=workload.header.domain,
                sessions=len(workload.sessions),
                sub_agents=workload.sub_agents,
                turns=workload.turns,
                block_size=workload.header.block_size,
                tokenizer=workload.header.tokenizer,
                recorded_api=workload.api,
                ideal_cache_ratio=workload.ideal_cache_ratio,
            ),
            run_tag=f"factor-{s.seed}",
            seed=s.seed,
            short_windows=True,
            power_source="forecast",
        )
        settings = Settings(
            corpus=str(corpus), tag=f"factor-{s.seed}", max_wait=MAX_WAIT, seed=s.seed
        )
        virtual.run(
            forecast(record, workload, plan, topology=self.topology, profile=self.profile,
                     settings=settings)
        )  # fmt: skip
        return Forecast(
            engine=self.engine,
            gpus=info.gpus,
            tiers=tuple(
                Capacity(
                    floor=t.floor,
                    ttft=t.ttft,
                    agents=t.agents or 0,
                    # only a level that could judge answers a tier (replay's `status`)
                    agents_per_mw=t.agents_per_mw if t.status != "not measured" else None,
                    mean_w=t.mean_w,
                    j_per_token=t.j_per_token,
                    p25_speed=t.p25_speed,
                    p95_ttft=t.p95_ttft,
                    capped=t.capped or t.status == "at limit",
                )
                for t in record.tiers
            ),
            notes=(
                f"forecast on {info.topology}: engine {self.profile.name} "
                f"({self.profile.description}; {self.profile.error_band}); quick windows; "
                f"waits clipped at {MAX_WAIT:g} s; search resolution {s.resolution:.0%}",
            ),
        )
