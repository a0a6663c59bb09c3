"""Power: time-weighted and energy-counter window means, the coverage check, and every sampler
(NVML through a fake pynvml module, Prometheus/DCGM over loopback, an external command)."""

from __future__ import annotations

import asyncio
import shlex
import sys
import time
import types
from pathlib import Path

import pytest
from aiohttp import web
from fixtures_replay import running

from replay.errors import ConfigError, PowerError
from replay.level import power_summary
from replay.power import (
    Command,
    Nvml,
    Prometheus,
    Reading,
    Recorder,
    sampler,
    validate,
    window_mean,
)
from replay.results import Level

S = 1_000_000_000


def test_time_weighted_mean_of_power_readings() -> None:
    # 100 W for the first half of the window, 300 W for the second (step at t=5 s)
    rs = [Reading(0, 100.0), Reading(5 * S, 100.0), Reading(5 * S + 1, 300.0),
          Reading(10 * S, 300.0)]
    wp = window_mean(rs, 0, 10 * S)
    assert wp.mode == "power"
    assert wp.mean_w == pytest.approx(200.0, rel=1e-6)
    assert wp.coverage == pytest.approx(1.0)
    assert wp.ok


def test_uneven_sampling_is_weighted_by_time_not_count() -> None:
    rs = [Reading(0, 100.0)] + [Reading(i * S // 100, 100.0) for i in range(1, 100)]
    rs += [Reading(S, 500.0), Reading(10 * S, 500.0)]
    wp = window_mean(rs, 0, 10 * S, max_gap_s=100)
    # 1 s near 100 W, 9 s at 500 W (the ramp between the last two readings is trapezoidal)
    assert 440 < wp.mean_w < 500  # type: ignore[operator]


def test_energy_counter_deltas_are_preferred() -> None:
    rs = [Reading(i * S, watts=999.0, joules=1000.0 + 250.0 * i) for i in range(12)]
    wp = window_mean(rs, 1 * S, 11 * S)
    assert wp.mode == "energy"
    assert wp.mean_w == pytest.approx(250.0)
    assert wp.energy_j == pytest.approx(2500.0)


def test_energy_counter_interpolates_at_window_edges() -> None:
    rs = [Reading(0, joules=0.0), Reading(10 * S, joules=1000.0)]
    wp = window_mean(rs, 2 * S, 7 * S)
    assert wp.mean_w == pytest.approx(100.0)
    assert wp.coverage == pytest.approx(1.0)


def test_a_counter_that_goes_backwards_falls_back_to_power_readings() -> None:
    rs = [Reading(0, 200.0, 50.0), Reading(5 * S, 200.0, 10.0), Reading(10 * S, 200.0, 20.0)]
    wp = window_mean(rs, 0, 10 * S)
    assert wp.mode == "power"
    assert wp.mean_w == pytest.approx(200.0)


def test_poor_coverage_is_flagged() -> None:
    rs = [Reading(0, 100.0), Reading(4 * S, 100.0)]
    wp = window_mean(rs, 0, 10 * S)
    assert wp.coverage == pytest.approx(0.4)
    assert not wp.ok
    assert "cover 40%" in wp.problem


def test_gaps_between_readings_do_not_count_as_coverage() -> None:
    rs = [Reading(0, 100.0), Reading(1 * S, 100.0), Reading(9 * S, 100.0), Reading(10 * S, 100.0)]
    wp = window_mean(rs, 0, 10 * S, max_gap_s=2)
    assert wp.coverage == pytest.approx(0.2)
    assert not wp.ok


def test_no_readings_means_no_mean() -> None:
    wp = window_mean([], 0, 10 * S)
    assert wp.mean_w is None
    assert not wp.ok


# -- NVML through a fake pynvml module ---------------------------------------------------


class FakeNVMLError(Exception):
    pass


def fake_pynvml(
    *, gpus: int = 2, energy: bool = True, init_fails: bool = False
) -> types.ModuleType:
    mod = types.ModuleType("pynvml")
    state = {"mj": [0] * gpus, "shutdown": False}

    def init() -> None:
        if init_fails:
            raise FakeNVMLError("Driver Not Loaded")

    def total_energy(h: int) -> int:
        if not energy:
            raise FakeNVMLError("Not Supported")
        state["mj"][h] += 1000 * (h + 1)  # type: ignore[index]
        return state["mj"][h]  # type: ignore[index]

    mod.NVMLError = FakeNVMLError  # type: ignore[attr-defined]
    mod.nvmlInit = init  # type: ignore[attr-defined]
    mod.nvmlShutdown = lambda: state.__setitem__("shutdown", True)  # type: ignore[attr-defined]
    mod.nvmlDeviceGetCount = lambda: gpus  # type: ignore[attr-defined]
    mod.nvmlDeviceGetHandleByIndex = lambda i: i  # type: ignore[attr-defined]
    mod.nvmlDeviceGetTotalEnergyConsumption = total_energy  # type: ignore[attr-defined]
    mod.nvmlDeviceGetPowerUsage = lambda h: 350_000 + 1000 * h  # type: ignore[attr-defined]
    mod.NVML_CLOCK_SM = 1  # type: ignore[attr-defined]
    mod.nvmlDeviceGetUtilizationRates = (  # type: ignore[attr-defined]
        lambda h: types.SimpleNamespace(gpu=90 - 20 * h, memory=40))
    mod.nvmlDeviceGetMemoryInfo = (  # type: ignore[attr-defined]
        lambda h: types.SimpleNamespace(used=(60 + h) * 2**30, total=80 * 2**30))
    mod.nvmlDeviceGetClockInfo = (  # type: ignore[attr-defined]
        lambda h, kind: 1980 - 20 * h if kind == 1 else 0)
    mod.state = state  # type: ignore[attr-defined]
    return mod


@pytest.fixture
def pynvml(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    mod = fake_pynvml()
    monkeypatch.setitem(sys.modules, "pynvml", mod)
    return mod


async def test_nvml_sums_every_gpu_and_reads_the_energy_counter(pynvml: types.ModuleType) -> None:
    nv = Nvml()
    assert nv.energy
    assert nv.gpus == 2
    r1 = await nv.read()
    r2 = await nv.read()
    assert r1.watts == pytest.approx(701.0)  # 350 W + 351 W
    assert r1.joules is not None
    assert r2.joules is not None
    assert r2.joules - r1.joules == pytest.approx(3.0)  # 1 J + 2 J from the two GPUs
    await nv.close()
    assert pynvml.state["shutdown"]


def test_nvml_gives_gpu_telemetry_for_the_level_figures(pynvml: types.ModuleType) -> None:
    from replay.power import Nvml

    assert Nvml().telemetry() == {"gpu_util": 80.0, "gpu_mem_used_mib": 121 * 1024,
                                  "sm_clock_mhz": 1970.0}


async def test_nvml_without_energy_support_reads_power(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(gpus=1, energy=False))
    nv = Nvml()
    r = await nv.read()
    assert not nv.energy
    assert r.joules is None
    assert r.watts == pytest.approx(350.0)


def test_nvml_errors_are_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(init_fails=True))
    with pytest.raises(PowerError, match="NVIDIA GPU"):
        Nvml()
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(gpus=0))
    with pytest.raises(PowerError, match="no GPU"):
        Nvml()
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails as if not installed
    with pytest.raises(PowerError, match="nvml' extra"):
        Nvml()


# -- Prometheus / DCGM / command --------------------------------------------------------

DCGM = """# HELP DCGM_FI_DEV_POWER_USAGE Power draw (in W).
# TYPE DCGM_FI_DEV_POWER_USAGE gauge
DCGM_FI_DEV_POWER_USAGE{gpu="0",UUID="GPU-a"} 300.5
DCGM_FI_DEV_POWER_USAGE{gpu="1",UUID="GPU-b"} 199.5
# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION counter
DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{gpu="0"} 5000
DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{gpu="1"} 7000
node_power_watts 123
"""


async def test_dcgm_exporter_text_sums_gpus_and_converts_millijoules() -> None:
    async def metrics(request: web.Request) -> web.Response:
        return web.Response(text=DCGM)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    async with running(app) as url:
        dcgm = sampler(f"dcgm:{url}/metrics")
        assert isinstance(dcgm, Prometheus)
        r = await dcgm.read()
        assert r.watts == pytest.approx(500.0)
        assert r.joules == pytest.approx(12.0)
        gauge = sampler(f"prometheus:{url}/metrics#node_power_watts")
        assert gauge is not None
        g = await gauge.read()
        assert g.watts == 123
        assert g.joules is None
        missing = Prometheus(f"{url}/metrics", "nope")
        with pytest.raises(PowerError, match="nope"):
            await missing.read()
        for s in (dcgm, gauge, missing):
            await s.close()


async def test_command_sampler_reads_the_first_number() -> None:
    cmd = sampler(f"cmd:{shlex.quote(sys.executable)} -c \"print('power: 412.5 W')\"")
    assert isinstance(cmd, Command)
    assert (await cmd.read()).watts == 412.5
    bad = Command("exit 3")
    with pytest.raises(PowerError):
        await bad.read()


async def test_recorder_counts_failures_and_keeps_polling() -> None:
    class Flaky:
        name = "flaky"
        n = 0

        async def read(self) -> Reading:
            self.n += 1
            if self.n % 2:
                raise PowerError("boom")
            return Reading(self.n, 1.0)

        async def close(self) -> None:
            return None

    import asyncio

    rec = Recorder(Flaky(), interval=0.001)
    task = asyncio.create_task(rec.run())
    while len(rec.readings) < 3:  # noqa: ASYNC110 - polling the recorder under test
        await asyncio.sleep(0.001)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert rec.failures >= 3
    assert rec.last_error == "boom"


def test_power_specs() -> None:
    assert sampler("none") is None
    with pytest.raises(ConfigError):
        sampler("sim")
    assert sampler("sim", sim_metrics="http://x/metrics") is not None
    for bad in ("bogus", "dcgm", "cmd:", "prometheus"):
        with pytest.raises(ConfigError):
            validate(bad, simulated=True)
    with pytest.raises(ConfigError):
        validate("sim", simulated=False)
    validate("nvml", simulated=False)


def _pid_written(marker: Path) -> bool:
    return marker.exists() and bool(marker.read_text().strip())


def _gone(status: Path) -> bool:
    """The process is gone, or killed and waiting for init to reap it (a zombie)."""
    try:
        return "\nState:\tZ" in status.read_text()
    except FileNotFoundError:
        return True


async def test_cancelled_power_command_is_killed_with_its_children(tmp_path: Path) -> None:
    marker = tmp_path / "pid"
    cmd = Command(f"sh -c 'echo $$ > {marker}; exec sleep 30'", timeout=20)
    task = asyncio.create_task(cmd.read())
    deadline = time.monotonic() + 60  # guards against a hang; ends when the pid is written
    while not _pid_written(marker):
        assert time.monotonic() < deadline, "the power command never started"
        await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    status = Path(f"/proc/{int(marker.read_text())}/status")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if _gone(status):
            return
        await asyncio.sleep(0.02)
    pytest.fail(f"the power command ({status.parent.name}) still runs after cancellation")


async def test_a_source_failing_every_read_names_its_error_in_the_level_note() -> None:
    class Missing:
        name = "prometheus"

        async def read(self) -> Reading:
            raise PowerError("http://h/metrics has no metric 'DCGM_FI_DEV_POWER_USAGE'")

        async def close(self) -> None:
            return None

    rec = Recorder(Missing(), interval=0.001)
    task = asyncio.create_task(rec.run())
    while rec.failures < 3:  # noqa: ASYNC110 - polling the recorder under test
        await asyncio.sleep(0.001)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    level = Level(agents=1, index=0, started=0.0, window_start=1.0, window_end=2.0,
                  warmup_s=0.0, stable=True)
    power = power_summary(rec, 0, level)
    assert power.mean_w is None
    assert power.problem.startswith(f"{rec.failures} reads failed, last: http://h/metrics has no")
    assert "no power readings cover the window" in power.problem
