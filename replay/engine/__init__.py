"""The built-in simulated inference engine: continuous batching, prefix cache, power, HTTP APIs.

Start one in-process with `serve_in_thread("h100")` (sync) or `async with serve(...)`; the CLI
command is `replay.engine.cli.serve` (mounted as `replay serve`).
"""

from replay.engine.cache import PrefixCache
from replay.engine.errors import (
    ContextLengthExceeded,
    EngineError,
    EngineStopped,
    InvalidRequest,
    Overloaded,
)
from replay.engine.profiles import PROFILES, Profile
from replay.engine.scheduler import Engine, Generation, Stats
from replay.engine.server import Running, make_app, serve, serve_in_thread

__all__ = [
    "PROFILES",
    "ContextLengthExceeded",
    "Engine",
    "EngineError",
    "EngineStopped",
    "Generation",
    "InvalidRequest",
    "Overloaded",
    "PrefixCache",
    "Profile",
    "Running",
    "Stats",
    "make_app",
    "serve",
    "serve_in_thread",
]
