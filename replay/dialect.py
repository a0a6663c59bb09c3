"""Server dialects: what each server family accepts beyond the plain OpenAI/Anthropic APIs, how
it reports cached tokens and load, and how replay recognises it (pure tables and functions; the
probing I/O is `replay.probe`).

Extension parameters replay relies on, and the guarantee each one carries:

- `ignore_eos`, `min_tokens`: the server generates exactly `max_tokens` (else output lengths
  are upper bounds: a model may stop early);
- `stream_options` (`include_usage`): the server reports prompt/cached/output tokens (else
  input fidelity and the server cache ratio are unknown);
- `token_ids` (token-id prompts on `/v1/completions`): the server sees exactly the recorded
  tokens (else text prompts: exact only when the server's tokenizer is the corpus's);
- `return_token_ids`: streamed chunks carry token ids, so tokens are counted even when a
  server without a tokenizer streams empty text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from replay.errors import ConfigError

EXTRAS = ("ignore_eos", "min_tokens", "stream_options", "token_ids", "return_token_ids")

LOST: dict[str, str] = {
    "ignore_eos": "exact output lengths (no ignore_eos/min_tokens: output lengths are upper "
                  "bounds, a model may stop early)",
    "stream_options": "server token counts (no stream_options: no usage in streams, so input "
                      "fidelity and the server cache ratio are unknown)",
    "token_ids": "exact input tokens (no token-id prompts: text prompts are sent, exact only "
                 "when the server's tokenizer is the corpus's)",
    "return_token_ids": "token counting without text (no return_token_ids: a server that "
                        "streams empty text would show no tokens)",
}
"""The guarantee lost when an extension is not sent (`min_tokens` shares `ignore_eos`'s)."""


@dataclass(frozen=True)
class Dialect:
    """One server family. `extras`: the extension parameters it accepts (a server may still
    refuse one: the probe checks). `metrics`: replay's figure names -> this server's
    Prometheus names (first present wins). `reset`: POST path for a cold prefix cache.
    `tokenize`: POST path that counts tokens of a prompt or of chat messages. `cached`: where
    its responses report cached prompt tokens."""

    name: str
    extras: frozenset[str]
    metrics: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    reset: str | None = None
    tokenize: str | None = None
    cached: str = "usage.prompt_tokens_details.cached_tokens"
    note: str = ""


_ALL = frozenset(EXTRAS)

_VLLM_METRICS = {
    "prefix_queries": ("vllm:prefix_cache_queries_total", "vllm:gpu_prefix_cache_queries_total"),
    "prefix_hits": ("vllm:prefix_cache_hits_total", "vllm:gpu_prefix_cache_hits_total"),
    "prompt_tokens": ("vllm:prompt_tokens_total",),
    "generation_tokens": ("vllm:generation_tokens_total",),
    "running": ("vllm:num_requests_running",),
    "waiting": ("vllm:num_requests_waiting",),
    "kv_usage": ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),
}

