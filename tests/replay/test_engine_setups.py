"""Modelled setups as engine profiles: the seam `replay serve` and the forecast share."""

from __future__ import annotations

import pytest

from replay.engine import PROFILES, Engine
from replay.engine.errors import CatalogError
from replay.engine.setup_options import setup_profile
from replay.engine.setups import parse, profile


def test_a_modelled_profile_takes_its_step_time_from_the_roofline() -> None:
    p = profile(parse("h200", "deepseek-v3", gpus=8, ep=8))
    assert p.roofline is not None
    assert not p.instant
    assert p.step_time(0, 4, 8000) == p.roofline.step_time(0, 4, 8000)
    assert p.step_time(0, 0, 0) == 0
    assert p.gpus == 8
    assert p.max_power_w == pytest.approx(8 * (75 + 0.62 * (700 - 75)))
    assert p.idle_power_w == 8 * 75
    assert p.power(0) == p.idle_power_w < p.power(1) < p.power(100_000) == p.max_power_w
    assert p.kv_capacity_tokens > 100_000
    assert p.max_context <= 163_840


def test_every_profile_states_its_error_band() -> None:
    modelled = profile(parse("b200", "llama-3.1-70b", precision="fp4"))
    assert modelled.accuracy is not None
    assert "median error" in modelled.error_band
    assert "public measurements" in modelled.error_band
    assert "uncalibrated" in PROFILES["h100"].error_band
    assert "uncalibrated" in PROFILES["b200"].error_band
    assert "not a hardware estimate" in PROFILES["instant"].error_band


def test_faster_hardware_models_faster_decode() -> None:
    def speed(gpu: str) -> float:
        p = profile(parse(gpu, "llama-3.1-70b", gpus=2, precision="fp8"))
        return 1 / p.step_time(0, 1, 4000)

    assert speed("h100") < speed("h200") < speed("b200")


def test_options_need_both_gpu_and_model() -> None:
    assert setup_profile(None, None) is None
    with pytest.raises(CatalogError, match="--gpu and --model go together"):
        setup_profile("h200", None)


async def test_the_engine_serves_a_request_on_a_modelled_profile() -> None:
    p = profile(parse("mi355x", "gpt-oss-120b", precision="fp4"))
    async with Engine(p, time_scale=0.01) as engine:
        gen = engine.submit(list(range(3000)), max_tokens=8, ignore_eos=True)
        await gen.wait()
        stats = engine.stats()
    assert gen.generated == 8
    assert stats.generation_tokens_total == 8
    assert stats.energy_j > 0


@pytest.mark.parametrize("name", ["h100", "modelled"])
def test_steps_time_sums_decode_steps_for_both_kinds_of_profile(name: str) -> None:
    p = PROFILES["h100"] if name == "h100" else profile(parse("h200", "qwen3-235b-a22b",
                                                              gpus=8, ep=8))
    looped = sum(p.step_time(0, 16, 5000 + 16 * i) for i in range(400))
    assert p.steps_time(16, 5000, 400) == pytest.approx(looped, rel=1e-9)


def test_modelled_profiles_carry_the_models_kv_bytes() -> None:
    p = profile(parse("h200", "llama-3.1-70b", gpus=2))
    assert p.kv_bytes_per_token == 163_840


def test_replay_names_the_error_band_of_the_profile_it_runs() -> None:
    from replay.simulated import error_band

    assert error_band("h100") == PROFILES["h100"].error_band
    assert error_band("no-such-profile") == "uncalibrated"


def test_power_follows_the_measurements_it_was_read_from() -> None:
    # B200 TP8 at one user drew ~350 W per GPU; MI355X TP4 saturated at ~934 W per GPU.
    b200 = profile(parse("b200", "qwen3-235b-a22b", gpus=8, ep=8, precision="fp8"))
    assert b200.power(1) / 8 == pytest.approx(350, rel=0.05)
    mi355x = profile(parse("mi355x", "qwen3-235b-a22b", gpus=4, ep=4, precision="fp8"))
    assert mi355x.power(1_000_000) / 4 == pytest.approx(934, rel=0.05)
    # MLPerf Power: 8 x B200 on Llama 2 70B Offline, 10.4 kW at the wall with the host.
    dense = profile(parse("b200", "llama-2-70b", precision="fp4"))
    assert 7_000 < 8 * dense.power(1_000_000) < 8_000
