"""GPU power: samplers behind a `PowerSampler` protocol and the mean over a steady window.

Sources: NVML (nvidia-ml-py, every GPU summed; the total-energy counter when the GPU has one,
else instantaneous power), a DCGM-exporter `/metrics` URL (energy counter
`DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION` in mJ when exported, else `DCGM_FI_DEV_POWER_USAGE` in W),
any Prometheus gauge in watts, an external command that prints watts, and the simulated engine
(DCGM names). With an energy counter the window mean is ΔE/Δt between the readings around the
window; with power readings it is the time-weighted (trapezoid) mean over the stretches between
readings no further apart than `max_gap`. Either way the readings must cover ≥ 90 % of the
window, or the result is flagged and no agents/MW is derived from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Protocol

import aiohttp

from replay.clock import Clock, RealClock
from replay.errors import ConfigError, PowerError, ReplayError
from replay.scrapers import scrape

DCGM_POWER = "DCGM_FI_DEV_POWER_USAGE"
DCGM_ENERGY = "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"
MIN_COVERAGE = 0.9


@dataclass(frozen=True, slots=True)
class Reading:
    """One sample at `t` (perf_counter ns): total watts and/or a cumulative energy counter in
    joules (any origin); None where the source has no such figure."""

    t: int
    watts: float | None = None
    joules: float | None = None


class PowerSampler(Protocol):
    """A power source; `read` may raise `PowerError` (the recorder counts it and goes on)."""

    name: str

    async def read(self) -> Reading: ...

    async def close(self) -> None: ...


@dataclass
class WindowPower:
    """Mean power over a window and how well the readings covered it."""

    mean_w: float | None
    energy_j: float | None
    coverage: float
    mode: str
    readings: int
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.mean_w is not None and not self.problem


def _interp(rs: Sequence[Reading], t: float) -> float:
    """Energy counter at `t`, linear between the readings around it (t within their span)."""
    for a, b in zip(rs, rs[1:], strict=False):
        if a.t <= t <= b.t:
            assert a.joules is not None
            assert b.joules is not None
            if b.t == a.t:
                return a.joules
            return a.joules + (b.joules - a.joules) * (t - a.t) / (b.t - a.t)
    assert rs[-1].joules is not None
    return rs[-1].joules


def window_mean(
    readings: Sequence[Reading], start: int, end: int, *, max_gap_s: float = 5.0
) -> WindowPower:
    """Mean watts over [start, end] (ns), preferring the energy counter when readings carry one."""
    span = end - start
    if span <= 0:
        return WindowPower(None, None, 0.0, "none", 0, "empty window")
    rs = sorted(readings, key=lambda r: r.t)
    energy = [r for r in rs if r.joules is not None]
    counter = [r.joules for r in energy if r.joules is not None]
    monotone = all(b >= a for a, b in zip(counter, counter[1:], strict=False))
    if len(energy) >= 2 and monotone:
        lo, hi = max(start, energy[0].t), min(end, energy[-1].t)
        inside = sum(1 for r in energy if start <= r.t <= end)
        if hi > lo:
            joules = _interp(energy, hi) - _interp(energy, lo)
            seconds = (hi - lo) / 1e9
            return _finish(joules / seconds, joules, (hi - lo) / span, "energy", inside)
    power = [r for r in rs if r.watts is not None]
    inside = sum(1 for r in power if start <= r.t <= end)
    gap = max_gap_s * 1e9
    covered = 0.0
    integral = 0.0
    for a, b in zip(power, power[1:], strict=False):
        if b.t - a.t > gap or b.t <= start or a.t >= end or b.t == a.t:
            continue
        assert a.watts is not None
        assert b.watts is not None
        lo, hi = max(a.t, start), min(b.t, end)
        slope = (b.watts - a.watts) / (b.t - a.t)
        w_lo = a.watts + slope * (lo - a.t)
        w_hi = a.watts + slope * (hi - a.t)
        covered += hi - lo
        integral += (w_lo + w_hi) / 2 * (hi - lo) / 1e9
    if covered <= 0:
        return WindowPower(None, None, 0.0, "power", inside,
                           f"no power readings cover the window ({inside} inside it)")
    return _finish(integral / (covered / 1e9), None, covered / span, "power", inside)


def _finish(mean: float, joules: float | None, coverage: float, mode: str, n: int) -> WindowPower:
    problem = ""
    if coverage < MIN_COVERAGE:
        problem = (
            f"power readings cover {coverage:.0%} of the steady window (need ≥ "
            f"{MIN_COVERAGE:.0%}); poll faster with --power-interval or check the source"
        )
    return WindowPower(mean, joules, min(1.0, coverage), mode, n, problem)


@dataclass
class Recorder:
    """Polls a sampler every `interval` seconds until cancelled; failures are counted."""

    sampler: PowerSampler
    interval: float = 0.5
    readings: list[Reading] = field(default_factory=list)
    failures: int = 0
    last_error: str = ""
    clock: Clock = field(default_factory=RealClock)
    """The clock the sampler's readings are on (and the recorder waits on)."""

    async def run(self) -> None:
        clock = self.clock
        while True:
            began = clock.now()
            try:
                self.readings.append(await self.sampler.read())
            except (ReplayError, OSError) as exc:
                self.failures += 1
                self.last_error = str(exc)
            spent = (clock.now() - began) / 1e9
            await clock.sleep(self.interval - spent)

    async def reach(self, t: int) -> None:
        """Wait (at most three poll intervals) for a reading taken at or after `t` (ns), so a
        window's end is bracketed."""
        clock = self.clock
        deadline = clock.now() + int(3 * self.interval * 1e9) + 100_000_000
        while clock.now() < deadline:
            if self.readings and self.readings[-1].t >= t:
                return
            await clock.sleep(min(0.05, self.interval / 4))

    def between(self, start: int, end: int, pad_s: float = 10.0) -> list[Reading]:
        pad = int(pad_s * 1e9)
        return [r for r in self.readings if start - pad <= r.t <= end + pad]


