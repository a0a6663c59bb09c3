"""A roofline step-time model of one model served on one GPU kind with a given parallelism.

`Setup` names the serving setup (GPU, model, GPUs per engine, TP/EP, DP attention, precisions,
speculative decoding); `build(setup, factors)` turns it into a `Roofline`: the few numbers the
engine needs per step. A step that computes T tokens (prefill + decode) over K cached tokens takes

    fixed + max(compute, memory) + communication

- compute: 2 x active params x T + attention FLOPs over the (query, cached token) pairs, spread
  over the engine's GPUs at `factors.compute` of their dense peak (FP4 matmuls at `factors.fp4`
  of that; attention at the KV precision's rate);
- memory: the weights read once per step (dense part always; routed experts only those the
  step's tokens touch) + the KV cache of the running sequences, at `factors.memory` of HBM
  bandwidth per GPU;
- communication: TP all-reduces (2 per layer) and EP all-to-alls (dispatch + combine per MoE
  layer) over the scale-up link at LINK_EFFICIENCY of its one-way bandwidth, plus
  `factors.collective_s` each;
- fixed: `factors.layer_s` per layer (kernel launches, synchronisation, scheduling).

Speculative decoding (`mtp:K:A`: K draft tokens, each accepted with probability A) verifies K+1
tokens per sequence per step and keeps (1 - A^(K+1)) / (1 - A) of them on average; the step time
the engine sees is per emitted token. All pure arithmetic: no I/O, no clocks.
"""

from __future__ import annotations

import math

import msgspec

from replay.engine.catalog import PRECISION_BYTES, PRECISIONS, Gpu, Model, gpu, model
from replay.engine.errors import CatalogError

ACTIVATION_RESERVE_GB = 4.0
"""HBM per GPU kept for activations, CUDA graphs and the runtime besides weights and KV."""
MEMORY_UTILIZATION = 0.9
"""Share of HBM the serving engine takes (vLLM's gpu_memory_utilization default)."""
LINK_EFFICIENCY = 0.7
"""Share of the one-way scale-up bandwidth large collectives reach (NCCL/RCCL bus bandwidth)."""


class SpecDecode(msgspec.Struct, frozen=True, kw_only=True):
    """Speculative decoding: `draft` tokens proposed per step, each accepted with `acceptance`."""

    method: str
    draft: int
    acceptance: float

    @property
    def expected_tokens(self) -> float:
        """Tokens emitted per sequence per verification step (the accepted run plus one)."""
        a = self.acceptance
        return float(self.draft + 1) if a >= 1 else (1 - a ** (self.draft + 1)) / (1 - a)

    @classmethod
    def parse(cls, text: str) -> SpecDecode:
        """`METHOD:DRAFT:ACCEPTANCE`, e.g. `mtp:3:0.7` (DeepSeek MTP, 3 drafts, 70 % accepted)."""
        parts = text.split(":")
        try:
            method, draft, acc = parts[0], int(parts[1]), float(parts[2])
        except (IndexError, ValueError):
            raise CatalogError(
                f"--spec-decode {text!r}: expected METHOD:DRAFT:ACCEPTANCE, e.g. mtp:3:0.7"
            ) from None
        if len(parts) != 3 or not method or draft < 1 or not 0 <= acc <= 1:
            raise CatalogError(f"--spec-decode {text!r}: expected METHOD:DRAFT:ACCEPTANCE with "
                               "DRAFT >= 1 and ACCEPTANCE in [0, 1], e.g. mtp:3:0.7")
        return cls(method=method, draft=draft, acceptance=acc)


class Factors(msgspec.Struct, frozen=True, kw_only=True):
    """The efficiency factors calibration fits (see replay/engine/calibration.py)."""

    compute: float = 0.5
    """Share of the dense peak FLOP/s a compute-bound step reaches."""
    memory: float = 0.7
    """Share of HBM bandwidth a memory-bound step reaches."""
    layer_s: float = 30e-6
    """Fixed seconds per layer per step (launches, synchronisation, scheduling)."""
    collective_s: float = 10e-6
    """Fixed latency of one all-reduce or all-to-all inside the scale-up domain."""
    fp4: float = 0.7
    """Share of the FP8-relative efficiency FP4 matmuls keep (scales, conversions, kernels)."""
    moe: float = 1.0
    """Multiplier on `compute` for mixture-of-experts models (grouped GEMMs over many small
    experts, routing, load imbalance keep them further from peak than dense models)."""
    amd: float = 1.0
    """Multiplier on `compute` for AMD parts (matmul/attention kernel maturity of ROCm stacks)."""


