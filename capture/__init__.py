"""capture: a recording proxy between agents and their LLM API (mitmproxy addon, wire-format
parsers, session assembly). `capture --upstream URL -o corpus.zst` is the command; the names
below are the library. Heavy ones (mitmproxy, the corpus writer) load on first use, so the
command reports argument errors at once.

Errors: `CaptureError` (anything that stops the proxy starting or running; messages name
parameters, the CLI says flags) and, from the corpus writer, `corpus.CorpusError`. A recorder
failure while capturing is never raised at the agent: it is counted and reported.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from capture.errors import CaptureError
from capture.listeners import Listener

if TYPE_CHECKING:
    from capture.addon import Capture
    from capture.exchange import Exchange
    from capture.proxy import Proxy
    from capture.recorder import Recorder, Stats
    from capture.sessions import Sessions

_LAZY = {
    "Capture": "capture.addon",
    "Exchange": "capture.exchange",
    "Proxy": "capture.proxy",
    "Recorder": "capture.recorder",
    "Sessions": "capture.sessions",
    "Stats": "capture.recorder",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'capture' has no attribute {name!r}")


__all__ = [
    "Capture",
    "CaptureError",
    "Exchange",
    "Listener",
    "Proxy",
    "Recorder",
    "Sessions",
    "Stats",
]