# -- samplers ---------------------------------------------------------------------------


def _import_pynvml() -> ModuleType:
    try:
        import pynvml
    except ImportError as exc:
        raise PowerError(
            "--power nvml needs nvidia-ml-py, which is not installed: install the 'nvml' extra "
            "(uv sync --extra nvml, or pip install 'agentload[nvml]')"
        ) from exc
    return pynvml


class Nvml:
    """All local NVIDIA GPUs through NVML. Uses `nvmlDeviceGetTotalEnergyConsumption` (mJ since
    driver load) when every GPU supports it, and `nvmlDeviceGetPowerUsage` (mW) always."""

    name = "nvml"

    def __init__(self) -> None:
        nv = _import_pynvml()
        self._nv: Any = nv
        try:
            nv.nvmlInit()
        except nv.NVMLError as exc:
            raise PowerError(
                f"NVML could not start ({exc}); is there an NVIDIA GPU and driver here?"
            ) from exc
        try:
            count = nv.nvmlDeviceGetCount()
            self._handles = [nv.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        except nv.NVMLError as exc:
            nv.nvmlShutdown()
            raise PowerError(f"NVML could not list GPUs ({exc})") from exc
        if not self._handles:
            nv.nvmlShutdown()
            raise PowerError("NVML found no GPU on this machine; choose another --power source")
        try:
            for h in self._handles:
                nv.nvmlDeviceGetTotalEnergyConsumption(h)
            self.energy = True
        except nv.NVMLError:
            self.energy = False

    @property
    def gpus(self) -> int:
        return len(self._handles)

    def _read(self) -> Reading:
        nv = self._nv
        try:
            t = time.perf_counter_ns()
            joules = None
            if self.energy:
                joules = sum(nv.nvmlDeviceGetTotalEnergyConsumption(h) for h in self._handles)
                joules /= 1000.0
            watts = sum(nv.nvmlDeviceGetPowerUsage(h) for h in self._handles) / 1000.0
        except nv.NVMLError as exc:
            raise PowerError(f"NVML read failed ({exc})") from exc
        return Reading(t, watts, joules)

    async def read(self) -> Reading:
        return self._read()  # NVML calls take microseconds; no thread hop needed

    def telemetry(self) -> dict[str, float]:
        """GPU utilisation (percent, mean over GPUs), memory used (MiB, summed) and SM clock
        (MHz, mean), as `replay.scrapers` names them; {} when NVML cannot say."""
        nv = self._nv
        try:
            util = [nv.nvmlDeviceGetUtilizationRates(h).gpu for h in self._handles]
            used = [nv.nvmlDeviceGetMemoryInfo(h).used for h in self._handles]
            clock = [nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM) for h in self._handles]
        except (nv.NVMLError, AttributeError):
            return {}
        n = len(self._handles)
        return {"gpu_util": sum(util) / n, "gpu_mem_used_mib": sum(used) / 2**20,
                "sm_clock_mhz": sum(clock) / n}

    async def close(self) -> None:
        try:
            self._nv.nvmlShutdown()
        except self._nv.NVMLError:
            pass


