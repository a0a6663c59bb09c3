"""The GPU and model catalogues: `catalog/gpus.toml` and `catalog/models.toml` as typed records.

Every number in those files is `{value, source, date}`; `load_gpus()`/`load_models()` check that
(a number without a source is an error naming the file and the field) and return plain records.
KV bytes per token and the parameter split are derived here from the sourced figures.
"""

from __future__ import annotations

import functools
import tomllib
from pathlib import Path
from typing import Any

import msgspec

from replay.engine.errors import CatalogError

CATALOG_DIR = Path(__file__).with_name("catalog")
PRECISION_BYTES: dict[str, float] = {"bf16": 2.0, "fp8": 1.0, "fp4": 0.5625}
"""Bytes per weight or KV element; fp4 includes one 8-bit scale per 16 values (NVFP4/MXFP4-like)."""
PRECISIONS = tuple(PRECISION_BYTES)
ATTENTION = ("gqa", "gqa-sliding", "mla", "sparse-mla")


class Sourced(msgspec.Struct, frozen=True, kw_only=True):
    """One catalogue number and where it comes from."""

    value: float
    source: str
    date: str
    note: str = ""

    @property
    def estimated(self) -> bool:
        """True for a figure no public document states (an estimate or an assumption)."""
        return not self.source.startswith("https://")


class Gpu(msgspec.Struct, frozen=True, kw_only=True):
    """One GPU (per-GPU figures; a rack system such as GB200 NVL72 is listed per GPU)."""

    key: str
    name: str
    vendor: str
    flops: dict[str, float]
    """Dense TFLOP/s by precision (bf16, fp8, fp4 where the part has it)."""
    hbm_gb: float
    hbm_tbps: float
    link_gbps: float
    """Scale-up bandwidth per GPU, GB/s, bidirectional as vendors print it."""
    scale_up: int
    tdp_w: float
    idle_w: float
    sources: dict[str, Sourced]

    def peak_tflops(self, precision: str) -> float:
        """Dense TFLOP/s for `precision`; a part without FP4 runs FP4 weights at its FP8 rate."""
        if precision in self.flops:
            return self.flops[precision]
        if precision == "fp4":
            return self.flops["fp8"]
        raise CatalogError(f"{self.key}: no {precision} throughput in the catalogue")


class Model(msgspec.Struct, frozen=True, kw_only=True):
    """One model's shape, from its public config."""

    key: str
    name: str
    attention: str
    layers: int
    hidden: int
    q_heads: int
    kv_heads: int
    head_dim: int
    params_total_b: float
    params_active_b: float
    max_context: int
    kv_lora_rank: int = 0
    rope_dim: int = 0
    index_topk: int = 0
    index_dim: int = 0
    sliding_window: int = 0
    sliding_layers: int = 0
    experts: int = 0
    experts_active: int = 0
    moe_layers: int = 0
    sources: dict[str, Sourced] = {}

    @property
    def moe(self) -> bool:
        return self.experts > 0

    @property
    def full_layers(self) -> int:
        """Layers that keep KV for the whole context (sliding-window layers keep a window)."""
        return self.layers - self.sliding_layers

    def kv_elements_per_token(self) -> int:
        """KV-cache elements one token adds over all full-attention layers."""
        if self.attention in ("mla", "sparse-mla"):
            per_layer = self.kv_lora_rank + self.rope_dim
        else:
            per_layer = 2 * self.kv_heads * self.head_dim
        return self.full_layers * per_layer

    def kv_bytes_per_token(self, precision: str) -> float:
        """KV bytes one token adds (all layers; plus the sparse indexer's keys in FP8)."""
        extra = self.layers * self.index_dim if self.attention == "sparse-mla" else 0
        return self.kv_elements_per_token() * PRECISION_BYTES[precision] + extra

    def attention_flops_per_pair(self) -> float:
        """FLOPs for one query token attending to one cached token, over all layers.

        MLA is computed in its absorbed form (queries projected into the latent space)."""
        if self.attention in ("mla", "sparse-mla"):
            return 2.0 * self.layers * self.q_heads * (2 * self.kv_lora_rank + self.rope_dim)
        return 4.0 * self.full_layers * self.q_heads * self.head_dim

    def indexer_flops_per_pair(self) -> float:
        """FLOPs of DeepSeek sparse attention's lightning indexer per (query, cached token)."""
        if self.attention != "sparse-mla":
            return 0.0
        return 2.0 * self.layers * 64 * self.index_dim

    def attention_params(self) -> float:
        """Attention projection parameters over all layers (replicated under DP attention)."""
        h, d = self.hidden, self.head_dim
        if self.attention in ("mla", "sparse-mla"):
            q_rank = 1536  # q_lora_rank of every MLA model catalogued (V3, V3.2)
            per = (
                h * q_rank
                + q_rank * self.q_heads * (d + self.rope_dim)
                + h * (self.kv_lora_rank + self.rope_dim)
                + self.kv_lora_rank * self.q_heads * 2 * d
                + self.q_heads * d * h
            )
        else:
            per = h * (self.q_heads + 2 * self.kv_heads) * d + self.q_heads * d * h
        return float(per * self.layers)

    def expert_params(self) -> float:
        """Parameters of one routed expert in one MoE layer (0 for a dense model)."""
        if not self.moe:
            return 0.0
        spare = self.experts - self.experts_active
        return (self.params_total_b - self.params_active_b) * 1e9 / (self.moe_layers * spare)

    def routed_params(self) -> float:
        """All routed-expert parameters (what expert parallelism spreads)."""
        return self.expert_params() * self.experts * self.moe_layers

    def dense_params(self) -> float:
        """Parameters every token uses: attention, shared experts, dense layers, embeddings."""
        return self.params_total_b * 1e9 - self.routed_params()


