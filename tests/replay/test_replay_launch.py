"""replay.launch runs a run from a RunConfig alone (no CLI), and RunConfig.settings() is the JSON's
settings."""

from __future__ import annotations

from pathlib import Path

import msgspec

from replay import launch
from replay.config import RunConfig
from replay.forecast import Topology
from replay.level import FULL, Live
from replay.results import Level, Run
from replay.runner import Plan
from replay.search import Resolution
from replay.tiers import Tier
from replay.workload import Workload

EXAMPLE = Path(__file__).parents[2] / "corpus" / "reference" / "example.zst"


class Watch:
    def __init__(self) -> None:
        self.ticks = 0
        self.levels: list[Level] = []

    def tick(self, live: Live) -> None:
        self.ticks += 1

    def level(self, level: Level) -> None:
        self.levels.append(level)


def config(**kw: object) -> RunConfig:
    plan = Plan(tiers=[Tier(floor=20, ttft=10)], timing=FULL, agents=4,
                resolution=Resolution(relative=0.1))
    return RunConfig(plan=plan, tag="t", wait="fixed:1", seed=3, **kw)  # type: ignore[arg-type]


def test_a_forecast_runs_from_the_record_alone() -> None:
    cfg = config(topology=Topology(replicas=2))
    kept: list[Run] = []
    watch = Watch()
    run = launch.run(cfg, Workload.load(EXAMPLE), watch, kept.append)
    assert kept == [run]
    assert run.forecast
    assert run.settings == cfg.settings()
    assert run.settings["topology"]["replicas"] == 2
    assert run.settings["profile"] == "h100"
    (level,) = run.levels
    assert watch.levels == [level]
    assert watch.ticks > 0
    assert level.agents == 4
    assert level.completed > 0
    assert launch.unusable(run, 0.05) == ""


def test_settings_name_every_option_once_and_encode() -> None:
    cfg = config(endpoints=("http://a/v1", "http://b/v1"), max_wait=30.0,
                 slo_settings={"preset": "x"})
    s = cfg.settings()
    assert (cfg.endpoint, cfg.replicas) == ("http://a/v1", ("http://b/v1",))
    assert s["endpoints"] == ["http://a/v1", "http://b/v1"]
    assert (s["wait"], s["max_wait"], s["preset"], s["agents"], s["tiers"]) == (
        "fixed:1", 30.0, "x", 4, ["20:10"])
    assert "topology" not in s
    assert msgspec.json.decode(msgspec.json.encode(s)) == s
    w = cfg.worker_settings("c.zst", epoch=5, template=3)
    assert (w.corpus, w.tag, w.wait, w.max_wait, w.seed, w.epoch, w.template, w.cache_block) == (
        "c.zst", "t", "fixed:1", 30.0, 3, 5, 3, None)
