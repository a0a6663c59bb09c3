"""Prometheus text exposition: a sans-I/O parser and the scrapers for what replay reads from a
server's /metrics: its own load and cache figures per level (prefix-cache queries/hits,
prompt/generation tokens, running/waiting requests, KV usage; names per dialect,
`replay.dialect`), GPU telemetry (DCGM), and power (`replay.power`).

Values of one metric name are summed over all label sets (all GPUs, all engines), except
ratios and clocks, which are averaged.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import aiohttp

from replay.dialect import DIALECTS
from replay.errors import ReplayError
from replay.results import Load

VLLM = DIALECTS["vllm"].metrics

PREFIX_QUERIES = "vllm:prefix_cache_queries_total"
PREFIX_HITS = "vllm:prefix_cache_hits_total"
# Prometheus clients that drop the `_total` suffix in the exposition.
_ALIASES = {
    "vllm:prefix_cache_queries": PREFIX_QUERIES,
    "vllm:prefix_cache_hits": PREFIX_HITS,
}


def _labels(body: str) -> dict[str, str]:
    """`a="1",b="x\\"y"` -> {"a": "1", "b": 'x"y'} (Prometheus label syntax)."""
    out: dict[str, str] = {}
    i, n = 0, len(body)
    while i < n:
        eq = body.find("=", i)
        if eq < 0:
            break
        key = body[i:eq].strip().lstrip(",").strip()
        j = body.find('"', eq)
        if j < 0:
            break
        j += 1
        value: list[str] = []
        while j < n and body[j] != '"':
            if body[j] == "\\" and j + 1 < n:
                j += 1
                value.append({"n": "\n"}.get(body[j], body[j]))
            else:
                value.append(body[j])
            j += 1
        out[key] = "".join(value)
        i = j + 1
    return out


def info(text: str, suffix: str = "_info") -> dict[str, dict[str, str]]:
    """The labels of every `*_info` metric (configuration published as labels, e.g. vLLM's
    `vllm:cache_config_info{block_size="16",…} 1`): metric name -> labels of its first series."""
    out: dict[str, dict[str, str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        brace = line.find("{")
        if brace <= 0 or line[0] == "#" or not line[:brace].endswith(suffix):
            continue
        name = line[:brace]
        if name not in out:
            out[name] = _labels(line[brace + 1 : line.rfind("}")])
    return out


def samples(text: str) -> dict[str, list[float]]:
    """Every sample value of every metric name in a text exposition (NaNs skipped), one per
    label set, in order."""
    out: dict[str, list[float]] = {}
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
        out.setdefault(_ALIASES.get(name, name), []).append(value)
    return out


def parse(text: str) -> dict[str, float]:
    """Sum of the sample values of every metric name in a text exposition (NaNs skipped)."""
    return {name: math.fsum(values) for name, values in samples(text).items()}


async def scrape(session: aiohttp.ClientSession, url: str, limit: float = 5.0) -> dict[str, float]:
    """GET `url` (at most `limit` seconds) and parse it; raises `ReplayError` on failure."""
    return parse(await _text(session, url, limit))


GPU = {
    "gpu_util": ("DCGM_FI_DEV_GPU_UTIL", "amd_gpu_use_percent"),
    "gpu_mem_used_mib": ("DCGM_FI_DEV_FB_USED",),
    "sm_clock_mhz": ("DCGM_FI_DEV_SM_CLOCK", "amd_gpu_clock_mhz"),
}
"""GPU telemetry: replay's name -> exporter names (DCGM-exporter, AMD's device-metrics exporter)."""
_MEAN = frozenset({"kv_usage", "gpu_util", "sm_clock_mhz", "cache_hit_rate"})
"""Figures averaged over GPUs/engines rather than summed."""
_COUNTERS = ("prefix_queries", "prefix_hits", "prompt_tokens", "generation_tokens")
_GAUGES = ("running", "waiting", "kv_usage", "cache_hit_rate", "gpu_util", "gpu_mem_used_mib",
           "sm_clock_mhz")


def figures(
    values: Mapping[str, Sequence[float]], names: Mapping[str, Sequence[str]]
) -> dict[str, float]:
    """Replay's figure name -> value, from `samples()` output and a name map (first exporter
    name present wins; summed over label sets, or averaged for ratios and clocks)."""
    out: dict[str, float] = {}
    for figure, candidates in names.items():
        for name in candidates:
            got = values.get(name)
            if got:
                total = math.fsum(got)
                out[figure] = total / len(got) if figure in _MEAN else total
                break
    return out


def window(
    first: Mapping[str, float], last: Mapping[str, float], gauges: Sequence[Mapping[str, float]],
    seconds: float, source: str,
) -> Load:
    """A window's server figures: counter deltas between two snapshots, gauge means and peaks
    over the polls in between (pure)."""
    fig = Load(source=source, polls=len(gauges))
    deltas: dict[str, float] = {}
    for name in _COUNTERS:
        if name in first and name in last and last[name] >= first[name]:
            deltas[name] = last[name] - first[name]
    fig.prefix_queries = deltas.get("prefix_queries")
    fig.prefix_hits = deltas.get("prefix_hits")
    fig.prompt_tokens = deltas.get("prompt_tokens")
    fig.generation_tokens = deltas.get("generation_tokens")
    if fig.prefix_queries and fig.prefix_hits is not None:
        fig.cache_hit_ratio = fig.prefix_hits / fig.prefix_queries
    if seconds > 0:
        if fig.prompt_tokens is not None:
            fig.prompt_tps = fig.prompt_tokens / seconds
        if fig.generation_tokens is not None:
            fig.generation_tps = fig.generation_tokens / seconds
    for name in _GAUGES:
        series = [g[name] for g in gauges if name in g]
        if series:
            setattr(fig, f"{name}_mean", math.fsum(series) / len(series))
            setattr(fig, f"{name}_max", max(series))
    return fig


class CacheCounters(Protocol):
    """Where a level reads the server's own figures over its steady window: `begin()` at the
    window's start, `end(first)` at its end (None where the server has none)."""

    async def begin(self) -> dict[str, float] | None: ...

    async def end(self, first: dict[str, float] | None) -> Load | None: ...


