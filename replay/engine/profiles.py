"""Profiles for the simulated engine: the numbers behind its step-time and power models.

A profile is either a linear shape (the built-in `h100`, `b200` and `instant` shortcuts) or a
modelled serving setup whose step time comes from a `Roofline` of a catalogue GPU x model x
parallelism, calibrated against public measurements (`replay.engine.setups.profile`); then
`accuracy` carries the leave-one-out error band every output must state.

The built-in profiles are plausible shapes for a mid-size dense model (about 32B parameters, FP8
weights and KV cache, grouped-query attention) served by vLLM-like software on one GPU. They are
derived from public datasheet figures (memory bandwidth, FP8 throughput, board power) with round
efficiency factors; they are NOT calibrated measurements and must not be quoted as benchmark
results. Every figure the engine reports while using them is labelled "simulated".
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from replay.engine.roofline import Roofline


class Accuracy(msgspec.Struct, frozen=True, kw_only=True):
    """How far a profile's step-time model is from public measurements (leave-one-out)."""

    median: float
    """Median absolute relative error over the calibration points."""
    max: float
    """Largest absolute relative error."""
    points: int
    gpus: int
    """GPU kinds the points cover."""
    models: int
    method: str = "leave-one-out backtest (replay engines --backtest)"


class Profile(msgspec.Struct, frozen=True, kw_only=True):
    """One simulated serving setup. Times are seconds of modelled GPU time; see `Engine`.

    Step time = `step_overhead_s` + `prefill_s_per_token` x prefill tokens in the step
    + `decode_s_per_seq` x sequences decoding in the step
    + `attention_s_per_kv_token` x KV tokens held by the running sequences.
    Power while a step runs = idle + (max - idle) x utilization, where utilization is
    `busy_floor` + (1 - `busy_floor`) x min(1, step tokens / `saturation_tokens`);
    between steps the GPU draws `idle_power_w`.
    """

    name: str
    """Key in `PROFILES`, shown by /health and /metrics."""
    description: str
    """One line for humans: what hardware and model the numbers stand for."""
    model: str
    """Model id listed by /v1/models (requests may name any model; it is echoed back)."""
    gpu_name: str
    """`modelName` label on the DCGM metrics."""
    step_overhead_s: float
    """Fixed cost of one engine step: reading the weights once plus scheduler/launch overhead."""
    prefill_s_per_token: float
    """Compute time per prompt token prefilled (about 2 x params FLOPs / effective FLOP/s)."""
    decode_s_per_seq: float
    """Extra time per sequence decoding in the step (sampling, small-batch inefficiency)."""
    attention_s_per_kv_token: float
    """Time per KV-cache token held by running sequences (attention reads it every step)."""
    kv_capacity_tokens: int
    """KV-cache size in tokens (HBM left after weights and activations / bytes per token)."""
    block_size: int = 16
    """Tokens per KV block; prefix-cache hits are whole blocks (vLLM's default is 16)."""
    max_batch: int = 256
    """Most sequences running at once (vLLM `max_num_seqs`)."""
    prefill_budget: int = 8192
    """Tokens computed per step, decode tokens included; longer prompts prefill in chunks
    (vLLM `max_num_batched_tokens` with chunked prefill)."""
    max_context: int = 131_072
    """Prompt + max_tokens limit (vLLM `max_model_len`); larger requests get 400."""
    default_max_tokens: int = 256
    """Output limit when a request gives no max_tokens."""
    natural_median_tokens: int = 150
    """Median of the seeded log-normal "natural" output length used when a request does not ask
    for an exact length (no `ignore_eos`); about the coding-agent median output."""
    idle_power_w: float = 90.0
    """Board power with the model loaded and nothing running."""
    max_power_w: float = 700.0
    """Board power at full utilization (the TDP)."""
    busy_floor: float = 0.35
    """Utilization of any non-empty step (a memory-bound decode still draws well above idle)."""
    saturation_tokens: int = 4096
    """Tokens in one step (prefill + decode) at which utilization reaches 1."""
    gpus: int = 1
    """GPUs this engine stands for (one tensor/expert-parallel group); the power figures are
    the whole group's."""
    kv_bytes_per_token: int = 131_072
    """KV-cache bytes per token (all layers), for KV transfers between disaggregated prefill
    and decode engines."""
    roofline: Roofline | None = None
    """When set, step time comes from this roofline instead of the four linear coefficients."""
    accuracy: Accuracy | None = None
    """The calibrated model's error band; None for an uncalibrated shape."""

    @property
    def error_band(self) -> str:
        """One line every output that uses this profile prints."""
        a = self.accuracy
        if a is None:
            if self.instant:
                return "no modelled time (instant engine): not a hardware estimate"
            return "uncalibrated: a plausible hand-set shape with no published error"
        return (f"calibrated roofline: median error {a.median:.0%}, max {a.max:.0%} over "
                f"{a.points} public measurements ({a.gpus} GPU kinds, {a.models} models; "
                f"{a.method})")

    @property
    def instant(self) -> bool:
        """True when the profile models no time at all (steps run back to back)."""
        return (
            self.roofline is None
            and self.step_overhead_s == 0
            and self.prefill_s_per_token == 0
            and self.decode_s_per_seq == 0
            and self.attention_s_per_kv_token == 0
        )

    def step_time(self, prefill_tokens: int, decode_seqs: int, kv_tokens: int,
                  prefill_pairs: float | None = None) -> float:
        """Modelled seconds for one step (0 for an empty step).

        `prefill_pairs`: (prompt token, cached token) pairs the step's prefill chunks attend
        over, when the caller knows them (only the roofline uses it)."""
        if prefill_tokens == 0 and decode_seqs == 0:
            return 0.0
        if self.roofline is not None:
            return self.roofline.step_time(prefill_tokens, decode_seqs, kv_tokens, prefill_pairs)
        return (
            self.step_overhead_s
            + self.prefill_s_per_token * prefill_tokens
            + self.decode_s_per_seq * decode_seqs
            + self.attention_s_per_kv_token * kv_tokens
        )

    def steps_time(self, decode_seqs: int, kv_tokens: int, steps: int) -> float:
        """Modelled seconds for `steps` consecutive decode-only steps of `decode_seqs`
        sequences starting with `kv_tokens` held (each step adds one token per sequence):
        exactly the sum of their `step_time`s (the engine's burst driver relies on it)."""
        if decode_seqs == 0 or steps <= 0:
            return 0.0
        if self.roofline is not None:
            return self.roofline.steps_time(decode_seqs, kv_tokens, steps)
        first = self.step_time(0, decode_seqs, kv_tokens)
        return steps * first + (
            self.attention_s_per_kv_token * decode_seqs * steps * (steps - 1) / 2
        )

    def power(self, step_tokens: int) -> float:
        """Watts drawn while a step with `step_tokens` (prefill + decode) runs; idle for 0."""
        if step_tokens <= 0:
            return self.idle_power_w
        load = min(1.0, step_tokens / self.saturation_tokens)
        util = self.busy_floor + (1.0 - self.busy_floor) * load
        return self.idle_power_w + (self.max_power_w - self.idle_power_w) * util


