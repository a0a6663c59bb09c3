"""What the replay loop needs from a server: the `Endpoint` protocol and its request/result types.

Agents, levels and the search only know this protocol; `replay.client.Client` implements it
over aiohttp, tests implement it with in-process fakes. Times are integer nanoseconds on the
clock the agent uses (`replay.clock`: `time.perf_counter_ns` for real endpoints, the event loop's
virtual time in a forecast).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from corpus.wire import apis
from replay.errors import ConfigError
from replay.prompts import Form, Prompt

# what replay can send, by corpus name (`corpus.wire.apis`); `--api` also takes their aliases
APIS = (apis.OPENAI_CHAT, apis.OPENAI_COMPLETIONS, apis.ANTHROPIC)
API_CHOICES = ", ".join(f"{apis.BY_NAME[a].alias} ({a})" for a in APIS)


def resolve_api(name: str) -> str:
    """The corpus name of a replay API given by name or alias (`chat`, `completions`,
    `anthropic`); `ConfigError` naming the choices otherwise."""
    try:
        found = apis.resolve(name)
    except ValueError:
        found = ""
    if found not in APIS:
        raise ConfigError(f"api {name!r}: expected one of {API_CHOICES}")
    return found


@dataclass(slots=True)
class Progress:
    """How far a streaming response has got: first-token time (0 = none yet) and tokens so
    far. Endpoints update it as tokens arrive, so a request cut off when a level stops can
    still be judged on what it delivered."""

    first: int = 0
    tokens: int = 0


@dataclass(slots=True)
class Request:
    """One turn to send. `affinity` identifies the replayed conversation (for routers);
    `progress`, when given, is kept up to date while the response streams."""

    prompt: Prompt
    max_tokens: int
    affinity: str = ""
    progress: Progress | None = None
    agent: int = -1
    """The agent sending it (replicas pin agents), -1 when unknown."""


@dataclass(slots=True)
class Result:
    """What came back. `error` is "" on success, else a short kind (`http_429`, `timeout`,
    `connect`, `stream`, `incomplete`, …). `first` is 0 when no token arrived. Server counts are
    -1 when the server did not report them."""

    start: int
    first: int
    end: int
    output: int
    status: int = 200
    error: str = ""
    server_input: int = -1
    server_cached: int = -1
    detail: str = ""
    gap: int = 0
    """Longest pause between two token events (ns); 0 when fewer than two arrived."""


class Endpoint(Protocol):
    """A server the agents talk to. `send` never raises for server or network trouble: it
    returns a `Result` with `error` set (cancellation still propagates)."""

    @property
    def form(self) -> Form:
        """Whether prompts must carry `text` or token `ids`."""
        ...

    async def send(self, request: Request) -> Result: ...

    async def close(self) -> None: ...


class Factory(Protocol):
    """Builds an open `Endpoint` inside the process that will use it. It crosses a process
    spawn (`replay.processes`), so it must pickle: plain settings, no sockets or loops."""

    async def open(self) -> Endpoint: ...
