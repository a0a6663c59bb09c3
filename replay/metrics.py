"""Prometheus text exposition: a sans-I/O parser and a small scraper for the server counters
replay reads (vLLM's prefix-cache counters, DCGM power and energy).

Values of one metric name are summed over all label sets (all GPUs, all engines).
"""

from __future__ import annotations

import math
from typing import Protocol

import aiohttp

from replay.errors import ReplayError

PREFIX_QUERIES = "vllm:prefix_cache_queries_total"
PREFIX_HITS = "vllm:prefix_cache_hits_total"
# Older vLLM versions expose the GPU prefix cache as a hit rate gauge only; newer ones (and the
# simulated engine) expose token counters under these names.
_ALIASES = {
    "vllm:prefix_cache_queries": PREFIX_QUERIES,
    "vllm:prefix_cache_hits": PREFIX_HITS,
    "vllm:gpu_prefix_cache_queries_total": PREFIX_QUERIES,
    "vllm:gpu_prefix_cache_hits_total": PREFIX_HITS,
}


def parse(text: str) -> dict[str, float]:
    """Sum of the sample values of every metric name in a text exposition (NaNs skipped)."""
    out: dict[str, float] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] == "#":
            continue
        brace = line.find("{")
        if brace >= 0:
            name = line[:brace]
            close = line.rfind("}")
            rest = line[close + 1 :].split()
        else:
            name, _, tail = line.partition(" ")
            rest = tail.split()
        if not rest:
            continue
        try:
            value = float(rest[0])
        except ValueError:
            continue
        if math.isnan(value):
            continue
        name = _ALIASES.get(name, name)
        out[name] = out.get(name, 0.0) + value
    return out


async def scrape(session: aiohttp.ClientSession, url: str, limit: float = 5.0) -> dict[str, float]:
    """GET `url` (at most `limit` seconds) and parse it; raises `ReplayError` on failure."""
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=limit)) as resp:
            if resp.status != 200:
                raise ReplayError(f"{url}: HTTP {resp.status} (expected Prometheus metrics)")
            text = await resp.text()
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise ReplayError(f"{url}: cannot read metrics ({exc or type(exc).__name__})") from exc
    return parse(text)


class CacheCounters(Protocol):
    """Where a level reads the server's prefix-cache counters: `read()` gives (queries, hits) in
    tokens since some origin, or None when the server has none."""

    async def read(self) -> tuple[float, float] | None: ...


class Counters:
    """Reads the vLLM prefix-cache counters at `url`; `read()` returns None when the server
    has none (not vLLM, no /metrics): the cache figure then comes from usage reports only."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._session: aiohttp.ClientSession | None = None
        self.available = True

    async def read(self) -> tuple[float, float] | None:
        """(queries, hits) in tokens since server start, or None."""
        if not self.available:
            return None
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            values = await scrape(self._session, self.url)
        except ReplayError:
            self.available = False
            return None
        if PREFIX_QUERIES not in values or PREFIX_HITS not in values:
            self.available = False
            return None
        return values[PREFIX_QUERIES], values[PREFIX_HITS]

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
