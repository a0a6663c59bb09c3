"""The roofline step-time model: monotonic where physics says so, and the right regime."""

from __future__ import annotations

import msgspec
import pytest

from replay.engine.errors import CatalogError
from replay.engine.roofline import Factors, Setup, SpecDecode, build, kv_capacity_tokens

FACTORS = Factors()
LLAMA = Setup(gpu="h100", model="llama-3.1-70b", gpus=2)
DEEPSEEK = Setup(gpu="h200", model="deepseek-v3", gpus=8, ep=8)


@pytest.mark.parametrize("setup", [LLAMA, DEEPSEEK], ids=["dense", "moe"])
def test_step_time_grows_with_batch_but_batching_raises_throughput(setup: Setup) -> None:
    r = build(setup, FACTORS)
    times = [r.step_time(0, b, b * 2000) for b in (1, 2, 4, 16, 64, 256)]
    assert times == sorted(times)
    rates = [b / t for b, t in zip((1, 2, 4, 16, 64, 256), times, strict=True)]
    assert rates == sorted(rates)


@pytest.mark.parametrize("setup", [LLAMA, DEEPSEEK], ids=["dense", "moe"])
def test_step_time_grows_with_context(setup: Setup) -> None:
    r = build(setup, FACTORS)
    times = [r.step_time(0, 32, 32 * ctx) for ctx in (1_000, 8_000, 32_000, 128_000)]
    assert times == sorted(times)
    assert times[-1] > times[0]
    prefill = [r.step_time(4096, 0, 0, 4096 * (ctx + 2048)) for ctx in (0, 16_000, 64_000)]
    assert prefill == sorted(prefill)
    assert prefill[-1] > prefill[0]


def test_small_batch_decode_is_memory_bound_and_long_prefill_compute_bound() -> None:
    r = build(LLAMA, FACTORS)
    compute, memory, _ = r.terms(1, 2000, 1, 2000)
    assert memory > 20 * compute
    compute, memory, _ = r.terms(16_384, 16_384, 0, 16_384**2 / 2)
    assert compute > 5 * memory


def test_more_bandwidth_speeds_decode_and_not_prefill() -> None:
    r = build(LLAMA, FACTORS)
    fast = msgspec.structs.replace(r, gpu_bandwidth=2 * r.gpu_bandwidth)
    assert fast.step_time(0, 1, 2000) < 0.7 * r.step_time(0, 1, 2000)
    assert fast.step_time(16_384, 0, 0) == pytest.approx(r.step_time(16_384, 0, 0))


def test_a_decode_step_reads_only_the_experts_its_tokens_touch() -> None:
    r = build(DEEPSEEK, FACTORS)
    _, one, _ = r.terms(1, 0, 1, 0)
    _, many, _ = r.terms(512, 0, 512, 0)
    assert many > 4 * one  # 8 of 256 experts vs nearly all of them
    assert many < (r.static_bytes + 256 * r.expert_bytes) / r.gpu_bandwidth * 1.001


def test_speculative_decoding_pays_when_drafts_are_accepted() -> None:
    plain = build(DEEPSEEK, FACTORS).step_time(0, 1, 2000)
    good = build(msgspec.structs.replace(DEEPSEEK, spec=SpecDecode.parse("mtp:3:0.7")), FACTORS)
    bad = build(msgspec.structs.replace(DEEPSEEK, spec=SpecDecode.parse("mtp:3:0")), FACTORS)
    assert good.step_time(0, 1, 2000) < 0.6 * plain
    assert bad.step_time(0, 1, 2000) > plain
    assert SpecDecode.parse("mtp:3:0.7").expected_tokens == pytest.approx(1 + 0.7 + 0.49 + 0.343)


@pytest.mark.parametrize("text", ["mtp", "mtp:0:0.5", "mtp:2:1.5", "mtp:x:0.5", "mtp:1:0.5:9"])
def test_a_bad_spec_decode_option_is_a_clear_error(text: str) -> None:
    with pytest.raises(CatalogError, match="METHOD:DRAFT:ACCEPTANCE"):
        SpecDecode.parse(text)


def test_kv_capacity_follows_hbm_left_after_the_weights() -> None:
    one = kv_capacity_tokens(Setup(gpu="h200", model="llama-3.1-70b"))
    two = kv_capacity_tokens(Setup(gpu="h200", model="llama-3.1-70b", gpus=2))
    assert two > 2 * one  # the second GPU's weights half is free for KV too
    fp8 = kv_capacity_tokens(Setup(gpu="b200", model="llama-3.1-70b", precision="fp4"))
    bf16 = kv_capacity_tokens(Setup(gpu="b200", model="llama-3.1-70b", precision="fp4",
                                    kv_precision="bf16"))
    assert fp8 == pytest.approx(2 * bf16, rel=0.01)
    # MLA's single latent is replicated on every TP rank unless attention is data-parallel.
    tp = kv_capacity_tokens(DEEPSEEK)
    dp = kv_capacity_tokens(msgspec.structs.replace(DEEPSEEK, dp_attention=True, tp=1))
    assert dp > 4 * tp


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (Setup(gpu="h100", model="llama-3.1-405b", precision="bf16"), "needs about 8"),
        (Setup(gpu="h100", model="llama-3.1-70b", gpus=2, ep=2), "dense model"),
        (Setup(gpu="h100", model="llama-3.1-70b", gpus=4, tp=2), "one TP group"),
        (Setup(gpu="h100", model="llama-3.1-70b", gpus=16), "scale-up domain"),
        (Setup(gpu="h100", model="llama-3.1-70b", precision="int3"), "--precision 'int3'"),
    ],
)
def test_setups_the_model_cannot_stand_for_are_refused(setup: Setup, message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        kv_capacity_tokens(setup)


@pytest.mark.parametrize(
    "setup",
    [
        LLAMA,
        DEEPSEEK,
        Setup(gpu="b200", model="deepseek-v3.2", gpus=8, ep=8),  # sparse top-k boundary
        msgspec.structs.replace(DEEPSEEK, spec=SpecDecode.parse("mtp:2:0.6")),
    ],
    ids=["dense", "moe", "sparse", "mtp"],
)
@pytest.mark.parametrize(("seqs", "kv", "steps"), [(1, 100, 1), (8, 1000, 700), (64, 64_000, 3000)])
def test_steps_time_is_exactly_the_sum_of_step_times(
    setup: Setup, seqs: int, kv: int, steps: int
) -> None:
    r = build(setup, FACTORS)
    looped = sum(r.step_time(0, seqs, kv + i * seqs) for i in range(steps))
    assert r.steps_time(seqs, kv, steps) == pytest.approx(looped, rel=1e-9)
    assert r.steps_time(0, kv, steps) == 0
