"""The stats package's exception, mapped to `[red]error:[/] …` by the CLI."""

from __future__ import annotations


class StatsError(Exception):
    """A corpus or reference that cannot be described or compared as asked."""
