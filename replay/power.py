"""GPU power: samplers behind a `PowerSampler` protocol and the mean over a steady window.

Sources: NVML (nvidia-ml-py, every GPU summed; the total-energy counter when the GPU has one,
else instantaneous power), amdsmi (AMD GPUs, socket power summed), a DCGM-exporter `/metrics`
URL (energy counter `DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION` in mJ when exported, else
`DCGM_FI_DEV_POWER_USAGE` in W), any Prometheus gauge in watts, an external command that prints
watts, and the simulated engine (DCGM names). With an energy counter the window mean is ΔE/Δt
between the readings around the window; with power readings it is the time-weighted (trapezoid)
mean over the stretches between readings no further apart than `max_gap`. Either way the
readings must cover ≥ 90 % of the window, or the result is flagged and no agents/MW is derived
from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import io
import math
import os
import re
import signal
import time
from abc import ABC, abstractmethod
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


def _said(what: object) -> str:
    """A library's message on one line (amdsmi's span several)."""
    return " ".join(str(what).split())


class LocalGpus(ABC):
    """Every local GPU of one vendor through its management library, which is optional and
    imported only when chosen. Power is summed over GPUs (the energy counter too, where every GPU
    has one); `telemetry()` gives the level's GPU figures. A subclass binds one library: how to
    import and start it, list GPUs and read each one; this class combines the readings and turns
    the library's errors into `PowerError`s that say what to do."""

    name: str
    library: str
    """The library's name in messages (NVML, amdsmi)."""
    vendor: str
    module: str
    """The Python module to import."""
    package: str
    """What provides `module`, in messages."""
    install: str
    """What to install when `module` is missing or does not load (one clause)."""
    power_names: str
    """Where the power reading comes from, for the message when no GPU has one."""

    def __init__(self) -> None:
        self._lib: Any = self._import()
        self._powered: list[int] | None = None
        """GPUs that report power (found by the first read); the others are left out."""
        self._errors: tuple[type[BaseException], ...] = self._error_types()
        try:
            self._init()
        except self._errors as exc:
            raise PowerError(f"{self.library} could not start ({_said(exc)}); is there an "
                             f"{self.vendor} GPU and driver here?") from exc
        try:
            self._handles: list[Any] = list(self._list())
        except self._errors as exc:
            self._stop()
            raise PowerError(f"{self.library} could not list GPUs ({_said(exc)})") from exc
        if not self._handles:
            self._stop()
            raise PowerError(
                f"{self.library} found no GPU on this machine; choose another --power source")
        no_energy: tuple[type[BaseException], ...] = (*self._errors, NotImplementedError)
        try:
            for h in self._handles:
                self._joules(h)
            self.energy = True
        except no_energy:
            self.energy = False
        try:
            self._read()
        except PowerError as exc:
            self._stop()
            raise PowerError(f"{exc}; choose another --power source") from exc

    def _import(self) -> ModuleType:
        printed = io.StringIO()
        try:
            # amdsmi prints instead of raising when ROCm's libamd_smi.so is missing; keep its
            # words for the message (only the CLI prints)
            with contextlib.redirect_stdout(printed):
                return importlib.import_module(self.module)
        except ImportError as exc:
            raise PowerError(f"--power {self.name} needs {self.package}, which is not "
                             f"installed: {self.install}") from exc
        except Exception as exc:  # a library that imports but cannot load its C part
            said = _said(printed.getvalue()) or f"{type(exc).__name__}: {_said(exc)}"
            raise PowerError(f"--power {self.name}: {self.module} is installed but did not "
                             f"load ({said}); {self.install}") from exc

    @property
    def gpus(self) -> int:
        return len(self._handles)

    def _read(self) -> Reading:
        try:
            t = time.perf_counter_ns()
            joules = sum(self._joules(h) for h in self._handles) if self.energy else None
            each = [self._watts(h) for h in self._handles]
        except self._errors as exc:
            raise PowerError(f"{self.library} read failed ({_said(exc)})") from exc
        if self._powered is None:  # the first read, at start
            # A GPU may report no power of its own: on AMD's MI250 only the primary die reports
            # the package's power, the secondary shows 0 (Linux drm/amd/pm: "Only primary die
            # supports power data"); partitioned MI300s likewise report it once.
            self._powered = [i for i, w in enumerate(each) if w is not None]
            if not self._powered:
                raise PowerError(f"{self.library} reports no power for any GPU "
                                 f"({self.power_names})")
        gone = [i for i in self._powered if each[i] is None]
        if gone:
            raise PowerError(f"{self.library}: GPU {gone[0]} reported no power this time")
        return Reading(t, math.fsum(w for w in each if w is not None), joules)

    async def read(self) -> Reading:
        return self._read()  # these libraries answer in microseconds; no thread hop needed

    def telemetry(self) -> dict[str, float]:
        """GPU utilisation (percent) and the SM/GFX clock (MHz), each the mean over the GPUs that
        report it, and memory used (MiB, summed; left out unless every GPU reports it), as
        `replay.scrapers` names them; {} when the library cannot say."""
        out: dict[str, float] = {}
        unknown: tuple[type[BaseException], ...] = (*self._errors, AttributeError)
        for figure, per_gpu, total in (("gpu_util", self._util, False),
                                       ("gpu_mem_used_mib", self._mem_mib, True),
                                       ("sm_clock_mhz", self._clock_mhz, False)):
            try:
                values = [per_gpu(h) for h in self._handles]
            except unknown:
                continue
            known = [v for v in values if v is not None]
            if known and not (total and len(known) < len(values)):
                out[figure] = math.fsum(known) / (1 if total else len(known))
        return out

    def _stop(self) -> None:
        with contextlib.suppress(*self._errors):
            self._shutdown()

    async def close(self) -> None:
        self._stop()

    # what a library binding provides
    @abstractmethod
    def _error_types(self) -> tuple[type[BaseException], ...]: ...

    @abstractmethod
    def _init(self) -> None: ...

    @abstractmethod
    def _list(self) -> Sequence[Any]: ...

    @abstractmethod
    def _shutdown(self) -> None: ...

    @abstractmethod
    def _watts(self, handle: Any) -> float | None:
        """The GPU's power in watts; None where it reports none."""

    def _joules(self, handle: Any) -> float:
        """A cumulative energy counter in joules; NotImplementedError where there is none."""
        raise NotImplementedError

    @abstractmethod
    def _util(self, handle: Any) -> float | None: ...

    @abstractmethod
    def _mem_mib(self, handle: Any) -> float | None: ...

    @abstractmethod
    def _clock_mhz(self, handle: Any) -> float | None: ...