class Setup(msgspec.Struct, frozen=True, kw_only=True):
    """One serving setup: an engine of `gpus` GPUs of one kind serving one model."""

    gpu: str
    model: str
    gpus: int = 1
    tp: int = 0
    """Tensor parallelism; 0 means all the engine's GPUs."""
    ep: int = 1
    dp_attention: bool = False
    """Attention data-parallel over the GPUs (each GPU holds its own sequences' KV)."""
    precision: str = "fp8"
    kv_precision: str = "fp8"
    spec: SpecDecode | None = None

    def label(self) -> str:
        """Short human name, e.g. `8x h200 deepseek-v3 fp8 TP8 EP8`."""
        tp = self.tp or self.gpus
        par = f"TP{tp}" + (f" EP{self.ep}" if self.ep > 1 else "")
        par += " DP-attention" if self.dp_attention else ""
        spec = ""
        if self.spec:
            spec = f" {self.spec.method}:{self.spec.draft}:{self.spec.acceptance:g}"
        return f"{self.gpus}x {self.gpu} {self.model} {self.precision} {par}{spec}"


class Roofline(msgspec.Struct, frozen=True, kw_only=True):
    """The per-step constants of one setup under one set of factors. `step_time` is the model."""

    gpus: int
    layers: int
    flops_per_token: float
    """2 x active parameters."""
    pair_flops: float
    """Attention FLOPs per (query token, cached token) pair, all layers."""
    indexer_pair_flops: float
    topk: int
    """Tokens a query attends to under sparse attention (0: all)."""
    engine_flops: float
    """Achieved FLOP/s of the whole engine for the weight matmuls."""
    attention_flops: float
    """Achieved FLOP/s of the whole engine for attention (runs at the KV precision)."""
    gpu_bandwidth: float
    """Achieved HBM bytes/s of one GPU."""
    static_bytes: float
    """Weight bytes every step reads per GPU (attention, dense layers, shared experts)."""
    expert_bytes: float
    """Bytes per GPU of one routed expert across all MoE layers (0 for dense models)."""
    experts: int
    experts_active: int
    kv_bytes: float
    """KV bytes per cached token read per GPU (full-attention layers)."""
    index_bytes: float
    """Sparse-attention indexer key bytes per cached token per GPU."""
    window_bytes: float
    """KV bytes per decoding sequence per GPU for sliding-window layers (their whole window)."""
    allreduce_bytes: float
    """All-reduce bytes per computed token per GPU (TP)."""
    alltoall_bytes: float
    """All-to-all bytes per computed token per GPU (EP)."""
    collectives: int
    """Collectives per step (each costs COLLECTIVE_LATENCY_S)."""
    link_bandwidth: float
    """Achieved one-way scale-up bytes/s per GPU."""
    collective_s: float
    fixed_s: float
    draft: int = 0
    expected_tokens: float = 1.0

    def parts(self, tokens: float, kv_tokens: float, decode_seqs: float,
              pairs: float) -> tuple[float, float, float, float]:
        """(weight matmuls, attention, memory, communication) seconds of one forward pass
        computing `tokens` over `kv_tokens` cached tokens and `pairs` (query, cached token)
        attention pairs. The first two add up to the compute time."""
        if self.topk:
            attended = min(pairs, tokens * self.topk)
            index = self.indexer_pair_flops * pairs
            kv_read = min(kv_tokens, decode_seqs * self.topk) * self.kv_bytes
            kv_read += kv_tokens * self.index_bytes
        else:
            attended, index = pairs, 0.0
            kv_read = kv_tokens * self.kv_bytes
        matmuls = self.flops_per_token * tokens / self.engine_flops
        attention = (self.pair_flops * attended + index) / self.attention_flops
        touched = 0.0
        if self.experts:
            # Expected distinct experts `tokens` routings touch in one layer.
            share = math.log1p(-self.experts_active / self.experts)
            touched = self.experts * -math.expm1(tokens * share)
        weights = self.static_bytes + self.expert_bytes * touched
        memory = (weights + kv_read + decode_seqs * self.window_bytes) / self.gpu_bandwidth
        comm = 0.0
        if self.collectives:
            comm = (tokens * (self.allreduce_bytes + self.alltoall_bytes) / self.link_bandwidth
                    + self.collectives * self.collective_s)
        return matmuls, attention, memory, comm

    def terms(self, tokens: float, kv_tokens: float, decode_seqs: float,
              pairs: float) -> tuple[float, float, float]:
        """(compute, memory, communication) seconds of one forward pass (see `parts`)."""
        matmuls, attention, memory, comm = self.parts(tokens, kv_tokens, decode_seqs, pairs)
        return matmuls + attention, memory, comm

    def forward(self, tokens: float, kv_tokens: float, decode_seqs: float,
                pairs: float) -> float:
        """Seconds for one forward pass (see `terms`): fixed + max(compute, memory) + comm."""
        if tokens <= 0:
            return 0.0
        compute, memory, comm = self.terms(tokens, kv_tokens, decode_seqs, pairs)
        return self.fixed_s + max(compute, memory) + comm

    def step_time(self, prefill_tokens: int, decode_seqs: int, kv_tokens: int,
                  prefill_pairs: float | None = None) -> float:
        """Seconds for one engine step that emits one token per decoding sequence.

        `prefill_pairs` is the number of (prompt token, cached token) pairs the prefill chunks
        attend over; None estimates it as a fresh prompt (prefill_tokens^2 / 2)."""
        if prefill_tokens <= 0 and decode_seqs <= 0:
            return 0.0
        pairs_prefill = (prefill_tokens * prefill_tokens / 2 if prefill_pairs is None
                         else prefill_pairs)
        width = 1 + self.draft
        decode_tokens = decode_seqs * width
        # Decode tokens attend over their sequence's context: about the KV held, per draft.
        decode_pairs = kv_tokens * width if decode_seqs else 0.0
        full = self.forward(prefill_tokens + decode_tokens, kv_tokens, decode_seqs,
                            pairs_prefill + decode_pairs)
        if not self.draft or not decode_seqs:
            return full
        decode_only = self.forward(decode_tokens, kv_tokens, decode_seqs, decode_pairs)
        draft_cost = self.draft * decode_only / self.layers
        # The engine emits one token per sequence per step: charge a verification step per
        # expected accepted run, and the prefill on top at full price.
        return (decode_only + draft_cost) / self.expected_tokens + (full - decode_only)


    def _regime(self, decode_seqs: int, kv_tokens: float) -> tuple[bool, bool]:
        tokens = decode_seqs * (1 + self.draft)
        compute, memory, _ = self.terms(tokens, kv_tokens, decode_seqs,
                                        kv_tokens * (1 + self.draft))
        return compute >= memory, bool(self.topk) and kv_tokens < decode_seqs * self.topk

    def steps_time(self, decode_seqs: int, kv_tokens: int, steps: int) -> float:
        """Seconds for `steps` consecutive decode-only steps of `decode_seqs` sequences starting
        with `kv_tokens` held (each step adds one token per sequence): exactly the sum of their
        `step_time`s, in O(log steps). A decode step's time is linear in the KV held within a
        regime (compute- or memory-bound; under or over the sparse top-k), and each regime
        boundary is crossed at most once as the KV grows, so the sum is a few arithmetic series.
        """
        if decode_seqs <= 0 or steps <= 0:
            return 0.0

        def f(i: int) -> float:
            return self.step_time(0, decode_seqs, kv_tokens + i * decode_seqs)

        def regime(i: int) -> tuple[bool, bool]:
            return self._regime(decode_seqs, kv_tokens + i * decode_seqs)

        total, start = 0.0, 0
        while start < steps:
            here = regime(start)
            lo, hi = start, steps - 1  # last index still in this regime
            if regime(hi) != here:
                while lo < hi:
                    mid = (lo + hi + 1) // 2
                    if regime(mid) == here:
                        lo = mid
                    else:
                        hi = mid - 1
            end = lo
            n = end - start + 1
            total += n * (f(start) + f(end)) / 2
            start = end + 1
        return total


