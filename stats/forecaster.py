"""The `Forecaster` behind `stats compare`: replay's virtual-time forecast (`replay --forecast`)
of a corpus on a modelled engine setup, with quick windows so one forecast takes seconds.

The reference setup (`REFERENCE`) is stated in every answer: the engine profile, replicas,
tiers, the wait policy and the search resolution. Waits longer than `MAX_WAIT` are clipped as
`replay` does by default (an agent idle longer than a measurement level adds no load).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from replay import DEFAULT_TIERS, Plan, Resolution, Run, Tier, Workload, virtual
from replay.engine import PROFILES
from replay.forecast import Topology, forecast
from replay.forecast.run import engine_profile, modelled
from replay.level import QUICK, QUICK_TIME_SCALE
from replay.processes import Settings
from replay.results import Corpus
from stats.capacity import Capacity, Forecast
from stats.errors import StatsError

MAX_WAIT = 300.0


@dataclass(frozen=True)
class Setup:
    """A modelled engine setup to forecast on."""

    profile: str = "h100"
    replicas: int = 1
    tiers: tuple[Tier, ...] = DEFAULT_TIERS
    max_agents: int = 512
    resolution: float = 0.1  # relative: bisect until hi − lo ≤ 10 % of lo
    seed: int = 0


REFERENCE = Setup()


class Engine:
    """Forecasts corpora on one `Setup` (a `stats.capacity.Forecaster`)."""

    def __init__(self, setup: Setup = REFERENCE) -> None:
        if setup.profile not in PROFILES:
            raise StatsError(
                f"engine profile {setup.profile!r}: expected one of {', '.join(PROFILES)}"
            )
        self.setup = setup
        self.profile = PROFILES[setup.profile]
        self.topology = Topology(replicas=setup.replicas)

    @property
    def engine(self) -> str:
        gpus = self.topology.engines * self.profile.gpus
        return (
            f"{self.topology.describe(self.profile.name, self.profile.gpus)}, "
            f"{self.profile.description} — forecast, {gpus} GPU{'s' if gpus != 1 else ''}"
        )

    def __call__(self, corpus: Path) -> Forecast:
        s = self.setup
        try:
            workload = Workload.load(corpus)
        except Exception as exc:  # replay's load errors name the file
            raise StatsError(f"{corpus}: cannot forecast it ({exc})") from exc
        profile = engine_profile(self.profile, workload.header.block_size)
        info = modelled(self.topology, profile)
        plan = Plan(
            tiers=list(s.tiers),
            timing=QUICK.scaled(1 / QUICK_TIME_SCALE),
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
                    agents=t.agents,
                    agents_per_mw=t.agents_per_mw,
                    mean_w=t.mean_w,
                    j_per_token=t.j_per_token,
                    p25_speed=t.p25_speed,
                    p95_ttft=t.p95_ttft,
                    capped=t.capped,
                )
                for t in record.tiers
            ),
            notes=(
                f"forecast on {info.topology}: engine profile {self.profile.name} "
                f"({self.profile.description}); quick windows; waits clipped at "
                f"{MAX_WAIT:g} s; search resolution {s.resolution:.0%}",
            ),
        )
