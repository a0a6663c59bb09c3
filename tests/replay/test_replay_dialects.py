"""Server dialects from recorded response shapes: detection, metric names, block size, cached
tokens in each family's stream, and the start-up probe against loopback servers that answer
like each family (refusing extensions, with or without /tokenize and a cache reset)."""

from __future__ import annotations

import msgspec
import pytest
from fixtures_dialects import STREAMS, DialectServer, metrics
from fixtures_replay import running

from replay import dialect
from replay.client import Client, _Stream
from replay.endpoint import Request
from replay.errors import ConfigError, EndpointError
from replay.probe import PROBE_WORDS, Target, describe, probe
from replay.prompts import Prompt
from replay.replicas import Replicas
from replay.scrapers import GPU, Counters, figures, info, samples, window

IDS = list(range(len(PROBE_WORDS.split())))


@pytest.mark.parametrize("family", ["vllm", "sglang", "llamacpp"])
def test_each_family_is_recognised_by_its_metric_names(family: str) -> None:
    names = set(samples(metrics(family)))
    assert dialect.detect("http://10.0.0.5:8000/v1", names).name == family


@pytest.mark.parametrize(
    ("url", "header", "root", "api", "expected"),
    [
        ("https://api.openai.com/v1", "", "", "chat", "openai"),
        ("https://eu.api.openai.com/v1", "", "", "chat", "openai"),
        ("https://api.anthropic.com/v1", "", "", "anthropic", "anthropic"),
        ("http://h:8080/v1", "llama.cpp", "", "chat", "llamacpp"),
        ("http://h:11434/v1", "", "Ollama is running", "chat", "ollama"),
        ("http://h:8000/v1", "uvicorn", "", "chat", "openai"),
        ("http://h:8000/v1", "", "", "anthropic", "anthropic"),
    ],
)
def test_servers_without_metrics_are_recognised_by_host_header_or_page(
    url: str, header: str, root: str, api: str, expected: str
) -> None:
    assert dialect.detect(url, server_header=header, root_text=root, api=api).name == expected


def test_unknown_dialect_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="auto, vllm, sglang"):
        dialect.get("tgi")


def test_block_size_comes_from_vllms_cache_config_labels() -> None:
    assert dialect.block_size(info(metrics("vllm"))) == 64
    assert dialect.block_size(info(metrics("sglang"))) is None


def test_each_familys_load_figures_map_to_replays_names() -> None:
    vllm = figures(samples(metrics("vllm")), dialect.DIALECTS["vllm"].metrics)
    assert vllm == {"prefix_queries": 1807, "prefix_hits": 1088, "prompt_tokens": 1807,
                    "generation_tokens": 59, "running": 2, "waiting": 1, "kv_usage": 0.25}
    sgl = figures(samples(metrics("sglang")), dialect.DIALECTS["sglang"].metrics)
    assert (sgl["running"], sgl["waiting"], sgl["kv_usage"]) == (12, 3, 0.28)
    assert sgl["cache_hit_rate"] == pytest.approx(0.0075, abs=1e-4)
    llama = figures(samples(metrics("llamacpp")), dialect.DIALECTS["llamacpp"].metrics)
    assert (llama["running"], llama["waiting"], llama["kv_usage"]) == (2, 0, 0.41)
    assert llama["generation_tokens"] == 3469
    gpu = figures(samples(metrics("dcgm")), GPU)
    assert gpu == {"gpu_util": 80, "gpu_mem_used_mib": 130000, "sm_clock_mhz": 1970}