def attention_shard(setup: Setup, m: Model) -> int:
    """GPUs the KV cache is split over (the rest of the engine holds copies)."""
    if setup.dp_attention:
        return setup.gpus
    return max(1, min(setup.gpus, m.kv_heads))


def validate(setup: Setup) -> tuple[Gpu, Model]:
    """The catalogue entries of `setup`, or a CatalogError saying what is wrong and what to do."""
    g, m = gpu(setup.gpu), model(setup.model)
    for name, p in (("--precision", setup.precision), ("--kv-precision", setup.kv_precision)):
        if p not in PRECISIONS:
            raise CatalogError(f"{name} {p!r}: expected one of {', '.join(PRECISIONS)}")
    tp = setup.tp or setup.gpus
    if setup.gpus < 1 or tp < 1 or setup.ep < 1:
        raise CatalogError("--gpus, --tp and --ep must be at least 1")
    if setup.gpus > g.scale_up:
        raise CatalogError(
            f"{setup.gpus} GPUs exceed one {g.key} scale-up domain ({g.scale_up}); model one "
            "engine per domain and run replicas of it"
        )
    if not setup.dp_attention and tp != setup.gpus:
        raise CatalogError(f"--tp {tp} with --gpus {setup.gpus}: without --dp-attention one "
                           "engine is one TP group (set --tp to --gpus, or add --dp-attention)")
    if setup.gpus % tp or setup.gpus % setup.ep:
        raise CatalogError(f"--gpus {setup.gpus} must be a multiple of --tp {tp} and --ep "
                           f"{setup.ep}")
    if setup.ep > 1 and not m.moe:
        raise CatalogError(f"--ep {setup.ep}: {m.key} is a dense model (no experts)")
    return g, m