H100 = Profile(
    name="h100",
    description="H100 SXM 80 GB class GPU, ~32B dense model in FP8 (plausible, uncalibrated)",
    model="sim-32b",
    gpu_name="NVIDIA H100 80GB HBM3 (simulated)",
    # 32 GB of weights at ~2.8 TB/s effective is ~11.5 ms, plus scheduling/launch overhead.
    step_overhead_s=0.016,
    # 64 GFLOP per token at ~640 TFLOP/s effective FP8: ~10K prefill tokens/s.
    prefill_s_per_token=1.0e-4,
    decode_s_per_seq=2.0e-4,
    # 64 layers x 8 KV heads x 128 dims x (K, V) x 1 byte = 131 KB per token at ~2.8 TB/s.
    attention_s_per_kv_token=4.7e-8,
    # ~40 GB left for KV after weights and activations / 131 KB per token.
    kv_capacity_tokens=300_000,
    idle_power_w=90.0,
    max_power_w=700.0,
)

B200 = Profile(
    name="b200",
    description="B200 192 GB class GPU, ~32B dense model in FP8 (plausible, uncalibrated)",
    model="sim-32b",
    gpu_name="NVIDIA B200 (simulated)",
    # 32 GB of weights at ~7 TB/s effective is ~4.6 ms, plus overhead.
    step_overhead_s=0.007,
    # ~1.8 PFLOP/s effective FP8: ~28K prefill tokens/s.
    prefill_s_per_token=3.6e-5,
    decode_s_per_seq=8.0e-5,
    attention_s_per_kv_token=1.9e-8,
    # ~140 GB left for KV / 131 KB per token.
    kv_capacity_tokens=1_000_000,
    max_batch=512,
    prefill_budget=16_384,
    idle_power_w=140.0,
    max_power_w=1000.0,
    saturation_tokens=8192,
)

INSTANT = Profile(
    name="instant",
    description="zero-cost engine: no modelled delay, effectively unlimited capacity "
    "(for measuring clients; power figures are nominal)",
    model="sim-instant",
    gpu_name="none (instant simulated engine)",
    step_overhead_s=0.0,
    prefill_s_per_token=0.0,
    decode_s_per_seq=0.0,
    attention_s_per_kv_token=0.0,
    kv_capacity_tokens=20_000_000,
    max_batch=1_000_000,
    prefill_budget=1 << 40,
    max_context=1 << 20,
)

PROFILES: dict[str, Profile] = {p.name: p for p in (H100, B200, INSTANT)}
"""Built-in profiles by name: `h100`, `b200`, `instant`."""


def load_profile(path: str | Path) -> Profile:
    """A profile from a JSON object with `Profile`'s fields; raises ValueError naming the file
    and what is wrong."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"engine profile {path}: cannot read it ({exc.strerror})") from None
    try:
        return msgspec.json.decode(data, type=Profile)
    except msgspec.ValidationError as exc:
        raise ValueError(f"engine profile {path}: {exc}; see replay/engine/README.md") from None
    except msgspec.DecodeError as exc:
        raise ValueError(f"engine profile {path}: not JSON ({exc})") from None
