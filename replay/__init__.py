"""Replay a corpus against an LLM endpoint: synthesized prompts with the recorded prefix
structure, agents pacing turns as recorded, and AA-AgentPerf's SLO search with power; or
forecast it against modelled engines on a virtual clock (`replay.forecast`). Module map:
replay/README.md.

Errors (`replay.errors`; library messages name parameters, the CLI says flags):

    ReplayError               anything that stops a run
    ├── ConfigError           a value or setting that cannot be used
    ├── EndpointError         the endpoint cannot be reached or does not speak the API
    └── PowerError            a power source that cannot be read
    EngineError               the simulated engine's (replay.engine): InvalidRequest,
                              ContextLengthExceeded, Overloaded, EngineStopped, CatalogError
"""

from replay.agent import Agent
from replay.client import Client, ClientFactory
from replay.clock import Clock, LoopClock, RealClock
from replay.endpoint import Endpoint, Factory, Progress, Request, Result
from replay.errors import ConfigError, EndpointError, PowerError, ReplayError
from replay.fleet import Fleet, LocalFleet, Shard, Worker
from replay.level import Timing
from replay.power import PowerSampler, Reading, window_mean
from replay.processes import ProcessFleet
from replay.prompts import Context, Prompt, Synth
from replay.results import Level, Run, Sample, TierResult
from replay.runner import Plan
from replay.search import Resolution, Search
from replay.tiers import DEFAULT_TIERS, Tier
from replay.waits import Wait
from replay.workload import Deck, Workload

__all__ = [
    "DEFAULT_TIERS",
    "Agent",
    "Client",
    "ClientFactory",
    "Clock",
    "ConfigError",
    "Context",
    "Deck",
    "Endpoint",
    "EndpointError",
    "Factory",
    "Fleet",
    "Level",
    "LocalFleet",
    "LoopClock",
    "Plan",
    "PowerError",
    "PowerSampler",
    "ProcessFleet",
    "Progress",
    "Prompt",
    "Reading",
    "RealClock",
    "ReplayError",
    "Request",
    "Resolution",
    "Result",
    "Run",
    "Sample",
    "Search",
    "Shard",
    "Synth",
    "Tier",
    "TierResult",
    "Timing",
    "Wait",
    "Worker",
    "Workload",
    "window_mean",
]
