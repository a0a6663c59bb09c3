"""Replay a corpus against an LLM endpoint: synthesized prompts with the recorded prefix
structure, agents pacing turns as recorded, and AA-AgentPerf's SLO search with power."""

from replay.agent import Agent
from replay.client import Client
from replay.endpoint import Clock, Endpoint, Progress, RealClock, Request, Result
from replay.errors import ConfigError, EndpointError, PowerError, ReplayError
from replay.level import Timing
from replay.power import PowerSampler, Reading, window_mean
from replay.prompts import Context, Prompt, Synth
from replay.results import Level, Run, Sample, TierResult
from replay.search import Resolution, Search
from replay.tiers import DEFAULT_TIERS, Tier
from replay.waits import Wait
from replay.worker import Plan, Worker
from replay.workers import Fleet, LocalFleet, ProcessFleet
from replay.workload import Deck, Workload

__all__ = [
    "DEFAULT_TIERS",
    "Agent",
    "Client",
    "Clock",
    "ConfigError",
    "Context",
    "Deck",
    "Endpoint",
    "EndpointError",
    "Fleet",
    "Level",
    "LocalFleet",
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
    "Synth",
    "Tier",
    "TierResult",
    "Timing",
    "Wait",
    "Worker",
    "Workload",
    "window_mean",
]
