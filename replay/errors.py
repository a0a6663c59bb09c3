"""The replay package's exceptions: one base, a few specific kinds the CLI maps to messages.

    ReplayError                      anything that stops a run
    ├── ConfigError                  a value or setting that cannot be used
    ├── EndpointError                the endpoint cannot be reached or does not speak the API
    └── PowerError                   a power source that cannot be read
    replay.engine.EngineError        (the simulated engine's own tree, mapped to HTTP errors;
                                     CatalogError for a setup the catalogues cannot model)

Libraries name parameters (`max_agents`), never flags; `flagged` turns them into the CLI's.
"""

from __future__ import annotations

import re


class ReplayError(Exception):
    """Anything that stops a replay run: bad settings, an unusable corpus, an endpoint or power
    source that cannot be used. `params` lists the parameters (keyword names, e.g.
    `max_agents`) the message names as words, so a CLI can say its own flags instead
    (`flagged`)."""

    def __init__(self, message: str, *, params: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.params = params


def flagged(exc: Exception, flags: dict[str, str] | None = None) -> str:
    """`exc`'s message with each parameter it names (`exc.params`) as its command-line flag:
    `flags[name]`, else `--name-with-dashes`. For CLIs; libraries raise with parameter names."""
    message = str(exc)
    for name in getattr(exc, "params", ()):
        flag = (flags or {}).get(name, "--" + name.replace("_", "-"))
        message = re.sub(rf"(?<![\w-]){re.escape(name)}(?![\w-])", flag, message)
    return message


class ConfigError(ReplayError):
    """A command-line value or setting that cannot be used (bad policy, tier, header, …)."""


class EndpointError(ReplayError):
    """The endpoint cannot be reached or does not speak the chosen API."""


class PowerError(ReplayError):
    """A power source that cannot be read (missing extra, no GPU, bad URL or metric)."""
