"""Fake GPU management libraries with the shapes of the real ones, for `replay.power`'s
`LocalGpus` samplers: `pynvml` (nvidia-ml-py) and AMD's `amdsmi` (ROCm/amdsmi's
py-interface/amdsmi_interface.py: handles, dicts of figures, "N/A" where a GPU has none, its
exception tree). Install one with `monkeypatch.setitem(sys.modules, NAME, module)`."""

from __future__ import annotations

import types
from enum import IntEnum
from typing import Any


class FakeNVMLError(Exception):
    pass


def fake_pynvml(
    *, gpus: int = 2, energy: bool = True, init_fails: bool = False
) -> types.ModuleType:
    """GPU h draws 350 + h W, its energy counter rises (h + 1) J a read, utilisation 90 - 20h %,
    60 + h GiB used, SM clock 1980 - 20h MHz."""
    mod = types.ModuleType("pynvml")
    state: dict[str, Any] = {"mj": [0] * gpus, "shutdown": False}

    def init() -> None:
        if init_fails:
            raise FakeNVMLError("Driver Not Loaded")

    def total_energy(h: int) -> int:
        if not energy:
            raise FakeNVMLError("Not Supported")
        state["mj"][h] += 1000 * (h + 1)
        return int(state["mj"][h])

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


# -- amdsmi ------------------------------------------------------------------------------


class AmdSmiException(Exception):
    """amdsmi_exception.AmdSmiException: the base of everything the library raises."""


_STATUS = {2: "AMDSMI_STATUS_NOT_SUPPORTED - Feature not supported",
           32: "AMDSMI_STATUS_NOT_INIT - Device not initialized",
           34: "AMDSMI_STATUS_DRIVER_NOT_LOADED - Driver not loaded"}


class AmdSmiLibraryException(AmdSmiException):
    """Its text spans lines, as the real one's does."""

    def __init__(self, err_code: int) -> None:
        super().__init__(err_code)
        self.err_code = err_code
        self.err_info = _STATUS[err_code]

    def __str__(self) -> str:
        return f"Error code:\n\t{self.err_code} | {self.err_info}"


class AmdSmiParameterException(AmdSmiException):
    pass


class AmdSmiClkType(IntEnum):
    SYS = 0
    GFX = 0  # the C enum aliases GFX to SYS (AMDSMI_CLK_TYPE_GFX = AMDSMI_CLK_TYPE_SYS)
    DF = 1
    MEM = 4


class Handle:
    """amdsmi_wrapper.amdsmi_processor_handle (a ctypes pointer in the real library)."""

    def __init__(self, index: int) -> None:
        self.index = index


def fake_amdsmi(
    *, gpus: int = 2, init_fails: bool = False, power: str = "current",
    clock: bool = True, partitions: int = 1,
) -> types.ModuleType:
    """GPU i draws 700 + 10i W, reported as `current_socket_power` (MI300 and later) with
    power="current", as `average_socket_power` (MI200, Navi) with "average", neither with
    "none"; gfx activity 90 - 20i %, 60 + i GiB of VRAM used, GFX clock 2100 - 20i MHz (N/A
    with clock=False). With `partitions` > 1 the GPUs are dies or partitions of fewer devices
    and only each device's first reports power (the others 0 W). `state["fail"] = True` makes
    every read raise the library's error; `state["no_power"] = True` makes every power figure
    N/A."""
    mod = types.ModuleType("amdsmi")
    state: dict[str, Any] = {"init": False, "shutdown": False, "fail": False, "no_power": False}
    handles = [Handle(i) for i in range(gpus)]

    def check(h: object) -> Handle:
        if not state["init"]:
            raise AmdSmiLibraryException(32)  # AMDSMI_STATUS_NOT_INIT
        if not isinstance(h, Handle):
            raise AmdSmiParameterException(h)
        if state["fail"]:
            raise AmdSmiLibraryException(2)  # AMDSMI_STATUS_NOT_SUPPORTED
        return h

    def init() -> None:
        if init_fails:
            raise AmdSmiLibraryException(34)  # AMDSMI_STATUS_DRIVER_NOT_LOADED
        state["init"] = True

    def power_info(h: object) -> dict[str, object]:
        i = check(h).index
        watts: object = 700 + 10 * i
        if state["no_power"]:
            watts = "N/A"
        elif i % partitions:
            watts = 0  # as MI250's secondary die reports it
        return {  # ROCm 7's keys; "N/A" where the metrics table has no such field
            "socket_power": "N/A",
            "current_socket_power": watts if power == "current" else "N/A",
            "average_socket_power": watts if power == "average" else "N/A",
            "gfx_voltage": "N/A", "soc_voltage": "N/A", "mem_voltage": "N/A",
            "power_limit": 750,
        }

    def activity(h: object) -> dict[str, object]:
        return {"gfx_activity": 90 - 20 * check(h).index, "umc_activity": 40, "mm_activity": "N/A"}

    def vram(h: object) -> dict[str, object]:
        return {"vram_total": 196_592, "vram_used": (60 + check(h).index) * 1024}  # MiB

    def clock_info(h: object, kind: object) -> dict[str, object]:
        i = check(h).index
        if not isinstance(kind, AmdSmiClkType):
            raise AmdSmiParameterException(kind)
        clk: object = (2100 - 20 * i) if clock and kind == AmdSmiClkType.GFX else "N/A"
        return {"clk": clk, "min_clk": 500, "max_clk": 2100, "clk_locked": False,
                "clk_deep_sleep": 0}

    def shut_down() -> None:
        state["shutdown"] = True

    mod.AmdSmiException = AmdSmiException  # type: ignore[attr-defined]
    mod.AmdSmiLibraryException = AmdSmiLibraryException  # type: ignore[attr-defined]
    mod.AmdSmiParameterException = AmdSmiParameterException  # type: ignore[attr-defined]
    mod.AmdSmiClkType = AmdSmiClkType  # type: ignore[attr-defined]
    mod.amdsmi_init = init  # type: ignore[attr-defined]
    mod.amdsmi_shut_down = shut_down  # type: ignore[attr-defined]
    mod.amdsmi_get_processor_handles = lambda: list(handles)  # type: ignore[attr-defined]
    mod.amdsmi_get_power_info = power_info  # type: ignore[attr-defined]
    mod.amdsmi_get_gpu_activity = activity  # type: ignore[attr-defined]
    mod.amdsmi_get_gpu_vram_usage = vram  # type: ignore[attr-defined]
    mod.amdsmi_get_clock_info = clock_info  # type: ignore[attr-defined]
    mod.state = state  # type: ignore[attr-defined]
    return mod


AMDSMI_WITHOUT_ROCM = '''\
# What the amdsmi wheel on the package index does when ROCm's libamd_smi.so is not there: it
# prints, then fails on its first use of the library (amdsmi_wrapper.py).
_libraries = {}
print("Unable to find libamd_smi.so library try installing amd-smi-lib from your package manager")
amdsmi_init = _libraries["libamd_smi.so"].amdsmi_init
'''
"""An `amdsmi/__init__.py` that imports the way the real one does on a machine without ROCm."""