def test_a_window_is_counter_deltas_and_gauge_means_and_peaks() -> None:
    first = {"prefix_queries": 1000.0, "prefix_hits": 400.0, "prompt_tokens": 1000.0,
             "generation_tokens": 50.0, "running": 1.0, "kv_usage": 0.2}
    mid = {"running": 3.0, "waiting": 2.0, "kv_usage": 0.95}
    last = {"prefix_queries": 3000.0, "prefix_hits": 1900.0, "prompt_tokens": 3000.0,
            "generation_tokens": 250.0, "running": 2.0, "waiting": 0.0, "kv_usage": 0.5}
    w = window(first, last, [first, mid, last], 10.0, "http://h/metrics")
    assert w.cache_hit_ratio == 0.75
    assert (w.prompt_tps, w.generation_tps) == (200.0, 20.0)
    assert (w.running_mean, w.running_max) == (2.0, 3.0)
    assert (w.waiting_mean, w.waiting_max) == (1.0, 2.0)
    assert w.kv_usage_max == 0.95
    assert w.gpu_util_mean is None


def feed(chunks: list[str]) -> _Stream:
    stream = _Stream()
    for chunk in chunks:
        stream.openai(chunk)
    stream.openai("[DONE]")
    return stream


def test_vllm_token_ids_count_tokens_even_when_several_share_a_chunk() -> None:
    s = feed(STREAMS["vllm"])
    assert s.tokens == 3
    assert (s.usage_out, s.input, s.cached) == (3, 24, 0)


def test_a_server_without_tokenizer_streams_empty_text_yet_tokens_are_timed() -> None:
    s = feed(STREAMS["vllm_no_tokenizer"])
    assert s.tokens == 3
    assert s.first > 0


def test_cached_tokens_as_sglang_and_llamacpp_report_them() -> None:
    sgl = feed(STREAMS["sglang"])
    assert (sgl.input, sgl.cached, sgl.usage_out) == (120, 64, 2)
    llama = feed(STREAMS["llamacpp"])
    assert (llama.input, llama.cached, llama.tokens) == (120, 96, 2)


def target(url: str, api: str = "chat") -> Target:
    return Target(url=url + "/v1", api=api, model="m", headers={}, ids=IDS)


async def test_probe_a_vllm_measures_template_and_block_size_and_sends_everything() -> None:
    srv = DialectServer(metrics=metrics("vllm"), tokenize=True, reset="/reset_prefix_cache",
                        stream=STREAMS["vllm"])
    async with running(srv.app()) as url:
        found = await probe(target(url), reset=True)
    assert found.dialect == "vllm"
    assert found.detected
    assert (found.template, found.template_source) == (22, "tokenize")
    assert found.block_size == 64
    assert found.tokenizer_ratio == 1.0
    assert found.sends == ["ignore_eos", "min_tokens", "return_token_ids", "stream_options"]
    assert found.refused == []
    assert found.lost == []
    assert found.metrics
    assert found.reset == "/reset_prefix_cache"
    assert srv.resets == 1
    notes = describe(found, corpus_block=32, marker=5)
    assert any("chat template adds 22 tokens" in n for n in notes)
    assert any("server KV blocks are 64 tokens (corpus: 32)" in n for n in notes)


async def test_refused_extensions_are_found_once_and_the_lost_guarantee_is_named() -> None:
    srv = DialectServer(refuses=frozenset({"ignore_eos", "min_tokens", "token_ids"}))
    async with running(srv.app()) as url:
        found = await probe(target(url, "completions"), dialect="vllm")
        client = Client(url + "/v1", api="completions", extras=frozenset(found.sends))
    assert not found.detected
    assert found.refused == ["ignore_eos", "min_tokens", "token_ids"]
    assert found.sends == ["return_token_ids", "stream_options"]
    assert found.lost == [dialect.LOST["ignore_eos"], dialect.LOST["token_ids"]]
    assert client.form == "text"  # token-id prompts refused: text prompts instead
    body = msgspec.json.decode(client.body(_request()))
    assert "ignore_eos" not in body
    assert "min_tokens" not in body
    assert body["stream_options"] == {"include_usage": True}
    assert any("upper bounds" in n for n in describe(found, corpus_block=64, marker=5))


def _request() -> Request:
    return Request(Prompt(tokens=3, ideal_cached=0, text=" a b c"), 5)


