"""The capture package's exceptions.

    CaptureError        anything that stops the proxy from starting or running
    corpus.CorpusError  (the corpus file's own tree: format, truncation, corruption)

A recorder failure during capture is never raised at the agent: it is counted and reported.
Libraries name parameters (`upstream`), never flags; `flagged` turns them into the CLI's.
"""

from __future__ import annotations

import re


class CaptureError(Exception):
    """Anything that stops the capture proxy from starting or running (bad arguments, a
    listener that can't bind, a corpus that can't be appended to). `params` lists the
    parameters the message names as words (see `flagged`)."""

    def __init__(self, message: str, *, params: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.params = params


def flagged(exc: Exception) -> str:
    """`exc`'s message with each parameter it names as `--name-with-dashes` (for the CLI)."""
    message = str(exc)
    for name in getattr(exc, "params", ()):
        flag = "--" + name.replace("_", "-")
        message = re.sub(rf"(?<![\w-]){re.escape(name)}(?![\w-])", flag, message)
    return message