class Nvml(LocalGpus):
    """All local NVIDIA GPUs through NVML (nvidia-ml-py). Uses
    `nvmlDeviceGetTotalEnergyConsumption` (mJ since driver load) when every GPU supports it, and
    `nvmlDeviceGetPowerUsage` (mW) always."""

    name = "nvml"
    library = "NVML"
    vendor = "NVIDIA"
    module = "pynvml"
    package = "nvidia-ml-py"
    power_names = "nvmlDeviceGetPowerUsage"
    install = ("install the 'nvml' extra (uv sync --extra nvml, or pip install "
               "'agentload[nvml]')")

    def _error_types(self) -> tuple[type[BaseException], ...]:
        return (self._lib.NVMLError,)

    def _init(self) -> None:
        self._lib.nvmlInit()

    def _list(self) -> Sequence[Any]:
        nv = self._lib
        return [nv.nvmlDeviceGetHandleByIndex(i) for i in range(nv.nvmlDeviceGetCount())]

    def _shutdown(self) -> None:
        self._lib.nvmlShutdown()

    def _watts(self, handle: Any) -> float | None:
        return float(self._lib.nvmlDeviceGetPowerUsage(handle)) / 1000.0

    def _joules(self, handle: Any) -> float:
        return float(self._lib.nvmlDeviceGetTotalEnergyConsumption(handle)) / 1000.0

    def _util(self, handle: Any) -> float | None:
        return float(self._lib.nvmlDeviceGetUtilizationRates(handle).gpu)

    def _mem_mib(self, handle: Any) -> float | None:
        return float(self._lib.nvmlDeviceGetMemoryInfo(handle).used) / 2**20

    def _clock_mhz(self, handle: Any) -> float | None:
        return float(self._lib.nvmlDeviceGetClockInfo(handle, self._lib.NVML_CLOCK_SM))