async def test_a_server_without_tokenizer_is_probed_with_token_ids() -> None:
    srv = DialectServer(metrics=metrics("vllm"), ids_only=True,
                        stream=STREAMS["vllm_no_tokenizer"])
    async with running(srv.app()) as url:
        found = await probe(target(url, "completions"))
    assert "token_ids" in found.sends
    assert "return_token_ids" in found.sends  # what times its empty-text stream
    assert found.lost == []


async def test_hosted_openai_is_not_sent_vllm_extensions_and_says_so() -> None:
    srv = DialectServer(refuses=frozenset({"ignore_eos", "min_tokens", "return_token_ids"}),
                        template=7)
    async with running(srv.app()) as url:
        found = await probe(target(url), dialect="openai")
    assert found.sends == ["stream_options"]
    assert found.refused == []  # never tried: the dialect knows they are refused
    assert dialect.LOST["ignore_eos"] in found.lost
    assert (found.template, found.template_source) == (7, "usage")
    assert not any("ignore_eos" in b for b in srv.bodies)


async def test_llamacpp_without_tokenize_measures_its_template_from_usage() -> None:
    srv = DialectServer(metrics=metrics("llamacpp"), template=11, stream=STREAMS["llamacpp"])
    async with running(srv.app()) as url:
        found = await probe(target(url))
    assert found.dialect == "llamacpp"
    assert (found.template, found.template_source) == (11, "usage")
    assert "min_tokens" not in found.sends
    assert found.lost == [dialect.LOST["return_token_ids"]]  # exact lengths kept: ignore_eos


async def test_reset_cache_on_a_server_without_one_is_refused_at_start() -> None:
    srv = DialectServer(metrics=metrics("vllm"))  # no VLLM_SERVER_DEV_MODE: no reset path
    async with running(srv.app()) as url:
        with pytest.raises(ConfigError, match="VLLM_SERVER_DEV_MODE=1"):
            await probe(target(url), reset=True)
        srv_ollama = DialectServer(root_text="Ollama is running")
    async with running(srv_ollama.app()) as url:
        with pytest.raises(ConfigError, match="no cache-reset endpoint"):
            await probe(target(url), reset=True)


async def test_a_server_failing_a_plain_request_stops_the_run_with_its_answer() -> None:
    srv = DialectServer(refuses=frozenset({"model"}))
    async with running(srv.app()) as url:
        with pytest.raises(EndpointError, match="HTTP 400.*model"):
            await probe(target(url))


async def test_replicas_pin_each_agent_to_one_server() -> None:
    a, b = DialectServer(), DialectServer()
    async with running(a.app()) as ua, running(b.app()) as ub:
        spread = Replicas([Client(ua + "/v1", model="m"), Client(ub + "/v1", model="m")])
        for agent in (0, 1, 2, 3, 2, 0):
            req = _request()
            req.agent = agent
            await spread.send(req)
        await spread.close()
    assert len(a.bodies) == 4  # agents 0 and 2
    assert len(b.bodies) == 2  # agents 1 and 3


async def test_a_window_reads_each_familys_figures_and_local_gpu_telemetry() -> None:
    srv = DialectServer(metrics=metrics("sglang"))
    async with running(srv.app()) as url:
        counters = Counters(url + "/metrics", names=dialect.DIALECTS["sglang"].metrics,
                            gpu=lambda: {"gpu_util": 75.0, "sm_clock_mhz": 1900.0})
        first = await counters.begin()
        load = await counters.end(first)
        await counters.close()
    assert load is not None
    assert (load.running_max, load.waiting_max, load.kv_usage_max) == (12, 3, 0.28)
    assert (load.gpu_util_mean, load.sm_clock_mhz_mean) == (75.0, 1900.0)
    assert load.prompt_tokens == 0  # counters did not move between the two reads


async def test_a_server_without_metrics_gives_no_window_figures() -> None:
    srv = DialectServer()
    async with running(srv.app()) as url:
        counters = Counters(url + "/metrics")
        assert await counters.begin() is None
        assert await counters.end(None) is None
        await counters.close()