def kv_capacity_tokens(setup: Setup) -> int:
    """KV-cache tokens the engine holds: HBM left after weights and a reserve, per token."""
    g, m = validate(setup)
    wb = PRECISION_BYTES[setup.precision]
    attn_shard = 1 if setup.dp_attention else setup.gpus
    weights = (m.attention_params() * wb / attn_shard
               + (m.params_total_b * 1e9 - m.attention_params()) * wb / setup.gpus)
    free = g.hbm_gb * 1e9 * MEMORY_UTILIZATION - weights - ACTIVATION_RESERVE_GB * 1e9
    per_token = m.kv_bytes_per_token(setup.kv_precision) / attention_shard(setup, m)
    if free <= per_token * 4096:
        need = (weights + ACTIVATION_RESERVE_GB * 1e9) / 1e9
        raise CatalogError(
            f"{m.key} in {setup.precision} needs about {need:.0f} GB per GPU on {setup.gpus} "
            f"x {g.key} ({g.hbm_gb:g} GB each) and leaves no room for the KV cache; use more "
            "GPUs or a smaller --precision"
        )
    return int(free / per_token)


def build(setup: Setup, factors: Factors) -> Roofline:
    """The roofline constants of `setup` under `factors`."""
    g, m = validate(setup)
    n = setup.gpus
    wb = PRECISION_BYTES[setup.precision]
    kvp = PRECISION_BYTES[setup.kv_precision]
    boost = factors.amd if g.vendor == "amd" else 1.0
    shard = attention_shard(setup, m)
    attn_shard = 1 if setup.dp_attention else n
    static = (m.attention_params() * wb / attn_shard
              + (m.dense_params() - m.attention_params()) * wb / n)
    window = 0.0
    if m.sliding_layers:
        window = m.sliding_layers * 2 * m.kv_heads * m.head_dim * kvp * m.sliding_window / shard
    tp = setup.tp or n
    allreduce = 0.0
    collectives = 0
    if tp > 1 and not setup.dp_attention:
        allreduce = 2 * m.layers * m.hidden * 2.0 * 2 * (tp - 1) / tp / n
        collectives += 2 * m.layers
    alltoall = 0.0
    if setup.ep > 1:
        alltoall = 2 * m.moe_layers * m.experts_active * m.hidden * 1.0 * (setup.ep - 1) / (
            setup.ep * n)
        collectives += 2 * m.moe_layers
    spec = setup.spec
    compute = min(1.0, factors.compute * boost * (factors.moe if m.moe else 1.0))
    if setup.precision == "fp4" and "fp4" in g.flops:
        compute *= factors.fp4
    attn_precision = "bf16" if setup.kv_precision == "bf16" else "fp8"
    return Roofline(
        gpus=n, layers=m.layers, flops_per_token=2 * m.params_active_b * 1e9,
        pair_flops=m.attention_flops_per_pair(), indexer_pair_flops=m.indexer_flops_per_pair(),
        topk=m.index_topk if m.attention == "sparse-mla" else 0,
        engine_flops=n * g.peak_tflops(setup.precision) * 1e12 * compute,
        attention_flops=n * g.peak_tflops(attn_precision) * 1e12 * min(
            1.0, factors.compute * boost * (factors.moe if m.moe else 1.0)),
        gpu_bandwidth=g.hbm_tbps * 1e12 * min(1.0, factors.memory),
        static_bytes=static, expert_bytes=m.expert_params() * m.moe_layers * wb / n,
        experts=m.experts, experts_active=m.experts_active,
        kv_bytes=m.kv_elements_per_token() * kvp / shard,
        index_bytes=(m.layers * m.index_dim / shard) if m.attention == "sparse-mla" else 0.0,
        window_bytes=window, allreduce_bytes=allreduce, alltoall_bytes=alltoall,
        collectives=collectives, link_bandwidth=g.link_gbps / 2 * 1e9 * LINK_EFFICIENCY,
        collective_s=factors.collective_s,
        fixed_s=m.layers * factors.layer_s,
        draft=spec.draft if spec else 0,
        expected_tokens=spec.expected_tokens if spec else 1.0,
    )