def _amd(value: object, below: float) -> float | None:
    """An amdsmi figure, or None where the library says it has none: its Python interface turns
    the C library's "unsupported" sentinels (0xFFFF, UINT32_MAX) into the string "N/A", and
    older versions pass some through as numbers."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < below:
        return None
    return float(value)


class Amdsmi(LocalGpus):
    """All local AMD GPUs through AMD SMI's Python library (`amdsmi`, which ships with ROCm).
    NOT validated on AMD hardware: written against AMD's documentation and source (ROCm/amdsmi:
    py-interface/amdsmi_interface.py, docs/how-to/using-amdsmi-for-python.md,
    src/amd_smi/amd_smi.cc; the `amdsmi_power_info_t` reference, ROCm 6.2–7.1) and tested
    against a fake with the same shapes. Power only, no energy counter: the counter's resolution
    and key changed between releases (`amdsmi_get_energy_count`)."""

    name = "amdsmi"
    library = "amdsmi"
    vendor = "AMD"
    module = "amdsmi"
    package = "AMD SMI's Python library (amdsmi, part of ROCm)"
    power_names = "current_socket_power, average_socket_power and socket_power are N/A or 0"
    install = ("install the amdsmi that matches your ROCm (pip install /opt/rocm/share/amd_smi, "
               "after apt install amd-smi-lib)")

    def _error_types(self) -> tuple[type[BaseException], ...]:
        return (self._lib.AmdSmiException,)  # base of its library, retry and parameter errors

    def _init(self) -> None:
        self._lib.amdsmi_init()  # AmdSmiInitFlags.INIT_AMD_GPUS by default: GPUs only

    def _list(self) -> Sequence[Any]:
        return list(self._lib.amdsmi_get_processor_handles())

    def _shutdown(self) -> None:
        self._lib.amdsmi_shut_down()

    def _watts(self, handle: Any) -> float | None:
        # amdsmi_get_power_info: W. MI300 and later fill `current_socket_power` (instant), Navi
        # and MI200 and earlier `average_socket_power`; ROCm 7 adds `socket_power` (W on bare
        # metal). amd-smi's own monitor takes current, then average. 0 counts as none (a
        # secondary die's).
        info = self._lib.amdsmi_get_power_info(handle)
        for key in ("current_socket_power", "average_socket_power", "socket_power"):
            watts = _amd(info.get(key), 0xFFFF)
            if watts:
                return watts
        return None

    def _util(self, handle: Any) -> float | None:
        # amdsmi_get_gpu_activity: graphics engine usage, percent (0-100)
        return _amd(self._lib.amdsmi_get_gpu_activity(handle).get("gfx_activity"), 101)

    def _mem_mib(self, handle: Any) -> float | None:
        # amdsmi_get_gpu_vram_usage: MiB (amd_smi.cc divides the bytes by 1024 * 1024)
        return _amd(self._lib.amdsmi_get_gpu_vram_usage(handle).get("vram_used"), 0xFFFFFFFF)

    def _clock_mhz(self, handle: Any) -> float | None:
        # amdsmi_get_clock_info(handle, AmdSmiClkType.GFX)["clk"]: the current GFX clock, MHz
        info = self._lib.amdsmi_get_clock_info(handle, self._lib.AmdSmiClkType.GFX)
        return _amd(info.get("clk"), 0xFFFFFFFF)


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


_KINDS = {"none": False, "sim": False, "nvml": False, "amdsmi": False, "dcgm": True,
          "prometheus": True, "cmd": True}


def validate(spec: str, *, simulated: bool) -> None:
    """Raise `ConfigError` for a `--power` value that `sampler` would not accept."""
    kind, _, arg = spec.strip().partition(":")
    needs_arg = _KINDS.get(kind.lower())
    if needs_arg is None or (needs_arg and not arg):
        sampler("?")
    if kind.lower() == "sim" and not simulated:
        sampler("sim")


def sampler(spec: str, *, sim_metrics: str | None = None) -> PowerSampler | None:
    """A sampler for `--power SPEC` (`nvml`, `amdsmi`, `dcgm:URL`, `prometheus:URL[#metric]`,
    `cmd:…`, `sim`, `none`); `sim_metrics` is the simulated engine's /metrics URL when there is
    one."""
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
    if kind == "amdsmi":
        return Amdsmi()
    if kind == "dcgm" and arg:
        return Prometheus(arg, name="dcgm")
    if kind == "prometheus" and arg:
        url, _, metric = arg.partition("#")
        return Prometheus(url, metric or DCGM_POWER, name="prometheus")
    if kind == "cmd" and arg:
        return Command(arg)
    raise ConfigError(
        f"--power {spec!r}: expected nvml, amdsmi, dcgm:URL, prometheus:URL[#metric], "
        "cmd:'COMMAND', sim or none"
    )
