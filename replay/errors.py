"""The replay package's exceptions: one base, a few specific kinds the CLI maps to messages."""

from __future__ import annotations


class ReplayError(Exception):
    """Anything that stops a replay run: bad settings, an unusable corpus, an endpoint or power
    source that cannot be used."""


class ConfigError(ReplayError):
    """A command-line value or setting that cannot be used (bad policy, tier, header, …)."""


class EndpointError(ReplayError):
    """The endpoint cannot be reached or does not speak the chosen API."""


class PowerError(ReplayError):
    """A power source that cannot be read (missing extra, no GPU, bad URL or metric)."""