DIALECTS: dict[str, Dialect] = {
    d.name: d
    for d in (
        Dialect(
            "vllm", _ALL, _VLLM_METRICS, reset="/reset_prefix_cache", tokenize="/tokenize",
            note="/reset_prefix_cache needs VLLM_SERVER_DEV_MODE=1; cached tokens need "
                 "--enable-prompt-tokens-details",
        ),
        Dialect(
            "sglang", frozenset({"ignore_eos", "min_tokens", "stream_options", "token_ids"}),
            {
                "prompt_tokens": ("sglang:prompt_tokens_total",),
                "generation_tokens": ("sglang:generation_tokens_total",),
                "running": ("sglang:num_running_reqs",),
                "waiting": ("sglang:num_queue_reqs",),
                "kv_usage": ("sglang:token_usage",),
                "cache_hit_rate": ("sglang:cache_hit_rate",),
            },
            reset="/flush_cache",
            note="metrics need --enable-metrics; cached tokens need --enable-cache-report",
        ),
        Dialect(
            "trtllm", frozenset({"ignore_eos", "min_tokens", "stream_options", "token_ids"}),
            note="trtllm-serve's /metrics is JSON iteration stats, not Prometheus: no server "
                 "figures",
        ),
        Dialect(
            "llamacpp", frozenset({"ignore_eos", "stream_options", "token_ids"}),
            {
                "prompt_tokens": ("llamacpp:prompt_tokens_total",),
                "generation_tokens": ("llamacpp:tokens_predicted_total",),
                "running": ("llamacpp:requests_processing",),
                "waiting": ("llamacpp:requests_deferred",),
                "kv_usage": ("llamacpp:kv_cache_usage_ratio",),
            },
            tokenize=None, cached="timings.cache_n",
            note="metrics need --metrics; min_tokens is ignored silently (ignore_eos suffices)",
        ),
        Dialect(
            "ollama", frozenset({"stream_options"}),
            note="unknown parameters are ignored silently: output lengths are upper bounds; "
                 "no /metrics",
        ),
        Dialect(
            "openai", frozenset({"stream_options"}),
            note="hosted OpenAI refuses ignore_eos/min_tokens: output lengths are upper bounds",
        ),
        Dialect(
            "anthropic", frozenset(), cached="usage.cache_read_input_tokens",
            note="Messages API: usage always reported; no output-length control beyond "
                 "max_tokens",
        ),
    )
}

CHOICES = ("auto", *DIALECTS)

_METRIC_PREFIXES = (("vllm:", "vllm"), ("sglang:", "sglang"), ("llamacpp:", "llamacpp"),
                    ("trtllm", "trtllm"))
_HOSTS = (("api.openai.com", "openai"), ("api.anthropic.com", "anthropic"))


def get(name: str) -> Dialect:
    """The dialect called `name`; `ConfigError` naming the choices otherwise."""
    try:
        return DIALECTS[name]
    except KeyError:
        raise ConfigError(
            f"--dialect {name!r}: expected one of {', '.join(CHOICES)}"
        ) from None


def detect(
    url: str, metric_names: set[str] | frozenset[str] = frozenset(),
    *, server_header: str = "", root_text: str = "", api: str = "chat",
) -> Dialect:
    """The dialect of the server at `url`, from its host, its /metrics names, its `Server`
    header and its `/` page; servers that show nothing are "openai" (the plain API), or
    "anthropic" when replaying the Messages API."""
    host = (urlsplit(url).hostname or "").lower()
    for suffix, name in _HOSTS:
        if host == suffix or host.endswith("." + suffix):
            return DIALECTS[name]
    for prefix, name in _METRIC_PREFIXES:
        if any(m.startswith(prefix) for m in metric_names):
            return DIALECTS[name]
    header = server_header.lower()
    if "llama.cpp" in header or "llamacpp" in header:
        return DIALECTS["llamacpp"]
    if "ollama is running" in root_text.lower():
        return DIALECTS["ollama"]
    return DIALECTS["anthropic" if api in ("anthropic", "anthropic-messages") else "openai"]


def block_size(labels: Mapping[str, Mapping[str, str]]) -> int | None:
    """The KV-cache block size a server publishes in its /metrics info labels (vLLM's
    `vllm:cache_config_info{block_size="16",…}`, SGLang's `page_size`), else None."""
    for metric in ("vllm:cache_config_info", "sglang:cache_config_info"):
        info = labels.get(metric)
        if not info:
            continue
        for key in ("block_size", "page_size"):
            raw = info.get(key)
            if raw and raw.isdigit() and int(raw) > 0:
                return int(raw)
    return None


def lost(missing: set[str] | frozenset[str]) -> list[str]:
    """One line per guarantee lost to the extensions not sent (refused, or unknown to the
    server's dialect); output lengths stay exact while either length control is sent."""
    out: list[str] = []
    if {"ignore_eos", "min_tokens"} <= missing:
        out.append(LOST["ignore_eos"])
    for name in ("stream_options", "token_ids", "return_token_ids"):
        if name in missing:
            out.append(LOST[name])
    return out
