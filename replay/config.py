"""One run's configuration: `RunConfig`, the validated record a `replay` run is assembled from.

The CLI parses and validates its flags into one `RunConfig`; `replay.launch` assembles the run
from it (simulated engine or endpoints, probe, fleet, power, counters, forecast) and runs it.
`RunConfig.settings()` is the `settings` object written into the run's JSON.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import msgspec

from replay.arrivals import Arrivals
from replay.engine.profiles import Profile
from replay.forecast import Topology
from replay.processes import Settings
from replay.runner import Plan


class RunConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Everything one run is, validated; built once by the CLI (or any other caller)."""

    plan: Plan
    """Tiers, level timing, search bounds and the failure threshold."""
    endpoints: tuple[str, ...] = ()
    """Server base URLs (replicas without a router after the first); () starts the simulated
    engine."""
    profile: str = "h100"
    """The simulated engine's profile (and a forecast's, when `engine` is None)."""
    api: str = "openai-chat"
    model: str | None = None
    """None: the server's first /v1/models entry."""
    api_key: str | None = None
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    affinity_header: str | None = None
    extras: bool = True
    """Send ignore_eos/min_tokens (dropped when the probe finds them refused)."""
    request_timeout: float = 600.0
    dialect: str = "auto"
    reset_cache: bool = False
    tag: str = ""
    tokenizer: str = "cl100k_base"
    wait: str = "recorded"
    max_wait: float | None = None
    seed: int = 0
    power: str | None = None
    """Power source spec; None: `sim` when simulated, else none."""
    power_interval: float = 0.5
    metrics_url: str | None = None
    """None: the server's /metrics; "none": no counters."""
    workers: int = 1
    ray: str | None = None
    time_scale: float = 1.0
    quick: bool = False
    """Short windows (the notes say the figures are indicative)."""
    resolution: str = "10%"
    """The search resolution as given (`plan.resolution` is its parsed form)."""
    slo_notes: tuple[str, ...] = ()
    slo_settings: dict[str, Any] = msgspec.field(default_factory=dict)
    """What the SLO choice adds to `settings()` (preset, statistics, limits, task)."""
    topology: Topology | None = None
    """Set for a forecast (`--forecast`): the modelled cluster."""
    engine: Profile | None = None
    """A forecast's engine built from a GPU/model setup (else `profile` names it)."""
    arrivals: str | None = None
    """An open population's spec (`--arrivals`); `open_population` is its parsed form."""
    open_population: Arrivals | None = None

    @property
    def endpoint(self) -> str | None:
        """The first endpoint; None for the simulated engine."""
        return self.endpoints[0] if self.endpoints else None

    @property
    def replicas(self) -> tuple[str, ...]:
        """The endpoints after the first."""
        return self.endpoints[1:]

    def worker_settings(
        self, corpus: str, *, epoch: int = 0, time_scale: float = 1.0,
        template: int | None = None, cache_block: int | None = None,
    ) -> Settings:
        """What each worker (in-process, process or Ray actor) needs besides its endpoint: this
        run's tag, tokenizer, waits and seed, plus what the run found (`epoch`, and the probed
        server's `template` tokens and `cache_block`)."""
        return Settings(
            corpus=corpus, tag=self.tag, tokenizer=self.tokenizer, wait=self.wait,
            max_wait=self.max_wait, seed=self.seed, epoch=epoch, time_scale=time_scale,
            template=template, cache_block=cache_block,
        )

    def settings(self) -> dict[str, Any]:
        """The run JSON's `settings`: the options that shaped the figures."""
        plan = self.plan
        out: dict[str, Any] = {
            "wait": self.wait, "max_wait": self.max_wait,
            "tiers": [f"{t.floor:g}:{t.ttft:g}" for t in plan.tiers], **self.slo_settings,
            "resolution": self.resolution, "max_agents": plan.max_agents, "agents": plan.agents,
            "timing": dataclasses.asdict(plan.timing), "tokenizer": self.tokenizer,
            "workers": self.workers, "max_error_rate": plan.max_error_rate,
            "timeout": self.request_timeout, "ignore_eos": self.extras,
            "affinity_header": self.affinity_header, "power_interval": self.power_interval,
            "repeats": plan.repeats, "arrivals": self.arrivals, "ray": self.ray,
            "dialect": self.dialect, "reset_cache": self.reset_cache,
            "endpoints": list(self.endpoints),
        }
        if self.topology is not None:
            out["topology"] = msgspec.structs.asdict(self.topology)
            out["profile"] = self.engine.name if self.engine is not None else self.profile
        return out
