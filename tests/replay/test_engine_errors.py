"""Malformed, oversized and excess requests get each API's own error shape, never a crash."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import aiohttp
import anthropic
import msgspec
import openai
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from replay.engine import PROFILES, Running

HANG = 300.0
"""SDK clients' time-out, a hang guard: their default 5 s connect time-out runs on the
client's event loop, which a loaded machine can stall for longer (seen: ConnectTimeout on
loopback with the connection already accepted)."""

OPENAI_PATHS = ("/v1/chat/completions", "/v1/completions")
ANTHROPIC_PATHS = ("/v1/messages", "/v1/messages/count_tokens")
CHAT = {"model": "sim", "messages": [{"role": "user", "content": "hi"}]}


def post(url: str, data: bytes | dict[str, Any]) -> tuple[int, bytes]:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    request = urllib.request.Request(url, data=raw, method="POST")
    request.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()


def assert_openai_error(body: bytes, param: str | None = None) -> dict[str, Any]:
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    assert error["type"] == "invalid_request_error"
    if param is not None:
        assert error["param"] == param
    return error


def assert_anthropic_error(body: bytes, kind: str = "invalid_request_error") -> str:
    doc = json.loads(body)
    assert doc["type"] == "error"
    assert set(doc["error"]) == {"type", "message"}
    assert doc["error"]["type"] == kind
    assert doc["error"]["message"]
    return str(doc["error"]["message"])


@pytest.mark.parametrize("path", OPENAI_PATHS + ANTHROPIC_PATHS)
@pytest.mark.parametrize("data", [b"{not json", b"[1, 2]", b"", b"\xff\xfe"])
def test_malformed_json_is_400_in_the_api_shape(engine_url: str, path: str, data: bytes) -> None:
    status, body = post(engine_url + path, data)
    assert status == 400
    if path in OPENAI_PATHS:
        assert_openai_error(body)
    else:
        assert_anthropic_error(body)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": "hi"}]}, "model"),
        ({"model": "sim"}, "messages"),
        ({"model": "sim", "messages": []}, "messages"),
        ({"model": "sim", "messages": ["hi"]}, "messages[0]"),
        ({"model": "sim", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        (CHAT | {"max_tokens": "ten"}, "max_tokens"),
        (CHAT | {"max_tokens": 0}, "max_tokens"),
        (CHAT | {"stream": "yes"}, "stream"),
        (CHAT | {"stream_options": "yes"}, "stream_options"),
        (CHAT | {"n": 2}, "n"),
        (CHAT | {"tools": "x"}, "tools"),
        (CHAT | {"ignore_eos": 1}, "ignore_eos"),
        (CHAT | {"min_tokens": -1}, "min_tokens"),
    ],
)
def test_bad_chat_fields_are_400_naming_the_param(
    engine_url: str, body: dict[str, Any], param: str
) -> None:
    status, raw = post(engine_url + "/v1/chat/completions", body)
    assert status == 400
    assert_openai_error(raw, param)


@pytest.mark.parametrize(
    "prompt", [None, "", [], [[]], [1, -2], [1, "a"], [[1], "a"], {"text": "x"}, 3]
)
def test_bad_completion_prompts_are_400(engine_url: str, prompt: Any) -> None:
    body = {"model": "sim", "max_tokens": 2} | ({} if prompt is None else {"prompt": prompt})
    status, raw = post(engine_url + "/v1/completions", body)
    assert status == 400
    assert_openai_error(raw, "prompt")


@pytest.mark.parametrize(
    "body",
    [
        {"model": "sim", "max_tokens": 5},
        {"model": "sim", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]},
        {"model": "sim", "messages": [{"role": "user", "content": "hi"}], "max_tokens": -1},
        {"model": "sim", "messages": [{"role": "user", "content": "x"}], "system": 5},
        {"model": "sim", "messages": [{"role": "user", "content": "x"}], "tool_choice": "any"},
        {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5},
    ],
)
def test_bad_messages_fields_are_400_in_anthropic_shape(
    engine_url: str, body: dict[str, Any]
) -> None:
    status, raw = post(engine_url + "/v1/messages", body)
    assert status == 400
    assert_anthropic_error(raw)


def test_sdks_raise_bad_request_errors(engine_url: str) -> None:
    with openai.OpenAI(base_url=engine_url + "/v1", api_key="t", max_retries=0,
                       timeout=HANG) as client:
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model="sim", messages=[], max_tokens=3)
    assert caught.value.status_code == 400
    assert caught.value.param == "messages"
    with anthropic.Anthropic(base_url=engine_url, api_key="t", max_retries=0,
                             timeout=HANG) as aclient:
        with pytest.raises(anthropic.BadRequestError) as acaught:
            aclient.messages.create(model="sim", messages=[], max_tokens=3)
    assert acaught.value.status_code == 400


def test_context_overflow_is_400_in_both_apis(start_engine: Callable[..., Running]) -> None:
    small = msgspec.structs.replace(PROFILES["instant"], max_context=300)
    url = start_engine(small).url
    long_text = "word " * 400
    with openai.OpenAI(base_url=url + "/v1", api_key="t", max_retries=0, timeout=HANG) as client:
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(
                model="sim", messages=[{"role": "user", "content": long_text}], max_tokens=3
            )
        assert caught.value.code == "context_length_exceeded"
        assert "maximum context length is 300 tokens" in caught.value.message
        with pytest.raises(openai.BadRequestError, match="maximum context length"):
            client.completions.create(model="sim", prompt=[1] * 250, max_tokens=60)
        ok = client.completions.create(model="sim", prompt=[1] * 250, max_tokens=50)
        assert ok.usage is not None
        assert ok.usage.prompt_tokens == 250
    status, raw = post(
        url + "/v1/messages",
        {"model": "sim", "max_tokens": 5, "messages": [{"role": "user", "content": long_text}]},
    )
    assert status == 400
    assert "maximum context length" in assert_anthropic_error(raw)


async def test_full_queue_answers_429_in_both_apis(
    start_engine: Callable[..., Running], scrape: Callable[[str], dict[str, float]]
) -> None:
    one_at_a_time = msgspec.structs.replace(PROFILES["h100"], max_batch=1)
    url = start_engine(one_at_a_time, max_queue=1).url
    chat = CHAT | {"max_tokens": 3, "ignore_eos": True}
    async with aiohttp.ClientSession() as session:
        hold = await session.post(
            url + "/v1/chat/completions", json=chat | {"max_tokens": 2000, "stream": True}
        )
        await hold.content.readline()  # first token: it is running
        queued = asyncio.ensure_future(session.post(url + "/v1/chat/completions", json=chat))
        for _ in range(200):
            if (await asyncio.to_thread(scrape, url))["vllm:num_requests_waiting"] == 1:
                break
            await asyncio.sleep(0.01)
        async with session.post(url + "/v1/chat/completions", json=chat) as resp:
            assert resp.status == 429
            assert resp.headers["Retry-After"] == "1"
            error = (await resp.json())["error"]
            assert error["type"] == "rate_limit_error"
            assert "--max-queue 1" in error["message"]
        anthropic_body = {"model": "sim", "max_tokens": 3, "messages": CHAT["messages"]}
        async with session.post(url + "/v1/messages", json=anthropic_body) as resp:
            assert resp.status == 429
            assert resp.headers["Retry-After"] == "1"
            assert_anthropic_error(await resp.read(), "rate_limit_error")
        hold.close()  # the client goes away: its slot frees and the queued request runs
        async with await queued as resp:
            assert resp.status == 200
            assert (await resp.json())["usage"]["completion_tokens"] == 3
    after = await asyncio.to_thread(scrape, url)
    assert after["vllm:num_requests_running"] == after["vllm:num_requests_waiting"] == 0


def test_unknown_routes_and_methods_are_plain_http_errors(engine_url: str) -> None:
    assert post(engine_url + "/v1/nope", {})[0] == 404
    with urllib.request.urlopen(engine_url + "/health", timeout=60) as resp:
        assert json.loads(resp.read())["engine"] == "simulated"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 40) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(["role", "content", "type", "name", "text"]), children)
    ),
    max_leaves=8,
)
messages = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "assistant", "tool", "system", "x"])},
        optional={"content": json_values, "tool_calls": json_values},
    ),
    max_size=3,
)
fields = {
    name: json_values
    for name in ("stream_options", "n", "tools", "tool_choice", "system", "echo", "ignore_eos")
}
bodies = st.fixed_dictionaries(
    {},
    optional={
        "model": st.just("sim") | json_values,
        "messages": messages | json_values,
        "prompt": st.lists(st.integers(-1, 99), max_size=4) | json_values,
        "max_tokens": st.integers(-1, 20) | json_values,
        "min_tokens": st.integers(-1, 20) | json_values,
        "stream": st.booleans() | json_values,
        **fields,
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(OPENAI_PATHS + ANTHROPIC_PATHS), body=bodies)
@example(path="/v1/chat/completions", body={"model": "sim", "messages": [{"role": []}]})
def test_arbitrary_bodies_never_crash_the_server(
    engine_url: str, path: str, body: dict[str, Any]
) -> None:
    status, raw = post(engine_url + path, body)
    assert status in (200, 400), raw
    if status == 400:
        if path in OPENAI_PATHS:
            assert_openai_error(raw)
        else:
            assert_anthropic_error(raw)