def _sourced(path: Path, key: str, field: str, raw: Any) -> Sourced:
    where = f"{path.name}: [{key}] {field}"
    if not isinstance(raw, dict):
        raise CatalogError(f"{where}: expected {{value, source, date}}, found {raw!r}; "
                           "every number needs a source URL and a date")
    try:
        item = msgspec.convert(raw, Sourced)
    except msgspec.ValidationError as exc:
        raise CatalogError(f"{where}: {exc}; expected {{value, source, date}}") from None
    if not item.source.strip() or not item.date.strip():
        raise CatalogError(f"{where}: empty source or date")
    if not (item.source.startswith("https://") or item.source.startswith(("estimate:",
                                                                           "assumed:"))):
        raise CatalogError(f"{where}: source {item.source!r} is neither an https URL nor an "
                           "'estimate: …'/'assumed: …' explanation")
    return item


def _read(name: str) -> tuple[Path, dict[str, Any]]:
    path = CATALOG_DIR / name
    try:
        with path.open("rb") as fh:
            return path, tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CatalogError(f"{path}: cannot read the catalogue: {exc}") from None


def _split(path: Path, key: str, table: dict[str, Any], text: tuple[str, ...]
           ) -> tuple[dict[str, str], dict[str, Sourced]]:
    words: dict[str, str] = {}
    numbers: dict[str, Sourced] = {}
    for field, raw in table.items():
        if field in text:
            if not isinstance(raw, str):
                raise CatalogError(f"{path.name}: [{key}] {field}: expected text, found {raw!r}")
            words[field] = raw
        else:
            numbers[field] = _sourced(path, key, field, raw)
    return words, numbers


@functools.cache
def load_gpus() -> dict[str, Gpu]:
    """Every GPU in `catalog/gpus.toml`, by key (h100, h200, b200, …)."""
    path, data = _read("gpus.toml")
    out: dict[str, Gpu] = {}
    for key, table in data.items():
        words, nums = _split(path, key, table, ("name", "vendor"))
        try:
            flops = {p: nums[f"{p}_tflops"].value for p in PRECISIONS if f"{p}_tflops" in nums}
            out[key] = Gpu(
                key=key, name=words["name"], vendor=words["vendor"], flops=flops,
                hbm_gb=nums["hbm_gb"].value, hbm_tbps=nums["hbm_tbps"].value,
                link_gbps=nums["link_gbps"].value, scale_up=int(nums["scale_up"].value),
                tdp_w=nums["tdp_w"].value, idle_w=nums["idle_w"].value, sources=nums,
            )
        except KeyError as exc:
            raise CatalogError(f"{path.name}: [{key}] lacks {exc.args[0]}") from None
        if "fp8" not in flops:
            raise CatalogError(f"{path.name}: [{key}] lacks fp8_tflops")
    return out


_INT_FIELDS = ("layers", "hidden", "q_heads", "kv_heads", "head_dim", "max_context",
               "kv_lora_rank", "rope_dim", "index_topk", "index_dim", "sliding_window",
               "sliding_layers", "experts", "experts_active", "moe_layers")


@functools.cache
def load_models() -> dict[str, Model]:
    """Every model in `catalog/models.toml`, by key (deepseek-v3, llama-3.1-70b, …)."""
    path, data = _read("models.toml")
    out: dict[str, Model] = {}
    for key, table in data.items():
        words, nums = _split(path, key, table, ("name", "attention"))
        fields: dict[str, Any] = {
            f: (int(s.value) if f in _INT_FIELDS else s.value) for f, s in nums.items()
        }
        try:
            model = msgspec.convert(
                {"key": key, **words, **fields, "sources": nums}, Model
            )
        except msgspec.ValidationError as exc:
            raise CatalogError(f"{path.name}: [{key}] {exc}") from None
        if model.attention not in ATTENTION:
            raise CatalogError(f"{path.name}: [{key}] attention {model.attention!r}: expected "
                               f"one of {', '.join(ATTENTION)}")
        if model.moe and not (model.experts_active and model.moe_layers):
            raise CatalogError(f"{path.name}: [{key}] has experts but no experts_active/moe_layers")
        out[key] = model
    return out


def gpu(key: str) -> Gpu:
    """The catalogue GPU `key`, or a CatalogError listing the keys."""
    gpus = load_gpus()
    try:
        return gpus[key]
    except KeyError:
        raise CatalogError(f"unknown GPU {key!r}; the catalogue has {', '.join(gpus)}") from None


def model(key: str) -> Model:
    """The catalogue model `key`, or a CatalogError listing the keys."""
    models = load_models()
    try:
        return models[key]
    except KeyError:
        raise CatalogError(
            f"unknown model {key!r}; the catalogue has {', '.join(models)}"
        ) from None
