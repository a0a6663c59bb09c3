"""Modelled serving setups: a catalogue GPU x model x parallelism turned into an engine `Profile`.

`profile(setup)` is the seam the live engine (`replay serve --gpu … --model …`) and the
virtual-time forecast share: step time from the calibrated `Roofline`, KV capacity from HBM left
after the weights, power between the catalogue's idle power and a sustained share of board power
(read off InferenceX power audits), and the error band from the
stored leave-one-out backtest (`catalog/calibration.json`, rebuilt by
`replay engines --backtest --save`).
"""

from __future__ import annotations

import functools

import msgspec

from replay.engine.catalog import CATALOG_DIR, gpu, model
from replay.engine.errors import CatalogError
from replay.engine.profiles import Accuracy, Profile
from replay.engine.roofline import Factors, Setup, SpecDecode, build, kv_capacity_tokens

CALIBRATION_FILE = CATALOG_DIR / "calibration.json"
MAX_BATCH_PER_RANK = 256
"""Sequences one attention rank runs at once (vLLM's max_num_seqs default)."""
PREFILL_BUDGET_PER_RANK = 8192
"""Tokens one attention rank computes per step (vLLM's max_num_batched_tokens)."""
POWER_SOURCE = ("https://github.com/SemiAnalysisAI/InferenceX-app/blob/main/docs/data/"
                "power-p90-backfill.json")
"""InferenceX power audits (time-weighted GPU power per run): B200 TP8 and MI355X TP4 serving
Qwen3.5 FP8 8k/1k at 1-256 concurrent users (runs 34175132645 and 33348766792, 2026-09)."""
SUSTAINED_SHARE_MOE = 0.62
"""Share of (board power - idle) a GPU draws above idle when inference of a mixture-of-experts
model saturates it: the MI355X audit levels off at 934 W of 1,400 W at 256 users. Read off the
audits, not backtested."""
SUSTAINED_SHARE_DENSE = 0.9
"""The same for a dense model, whose big GEMMs keep the tensor cores busier: MLPerf Power
5.1-0061 (8 x B200, Llama 2 70B Offline) drew 10.4 kW at the wall for the whole system, which
leaves ~0.9 of the range per GPU after ~3 kW of host, fans and NICs (our assumption)."""
MLPERF_POWER_SOURCE = ("https://github.com/mlcommons/inference_results_v5.1/tree/main/closed/"
                       "Lenovo/results/SR680a_V3_B200SXMx8_TRT")
BUSY_FLOOR = 0.4
"""Share of that sustained range any non-empty step draws (a memory-bound decode still keeps HBM
and SMs busy): B200 at 1 user drew 350 W (idle ~140 W), MI355X at 4 users 530 W (idle ~200 W).
Read off the same audits, not backtested."""


class Stored(msgspec.Struct, frozen=True, kw_only=True):
    """What `replay engines --backtest --save` writes: the fit and its backtest summary."""

    factors: Factors
    median_abs_error: float
    max_abs_error: float
    points: int
    gpus: list[str]
    models: list[str]


@functools.cache
def stored() -> Stored:
    """The calibration committed with the catalogues (fitted factors and the backtest errors)."""
    try:
        return msgspec.json.decode(CALIBRATION_FILE.read_bytes(), type=Stored)
    except (OSError, msgspec.DecodeError) as exc:
        raise CatalogError(
            f"{CALIBRATION_FILE}: cannot read the stored calibration ({exc}); rebuild it with "
            "'replay engines --backtest --save'"
        ) from None


def accuracy() -> Accuracy:
    """The error band every modelled profile carries."""
    s = stored()
    return Accuracy(median=s.median_abs_error, max=s.max_abs_error, points=s.points,
                    gpus=len(s.gpus), models=len(s.models))


def parse(
    gpu_key: str, model_key: str, *, gpus: int = 1, tp: int | None = None, ep: int = 1,
    dp_attention: bool = False, precision: str = "fp8", kv_precision: str = "fp8",
    spec_decode: str | None = None,
) -> Setup:
    """A validated `Setup` from command-line style options."""
    setup = Setup(
        gpu=gpu_key, model=model_key, gpus=gpus, tp=tp if tp is not None else gpus, ep=ep,
        dp_attention=dp_attention, precision=precision, kv_precision=kv_precision,
        spec=SpecDecode.parse(spec_decode) if spec_decode else None,
    )
    kv_capacity_tokens(setup)  # validates, and refuses a model that does not fit
    return setup


def profile(setup: Setup, *, max_batch: int | None = None, factors: Factors | None = None
            ) -> Profile:
    """The engine profile of `setup` under the stored calibration (or `factors`)."""
    g, m = gpu(setup.gpu), model(setup.model)
    f = factors if factors is not None else stored().factors
    r = build(setup, f)
    capacity = kv_capacity_tokens(setup)
    ranks = setup.gpus if setup.dp_attention else 1
    # Tokens per step where compute time reaches the weight-read time (the roofline's ridge):
    # the step size at which the GPUs run at full power.
    ridge = r.static_bytes / r.gpu_bandwidth * r.engine_flops / r.flops_per_token
    name = f"{setup.gpu}x{setup.gpus}-{setup.model}"
    share = SUSTAINED_SHARE_MOE if m.moe else SUSTAINED_SHARE_DENSE
    return Profile(
        name=name,
        description=f"{setup.label()} (roofline, calibrated)",
        model=setup.model,
        gpu_name=f"{g.name} (simulated)",
        step_overhead_s=r.fixed_s,
        prefill_s_per_token=r.flops_per_token / r.engine_flops,
        decode_s_per_seq=0.0,
        attention_s_per_kv_token=r.kv_bytes / r.gpu_bandwidth,
        kv_capacity_tokens=capacity,
        max_batch=max_batch if max_batch is not None else MAX_BATCH_PER_RANK * ranks,
        prefill_budget=PREFILL_BUDGET_PER_RANK * ranks,
        max_context=min(m.max_context, capacity),
        idle_power_w=g.idle_w * setup.gpus,
        max_power_w=(g.idle_w + share * (g.tdp_w - g.idle_w)) * setup.gpus,
        busy_floor=BUSY_FLOOR,
        saturation_tokens=max(1, round(ridge)),
        gpus=setup.gpus,
        kv_bytes_per_token=round(m.kv_bytes_per_token(setup.kv_precision)),
        roofline=r,
        accuracy=accuracy() if factors is None else None,
    )
