"""The `replay` command's server-facing options end to end on loopback: the start-up probe's
findings in the output, per-level server figures and fidelity in text and JSON, --reset-cache,
--dialect, power from a source without the watts metric, and local GPU libraries (NVML,
amdsmi) as power source and telemetry."""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Callable
from pathlib import Path

import pytest
from fixtures_dialects import STREAMS, DialectServer, metrics
from fixtures_gpus import fake_amdsmi, fake_pynvml
from fixtures_replay import LIVE, app_in_thread, invoke, make_corpus

FAST = [*LIVE, "--min-requests", "3", "--wait", "fixed:0.01", "--agents", "2"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("server-cli") / "tiny.zst", sessions=3, turns=3)


def test_levels_carry_the_servers_own_figures_and_fidelity(
    corpus: Path, engine_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "r.json"
    code, text = invoke(str(corpus), "--endpoint", engine_url + "/v1", "--json", str(out),
                        *FAST)
    assert code == 0, text
    doc = json.loads(out.read_text())
    assert doc["server"]["dialect"] == "vllm"  # the simulated engine speaks vLLM's metrics
    assert doc["server"]["template_source"] == "usage"
    level = doc["levels"][-1]  # (a level too short to judge is measured again, longer)
    load = level["server"]
    assert load["prefix_queries"] > 0
    assert load["generation_tokens"] > 0
    # sampled gauge: a count was read (its values are checked exactly in test_replay_dialects)
    assert 0 <= load["running_mean"] <= load["running_max"] <= 2
    assert load["polls"] >= 2
    assert level["fidelity"]["cache_counters"] == load["cache_hit_ratio"]
    assert "fidelity: input 100.0% (max dev" in text
    assert "server: running" in text
    assert "note: server: vllm (detected)" in text


def test_reset_cache_asks_every_level_for_a_cold_cache(corpus: Path, tmp_path: Path) -> None:
    srv = DialectServer(metrics=metrics("vllm"), tokenize=True, reset="/reset_prefix_cache",
                        stream=STREAMS["vllm"])
    with app_in_thread(srv.app()) as url:
        code, text = invoke(str(corpus), "--endpoint", url + "/v1", "--reset-cache",
                            "--json", str(tmp_path / "r.json"), *FAST)
    assert code == 0, text
    assert srv.resets == 2  # the probe's check, then the one level
    assert "prefix cache emptied before each level (/reset_prefix_cache)" in text


def test_reset_cache_on_a_server_that_cannot_is_an_error_at_start(
    corpus: Path, engine_url: str
) -> None:
    code, text = invoke(str(corpus), "--endpoint", engine_url + "/v1", "--reset-cache", *FAST)
    assert code == 1
    assert "--reset-cache" in text
    assert "VLLM_SERVER_DEV_MODE=1" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--reset-cache"], "--reset-cache needs --endpoint"),
        (["--dialect", "tgi"], "--dialect 'tgi': expected one of auto, vllm"),
    ],
)
def test_bad_server_options_are_one_line_errors(corpus: Path, args: list[str],
                                                message: str) -> None:
    code, text = invoke(str(corpus), *args, *FAST)
    assert code == 1
    assert message in " ".join(text.split())


def test_power_from_a_server_without_the_watts_metric_names_it(
    corpus: Path, engine_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "r.json"
    code, text = invoke(str(corpus), "--endpoint", engine_url + "/v1", "--json", str(out),
                        "--power", f"prometheus:{engine_url}/metrics#node_gpu_watts", *FAST)
    assert code == 0, text
    level = json.loads(out.read_text())["levels"][-1]
    assert "no metric 'node_gpu_watts'" in level["power"]["problem"]
    assert "node_gpu_watts" in " ".join(text.split())


@pytest.mark.parametrize(
    ("source", "library", "watts", "clock"),
    [("nvml", lambda: fake_pynvml(energy=False), 701.0, 1970.0),  # power readings, no counter
     ("amdsmi", fake_amdsmi, 1410.0, 2090.0)],
    ids=["nvml", "amdsmi"],
)
def test_a_local_gpu_library_gives_each_level_its_power_and_gpu_figures(
    corpus: Path, engine_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    source: str, library: Callable[[], types.ModuleType], watts: float, clock: float,
) -> None:
    module = library()
    monkeypatch.setitem(sys.modules, module.__name__, module)
    out = tmp_path / "r.json"
    code, text = invoke(str(corpus), "--endpoint", engine_url + "/v1", "--json", str(out),
                        "--power", source, "--power-interval", "0.05", *FAST)
    assert code == 0, text
    doc = json.loads(out.read_text())
    assert doc["power_source"] == source
    level = doc["levels"][-1]
    assert level["power"]["source"] == source
    assert level["power"]["mean_w"] == pytest.approx(watts)  # summed over the two fake GPUs
    load = level["server"]
    assert (load["gpu_util_mean"], load["gpu_util_max"]) == (80.0, 80.0)
    assert load["gpu_mem_used_mib_max"] == 121 * 1024
    assert load["sm_clock_mhz_mean"] == clock
    assert f"GPU 80% · SM {clock:,.0f} MHz · 121.0 GiB used" in " ".join(text.split())
    assert module.state["shutdown"]
