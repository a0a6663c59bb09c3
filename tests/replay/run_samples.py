"""Synthetic but internally consistent `Run` records for report tests: every level's figures
are computed from its raw samples by the real summary and search code."""

from __future__ import annotations

import random

from replay import summary
from replay.level import QUICK
from replay.results import Corpus, Level, Power, Run, Sample
from replay.runner import Plan, answers
from replay.search import Search
from replay.tiers import DEFAULT_TIERS, Tier


def samples(agents: int, t0: float, span: float, speed: float, ttft: float,
            rng: random.Random) -> list[Sample]:
    """Requests of `agents` agents back to back over `span` seconds at about `speed` tok/s."""
    out: list[Sample] = []
    for a in range(agents):
        t, turn = t0 + rng.random(), 0
        while t < t0 + span:
            first = t + ttft * rng.uniform(0.5, 1.5)
            n = rng.randrange(50, 400)
            end = first + (n - 1) / (speed * rng.uniform(0.8, 1.2))
            out.append(Sample(agent=a, session=a, cycle=0, turn=turn, planned=t, start=t,
                              first=first, end=end, input=20_000, asked=n, output=n,
                              server_input=20_000, server_cached=16_000, ideal_cached=17_000,
                              status=200, error=""))
            t, turn = end + 0.5, turn + 1
    return out


def make_run(
    *, name: str = "sim", speed1: float = 58.0, knee: int = 16, watts: float = 200.0,
    tiers: tuple[Tier, ...] = DEFAULT_TIERS, seed: int = 0, max_agents: int = 64,
) -> Run:
    """A search over 1, 2, 4, … agents on a server whose per-stream speed falls from `speed1`
    and whose TTFT explodes past `knee` agents."""
    rng = random.Random(seed)
    plan = Plan(tiers=tiers, timing=QUICK, max_agents=max_agents)
    run = Run(simulated=True, profile=name, endpoint="http://127.0.0.1:1/v1", api="chat",
              model="sim-32b", run_tag="t", seed=seed, short_windows=True,
              settings={"max_agents": max_agents, "wait": "recorded",
                        "tiers": [f"{t.floor:g}:{t.ttft:g}" for t in tiers]},
              corpus=Corpus(path="corpus/reference/example.zst", domain="coding", sessions=32,
                            turns=563, block_size=64, tokenizer="cl100k_base",
                            recorded_api="anthropic-messages", ideal_cache_ratio=0.9),
              notes=["simulated: every figure comes from the built-in simulated engine"])
    search = Search(len(tiers), max_agents=max_agents, resolution=plan.resolution)
    t0 = 0.0
    while (n := search.next()) is not None:
        speed = speed1 / (1 + n / knee)
        ttft = 0.3 if n <= knee else 0.3 * (n / knee) ** 4
        level = Level(agents=n, index=len(run.levels), started=t0,
                              window_start=t0 + 5, window_end=t0 + 35, warmup_s=5, stable=True,
                              power=Power(source="sim", mode="energy", ok=True, coverage=1.0,
                                          mean_w=watts * (1 + n / 8)))
        summary.fill(level, samples(n, t0, 40, speed, ttft, rng), tiers, max_error_rate=0.05)
        run.levels.append(level)
        search.record(n, [v.passed for v in level.verdicts])
        t0 += 45
    run.tiers = answers(run, search, plan)
    return run