class Counters:
    """Reads a server's own /metrics (and, when given, a GPU exporter's) around each level's
    steady window: `begin()` takes the first snapshot and starts polling gauges every
    `interval` seconds, `end()` stops and returns the window's `Load`. A server
    without a Prometheus /metrics gives None: the cache figure then comes from usage reports."""

    def __init__(
        self, url: str, *, names: Mapping[str, Sequence[str]] | None = None,
        gpu_url: str | None = None, interval: float = 1.0,
        gpu: Callable[[], dict[str, float]] | None = None,
    ) -> None:
        self.url = url
        self.gpu_url = gpu_url
        self.names: dict[str, tuple[str, ...]] = {
            **{k: tuple(v) for k, v in (names if names is not None else VLLM).items()}, **GPU}
        self.interval = interval
        self.gpu = gpu
        """Local GPU telemetry (NVML, amdsmi) merged into every read, where the run has it."""
        self._session: aiohttp.ClientSession | None = None
        self.available = True
        self._gauges: list[dict[str, float]] = []
        self._poller: asyncio.Task[None] | None = None
        self._start = 0.0

    async def read(self) -> dict[str, float] | None:
        """Replay's figures now, or None when the server has no usable /metrics."""
        if not self.available:
            return None
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            text = await _text(self._session, self.url)
        except ReplayError:
            self.available = False
            return None
        values = samples(text)
        if self.gpu_url:
            try:
                values.update(samples(await _text(self._session, self.gpu_url)))
            except ReplayError:
                self.gpu_url = None  # no GPU telemetry; the server's figures still count
        got = figures(values, self.names)
        if self.gpu is not None:
            got.update(self.gpu())
        if not got:
            self.available = False
            return None
        return got

    async def begin(self) -> dict[str, float] | None:
        """First snapshot of a window; starts the gauge poller."""
        await self._stop()
        first = await self.read()
        if first is None:
            return None
        self._gauges = [first]
        self._start = time.monotonic()
        self._poller = asyncio.create_task(self._poll())
        return first

    async def end(self, first: dict[str, float] | None) -> Load | None:
        """The window since `begin()` returned `first` (None: nothing to report)."""
        await self._stop()
        if first is None:
            return None
        last = await self.read()
        if last is None:
            return None
        gauges = [*self._gauges, last]
        return window(first, last, gauges, time.monotonic() - self._start, self.url)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            got = await self.read()
            if got is None:
                return
            self._gauges.append(got)

    async def _stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
            self._poller = None

    async def close(self) -> None:
        await self._stop()
        if self._session is not None:
            await self._session.close()
            self._session = None


async def _text(session: aiohttp.ClientSession, url: str, limit: float = 5.0) -> str:
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=limit)) as resp:
            if resp.status != 200:
                raise ReplayError(f"{url}: HTTP {resp.status} (expected Prometheus metrics)")
            return await resp.text()
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise ReplayError(f"{url}: cannot read metrics ({exc or type(exc).__name__})") from exc