class Prometheus:
    """A Prometheus text endpoint. With `metric`, that gauge (summed) in watts; without, DCGM
    names: the energy counter (mJ) and power gauge (W), summed over GPUs."""

    def __init__(self, url: str, metric: str | None = None, *, name: str = "prometheus") -> None:
        self.url = url
        self.metric = metric
        self.name = name
        self._session: aiohttp.ClientSession | None = None

    async def read(self) -> Reading:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        t0 = time.perf_counter_ns()
        values = await scrape(self._session, self.url)
        t = (t0 + time.perf_counter_ns()) // 2
        if self.metric is not None:
            if self.metric not in values:
                raise PowerError(f"{self.url}: no metric {self.metric!r} in the exposition")
            return Reading(t, values[self.metric], None)
        watts = values.get(DCGM_POWER)
        energy = values.get(DCGM_ENERGY)
        if watts is None and energy is None:
            raise PowerError(f"{self.url}: neither {DCGM_POWER} nor {DCGM_ENERGY} is exported")
        return Reading(t, watts, None if energy is None else energy / 1000.0)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


class Command:
    """An external command that prints the current total watts (the first number it prints)."""

    name = "cmd"

    def __init__(self, command: str, timeout: float = 5.0) -> None:
        self.command = command
        self.timeout = timeout

    async def read(self) -> Reading:
        t0 = time.perf_counter_ns()
        proc = await asyncio.create_subprocess_shell(
            self.command,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,  # so a kill reaches the command, not just its shell
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), self.timeout)
        except BaseException as exc:  # timeout, or the poller cancelled at the end of a run
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
            if isinstance(exc, TimeoutError):
                raise PowerError(f"power command timed out after {self.timeout:g} s") from None
            raise
        match = _NUMBER.search(out.decode("utf-8", "replace"))
        if proc.returncode != 0 or match is None:
            raise PowerError(
                f"power command {self.command!r} exited {proc.returncode} without printing watts"
            )
        return Reading((t0 + time.perf_counter_ns()) // 2, float(match.group()), None)

    async def close(self) -> None:
        return None


_KINDS = {"none": False, "sim": False, "nvml": False, "dcgm": True, "prometheus": True, "cmd": True}


def validate(spec: str, *, simulated: bool) -> None:
    """Raise `ConfigError` for a `--power` value that `sampler` would not accept."""
    kind, _, arg = spec.strip().partition(":")
    needs_arg = _KINDS.get(kind.lower())
    if needs_arg is None or (needs_arg and not arg):
        sampler("?")
    if kind.lower() == "sim" and not simulated:
        sampler("sim")


def sampler(spec: str, *, sim_metrics: str | None = None) -> PowerSampler | None:
    """A sampler for `--power SPEC` (`nvml`, `dcgm:URL`, `prometheus:URL[#metric]`, `cmd:…`,
    `sim`, `none`); `sim_metrics` is the simulated engine's /metrics URL when there is one."""
    kind, _, arg = spec.strip().partition(":")
    kind = kind.lower()
    if kind == "none":
        return None
    if kind == "sim":
        if sim_metrics is None:
            raise ConfigError("--power sim reads the simulated engine; it needs no --endpoint")
        return Prometheus(sim_metrics, name="sim")
    if kind == "nvml":
        return Nvml()
    if kind == "dcgm" and arg:
        return Prometheus(arg, name="dcgm")
    if kind == "prometheus" and arg:
        url, _, metric = arg.partition("#")
        return Prometheus(url, metric or DCGM_POWER, name="prometheus")
    if kind == "cmd" and arg:
        return Command(arg)
    raise ConfigError(
        f"--power {spec!r}: expected nvml, dcgm:URL, prometheus:URL[#metric], cmd:'COMMAND', "
        "sim or none"
    )
