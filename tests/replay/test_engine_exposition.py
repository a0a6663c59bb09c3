"""/metrics in Prometheus text with DCGM and vLLM names, and batching seen from real clients."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import aiohttp
import openai
import pytest

from replay.engine import PROFILES, Running, serve

HANG = 300.0
"""SDK clients' time-out, a hang guard: their default 5 s connect time-out runs on the
client's event loop, which a loaded machine can stall for longer (seen: ConnectTimeout on
loopback with the connection already accepted)."""

Scrape = Callable[[str], dict[str, float]]
ABORTED = 'vllm:request_success_total{model_name="sim-32b",engine="0",finished_reason="abort"}'
SHARED = "You review contracts clause by clause and cite them. " * 30


def test_metrics_use_dcgm_and_vllm_names_and_types(engine_url: str, scrape: Scrape) -> None:
    m = scrape(engine_url)
    for name, kind in [
        ("DCGM_FI_DEV_POWER_USAGE", "gauge"),
        ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "counter"),
        ("vllm:num_requests_running", "gauge"),
        ("vllm:num_requests_waiting", "gauge"),
        ("vllm:prefix_cache_queries", "counter"),
        ("vllm:prefix_cache_hits", "counter"),
        ("vllm:prompt_tokens", "counter"),
        ("vllm:generation_tokens", "counter"),
        ("agentload_engine_simulated", "gauge"),
    ]:
        assert f"TYPE {name} {kind}" in m, name
    assert m["agentload_engine_simulated"] == 1
    assert m["DCGM_FI_DEV_POWER_USAGE"] >= PROFILES["instant"].idle_power_w


def test_counters_move_with_requests_and_cache_hits(engine_url: str, scrape: Scrape) -> None:
    before = scrape(engine_url)
    with openai.OpenAI(base_url=engine_url + "/v1", api_key="t", max_retries=0,
                       timeout=HANG) as client:
        usages = []
        for question in ("First question about clause 2?", "Second, about clause 7?"):
            resp = client.chat.completions.create(
                model="sim",
                messages=[
                    {"role": "system", "content": SHARED},
                    {"role": "user", "content": question},
                ],
                max_tokens=7,
                extra_body={"ignore_eos": True},
            )
            assert resp.usage is not None
            assert resp.usage.prompt_tokens_details is not None
            usages.append(resp.usage)
    after = scrape(engine_url)
    cached = [u.prompt_tokens_details.cached_tokens for u in usages if u.prompt_tokens_details]
    assert cached[0] == 0
    assert cached[1] > 300

    def delta(name: str) -> float:
        return after[name] - before[name]

    assert delta("vllm:generation_tokens_total") == 14
    assert delta("vllm:prompt_tokens_total") == sum(u.prompt_tokens for u in usages)
    assert delta("vllm:prefix_cache_queries_total") == sum(u.prompt_tokens for u in usages)
    assert delta("vllm:prefix_cache_hits_total") == cached[1]
    assert delta("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION") > 0
    assert after["vllm:num_requests_running"] == after["vllm:num_requests_waiting"] == 0


async def _streams(url: str, streams: int, tokens: int) -> list[int]:
    """Content chunks each of `streams` concurrent streams received."""
    async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="t", max_retries=0,
                                  timeout=HANG) as client:

        async def one(i: int) -> int:
            stream = await client.chat.completions.create(
                model="sim",
                messages=[{"role": "user", "content": f"stream {i} of {streams}"}],
                max_tokens=tokens,
                stream=True,
                extra_body={"ignore_eos": True},
            )
            got = 0
            async with stream:
                async for chunk in stream:
                    if chunk.choices and chunk.choices[0].delta.content:
                        got += 1
            return got

        return list(await asyncio.gather(*(one(i) for i in range(streams))))


async def test_concurrent_streams_are_counted_in_the_metrics(
    start_engine: Callable[..., Running], scrape: Scrape
) -> None:
    """(Per-stream speed under concurrency is a wall-clock figure: benchmarks/bench_engine.py
    measures it as a ratio; the step-time model itself is tested on virtual time.)"""
    url = start_engine("h100").url
    alone = await _streams(url, 1, 30)
    crowd = await _streams(url, 16, 30)
    assert min(alone + crowd) >= 15
    m = await asyncio.to_thread(scrape, url)
    assert m["vllm:generation_tokens_total"] == 30 * 17
    assert m["DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"] > 0


async def _idle(scrape: Scrape, url: str) -> dict[str, float]:
    """The engine's metrics once it runs no request (an event the test cannot await: it
    polls, with a deadline only a hang reaches)."""
    deadline = time.monotonic() + 60
    while True:
        m = await asyncio.to_thread(scrape, url)
        if m["vllm:num_requests_running"] == 0 or time.monotonic() > deadline:
            assert m["vllm:num_requests_running"] == 0
            return m
        await asyncio.sleep(0.02)


async def test_running_gauge_counts_a_live_stream(
    start_engine: Callable[..., Running], scrape: Scrape
) -> None:
    url = start_engine("h100").url
    async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="t", max_retries=0,
                                  timeout=HANG) as client:
        stream = await client.chat.completions.create(
            model="sim",
            messages=[{"role": "user", "content": "long answer"}],
            max_tokens=500,
            stream=True,
            extra_body={"ignore_eos": True},
        )
        async with stream:
            async for _ in stream:
                break
            live = await asyncio.to_thread(scrape, url)
    assert live["vllm:num_requests_running"] == 1
    assert live["DCGM_FI_DEV_POWER_USAGE"] > PROFILES["h100"].idle_power_w
    done = await _idle(scrape, url)  # closing the stream aborts the request server-side
    assert done[ABORTED] == 1


async def test_client_hangup_aborts_a_non_streaming_request(
    start_engine: Callable[..., Running], scrape: Scrape
) -> None:
    url = start_engine("h100").url
    body = {"model": "sim", "messages": [{"role": "user", "content": "x"}], "max_tokens": 3000}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.3)) as session:
        with pytest.raises(asyncio.TimeoutError):
            async with session.post(url + "/v1/chat/completions", json=body | {"ignore_eos": True}):
                pass
    m = await _idle(scrape, url)
    # Aborted, not finished: how many tokens came before the server noticed the hang-up
    # depends on how busy the machine is, so only "fewer than asked" is certain.
    assert m[ABORTED] == 1
    assert m["vllm:generation_tokens_total"] < 3000


async def test_serve_runs_in_the_callers_event_loop() -> None:
    async with serve("instant") as running, aiohttp.ClientSession() as session:
        body = {"model": "m", "prompt": [1, 2, 3], "max_tokens": 4, "ignore_eos": True}
        async with session.post(running.url + "/v1/completions", json=body) as resp:
            doc = await resp.json()
            assert resp.headers["x-agentload-engine"] == "simulated"
    assert doc["usage"]["completion_tokens"] == 4
    assert running.engine.stats().generation_tokens_total == 4
