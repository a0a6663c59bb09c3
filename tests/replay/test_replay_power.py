"""Power: time-weighted and energy-counter window means, the coverage check, and every sampler
(NVML and amdsmi through fake library modules, Prometheus/DCGM over loopback, an external
command)."""

from __future__ import annotations

import asyncio
import shlex
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp import web
from fixtures_gpus import AMDSMI_WITHOUT_ROCM, fake_amdsmi, fake_pynvml
from fixtures_replay import running

from replay.errors import ConfigError, PowerError
from replay.level import power_summary
from replay.power import (
    Amdsmi,
    Command,
    LocalGpus,
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


async def record_until(rec: Recorder, done: Callable[[Recorder], bool]) -> None:
    """Run the recorder until `done(rec)`, then stop it."""
    task = asyncio.create_task(rec.run())
    while not done(rec):  # noqa: ASYNC110 - polling the recorder under test
        await asyncio.sleep(0.001)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


# -- NVML through a fake pynvml module ---------------------------------------------------


def install(monkeypatch: pytest.MonkeyPatch, library: types.ModuleType) -> types.ModuleType:
    """Make `import NAME` give the fake library module."""
    monkeypatch.setitem(sys.modules, library.__name__, library)
    return library


@pytest.fixture
def pynvml(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    return install(monkeypatch, fake_pynvml())


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


@pytest.mark.parametrize(("gpus", "library", "clock"),
                         [(Nvml, fake_pynvml, 1970.0), (Amdsmi, fake_amdsmi, 2090.0)])
def test_each_library_gives_gpu_telemetry_for_the_level_figures(
    monkeypatch: pytest.MonkeyPatch, gpus: type[LocalGpus],
    library: Callable[[], types.ModuleType], clock: float,
) -> None:
    install(monkeypatch, library())
    assert gpus().telemetry() == {"gpu_util": 80.0, "gpu_mem_used_mib": 121 * 1024,
                                  "sm_clock_mhz": clock}


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


# -- amdsmi (AMD) through a fake amdsmi module -------------------------------------------


@pytest.fixture
def amdsmi(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    return install(monkeypatch, fake_amdsmi())


async def test_amdsmi_sums_the_socket_power_of_every_gpu(amdsmi: types.ModuleType) -> None:
    amd = sampler("amdsmi")
    assert isinstance(amd, Amdsmi)
    assert amd.gpus == 2
    assert not amd.energy  # power readings only
    r = await amd.read()
    assert r.watts == pytest.approx(1410.0)  # 700 W + 710 W
    assert r.joules is None
    await amd.close()
    assert amdsmi.state["shutdown"]


async def test_amdsmi_reads_average_power_where_a_gpu_has_no_current_power(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    install(monkeypatch, fake_amdsmi(gpus=1, power="average"))
    assert (await Amdsmi().read()).watts == pytest.approx(700.0)  # MI200 and Navi report this


async def test_amdsmi_sums_the_partitions_that_report_power(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 4 dies of 2 devices (MI250-like): dies 0 and 2 report each device's power, 1 and 3 0 W
    lib = install(monkeypatch, fake_amdsmi(gpus=4, partitions=2))
    amd = Amdsmi()
    assert (await amd.read()).watts == pytest.approx(1420.0)  # 700 W + 720 W
    lib.state["no_power"] = True  # a GPU that reported power stops: no silently low sum
    with pytest.raises(PowerError, match="amdsmi: GPU 0 reported no power this time"):
        await amd.read()


async def test_amdsmi_power_readings_feed_the_recorder(amdsmi: types.ModuleType) -> None:
    rec = Recorder(Amdsmi(), interval=0.001)
    await record_until(rec, lambda r: len(r.readings) >= 5)
    await rec.sampler.close()
    first, last = rec.readings[0].t, rec.readings[-1].t
    wp = window_mean(rec.readings, first, last, max_gap_s=3600)  # a stalled loop is no gap here
    assert (wp.mode, wp.ok, rec.failures) == ("power", True, 0)
    assert wp.mean_w == pytest.approx(1410.0)


def test_amdsmi_leaves_out_a_figure_the_gpus_report_as_na(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    install(monkeypatch, fake_amdsmi(clock=False))
    assert Amdsmi().telemetry() == {"gpu_util": 80.0, "gpu_mem_used_mib": 121 * 1024}


def test_amdsmi_errors_are_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, fake_amdsmi(init_fails=True))
    with pytest.raises(PowerError) as caught:
        Amdsmi()
    assert str(caught.value) == (  # on one line, though the library's own text spans three
        "amdsmi could not start (Error code: 34 | AMDSMI_STATUS_DRIVER_NOT_LOADED - Driver not "
        "loaded); is there an AMD GPU and driver here?")
    install(monkeypatch, fake_amdsmi(gpus=0))
    with pytest.raises(PowerError, match="amdsmi found no GPU"):
        Amdsmi()
    no_power = install(monkeypatch, fake_amdsmi(power="none"))
    with pytest.raises(PowerError, match=r"amdsmi reports no power for any GPU "
                                         r"\(current_socket_power.*another --power source"):
        Amdsmi()
    assert no_power.state["shutdown"]  # the library is shut down again


def test_amdsmi_not_installed_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "amdsmi", None)  # import fails as if not installed
    with pytest.raises(PowerError) as caught:
        sampler("amdsmi")
    message = str(caught.value)
    assert message.startswith("--power amdsmi needs AMD SMI's Python library (amdsmi, part of "
                              "ROCm), which is not installed: install the amdsmi that matches")
    assert "/opt/rocm/share/amd_smi" in message
    assert "\n" not in message


def test_amdsmi_installed_without_rocm_says_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "amdsmi").mkdir()
    (tmp_path / "amdsmi" / "__init__.py").write_text(AMDSMI_WITHOUT_ROCM)
    monkeypatch.delitem(sys.modules, "amdsmi", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PowerError, match="amdsmi is installed but did not load "
                                         r"\(Unable to find libamd_smi.so library"):
        Amdsmi()
    assert "amdsmi" not in sys.modules
    assert capsys.readouterr().out == ""  # the library's print is kept for the message


async def test_an_amd_gpu_failing_every_read_says_so_in_the_level_note(
    amdsmi: types.ModuleType,
) -> None:
    amd = Amdsmi()
    amdsmi.state["fail"] = True  # e.g. the driver went away after start
    rec = Recorder(amd, interval=0.001)
    await record_until(rec, lambda r: r.failures >= 3)
    await amd.close()
    level = Level(agents=1, index=0, started=0.0, window_start=1.0, window_end=2.0,
                  warmup_s=0.0, stable=True)
    power = power_summary(rec, 0, level)
    assert (power.source, power.mean_w, rec.readings) == ("amdsmi", None, [])
    assert power.problem.startswith(
        f"{rec.failures} reads failed, last: amdsmi read failed (Error code: 2 | "
        "AMDSMI_STATUS_NOT_SUPPORTED - Feature not supported)")
    assert "no power readings cover the window" in power.problem


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

    rec = Recorder(Flaky(), interval=0.001)
    await record_until(rec, lambda r: len(r.readings) >= 3)
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
    validate("amdsmi", simulated=False)


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
    await record_until(rec, lambda r: r.failures >= 3)
    level = Level(agents=1, index=0, started=0.0, window_start=1.0, window_end=2.0,
                  warmup_s=0.0, stable=True)
    power = power_summary(rec, 0, level)
    assert power.mean_w is None
    assert power.problem.startswith(f"{rec.failures} reads failed, last: http://h/metrics has no")
    assert "no power readings cover the window" in power.problem
