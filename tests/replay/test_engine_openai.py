"""The simulated engine through the official openai SDK: chat, completions, tools, usage."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai
import pytest

from corpus import TokenCache
from corpus.tokenizer import encode
from corpus.wire.linearize import segments

HANG = 300.0
"""SDK clients' time-out, a hang guard: their default 5 s connect time-out runs on the
client's event loop, which a loaded machine can stall for longer (seen: ConnectTimeout on
loopback with the connection already accepted)."""

TOKENS = TokenCache()

TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "read_file",
            "description": "Read a file from the workspace.",
            "parameters": {
                "type": "object",
                "properties": {"path": {"type": "string"}},
                "required": ["path"],
            },
        },
    },
    {
        "type": "function",
        "function": {"name": "run_tests", "parameters": {"type": "object", "properties": {}}},
    },
]


def local_count(api: str, body: dict[str, Any]) -> int:
    return TOKENS.count(segments(api, body))


@pytest.fixture
def client(engine_url: str) -> Any:
    with openai.OpenAI(base_url=engine_url + "/v1", api_key="test", max_retries=0,
                       timeout=HANG) as c:
        yield c


def messages(text: str = "Explain the failing test in tests/test_io.py.") -> list[Any]:
    return [
        {"role": "system", "content": "You are a careful coding agent."},
        {"role": "user", "content": text},
    ]


def test_chat_usage_matches_local_token_counts(client: openai.OpenAI) -> None:
    msgs = messages()
    resp = client.chat.completions.create(
        model="sim", messages=msgs, max_tokens=25, extra_body={"ignore_eos": True}
    )
    text = resp.choices[0].message.content or ""
    assert resp.usage is not None
    assert resp.usage.prompt_tokens == local_count("openai-chat", {"messages": msgs})
    assert resp.usage.completion_tokens == len(encode(text)) == 25
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + 25
    assert resp.usage.prompt_tokens_details is not None
    assert resp.usage.prompt_tokens_details.cached_tokens == 0
    assert resp.choices[0].finish_reason == "length"
    assert resp.model == "sim"


def test_streaming_chat_reports_usage_when_asked(client: openai.OpenAI) -> None:
    msgs = messages("stream please " * 20)
    stream = client.chat.completions.create(
        model="sim",
        messages=msgs,
        max_completion_tokens=40,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"ignore_eos": True},
    )
    with stream:
        chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len(content_chunks) == 40  # one chunk per token when the client keeps up
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    usage = chunks[-1].usage
    assert chunks[-1].choices == []
    assert usage is not None
    assert usage.completion_tokens == len(encode(text)) == 40
    assert usage.prompt_tokens == local_count("openai-chat", {"messages": msgs})


def test_streaming_chat_without_include_usage_has_no_usage_chunk(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="sim", messages=messages(), max_tokens=5, stream=True
    )
    with stream:
        chunks = list(stream)
    assert all(c.usage is None and c.choices for c in chunks)


def test_without_ignore_eos_output_stops_naturally_and_honours_min_tokens(
    client: openai.OpenAI,
) -> None:
    msgs = messages("a question with a natural answer length")
    free = client.chat.completions.create(model="sim", messages=msgs, max_tokens=20_000)
    assert free.choices[0].finish_reason == "stop"
    assert free.usage is not None
    assert 1 <= free.usage.completion_tokens < 20_000
    again = client.chat.completions.create(model="sim", messages=msgs, max_tokens=20_000)
    assert again.usage is not None
    assert again.usage.completion_tokens == free.usage.completion_tokens
    floor = free.usage.completion_tokens + 50
    held = client.chat.completions.create(
        model="sim", messages=msgs, max_tokens=20_000, extra_body={"min_tokens": floor}
    )
    assert held.usage is not None
    assert held.usage.completion_tokens >= floor
    capped = client.chat.completions.create(model="sim", messages=msgs, max_tokens=1)
    assert capped.choices[0].finish_reason == "length"


def test_default_max_tokens_comes_from_the_profile(client: openai.OpenAI) -> None:
    resp = client.chat.completions.create(
        model="sim", messages=messages(), extra_body={"ignore_eos": True}
    )
    assert resp.usage is not None
    assert resp.usage.completion_tokens == 256


def test_tool_call_then_text_answer_forms_an_agent_loop(client: openai.OpenAI) -> None:
    msgs: list[Any] = messages("Open README.md")
    first = client.chat.completions.create(model="sim", messages=msgs, tools=TOOLS, max_tokens=8)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls or []
    assert len(calls) == 1
    assert calls[0].type == "function"
    call = calls[0]
    assert call.function.name == "read_file"
    assert set(json.loads(call.function.arguments)) == {"path"}
    msgs.append(choice.message.model_dump(exclude_none=True))
    msgs.append({"role": "tool", "tool_call_id": call.id, "content": "# README\nhello"})
    second = client.chat.completions.create(
        model="sim", messages=msgs, tools=TOOLS, max_tokens=8, extra_body={"ignore_eos": True}
    )
    assert second.choices[0].message.tool_calls is None
    assert second.choices[0].finish_reason == "length"
    assert second.usage is not None
    assert first.usage is not None
    assert second.usage.prompt_tokens == local_count(
        "openai-chat", {"messages": msgs, "tools": TOOLS}
    )


def test_tool_choice_names_the_tool_and_none_disables_calls(client: openai.OpenAI) -> None:
    named = client.chat.completions.create(
        model="sim",
        messages=messages(),
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "run_tests"}},
        max_tokens=4,
    )
    calls = named.choices[0].message.tool_calls or []
    assert calls[0].function.name == "run_tests"
    assert json.loads(calls[0].function.arguments) == {"input": " the model reads each"}
    off = client.chat.completions.create(
        model="sim", messages=messages(), tools=TOOLS, tool_choice="none", max_tokens=4
    )
    assert off.choices[0].message.tool_calls is None


def test_streamed_tool_call_arrives_as_deltas(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="sim",
        messages=messages(),
        tools=TOOLS,
        max_tokens=6,
        stream=True,
        stream_options={"include_usage": True},
    )
    with stream:
        chunks = list(stream)
    deltas = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or []]
    assert deltas[0].id
    assert deltas[0].function
    assert deltas[0].function.name == "read_file"
    args = "".join(d.function.arguments or "" for d in deltas if d.function)
    assert json.loads(args) == {"path": " the model reads each line of"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 6


def test_sdk_stream_helper_accumulates_the_tool_call(engine_url: str) -> None:
    with (
        openai.OpenAI(base_url=engine_url + "/v1", api_key="test", max_retries=0,
                      timeout=HANG) as client,
        client.chat.completions.stream(
            model="sim", messages=messages(), tools=TOOLS, max_tokens=3
        ) as stream,
    ):
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls or []
    assert json.loads(calls[0].function.arguments) == {"path": " the model reads"}


def test_text_completion_counts_like_capture(client: openai.OpenAI) -> None:
    prompt = "def add(a, b):\n    return a + b\n" * 5
    resp = client.completions.create(
        model="sim", prompt=prompt, max_tokens=12, extra_body={"ignore_eos": True}
    )
    assert resp.usage is not None
    assert resp.usage.prompt_tokens == local_count("openai-completions", {"prompt": prompt})
    assert resp.usage.completion_tokens == len(encode(resp.choices[0].text)) == 12


def test_token_id_prompts_are_used_as_given_and_batched(client: openai.OpenAI) -> None:
    single = client.completions.create(model="sim", prompt=list(range(500)), max_tokens=3)
    assert single.usage is not None
    assert single.usage.prompt_tokens == 500
    batch = client.completions.create(
        model="sim",
        prompt=[list(range(500)), [7] * 40],
        max_tokens=3,
        extra_body={"ignore_eos": True},
    )
    assert [c.index for c in batch.choices] == [0, 1]
    assert batch.usage is not None
    assert batch.usage.prompt_tokens == 540
    assert batch.usage.completion_tokens == 6
    # The first prompt repeats the earlier request: its whole blocks come from the cache.
    assert batch.usage.prompt_tokens_details is not None
    assert batch.usage.prompt_tokens_details.cached_tokens == 496


def test_streaming_completions_with_usage(client: openai.OpenAI) -> None:
    stream = client.completions.create(
        model="sim",
        prompt=[1, 2, 3, 4],
        max_tokens=9,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"ignore_eos": True},
    )
    with stream:
        chunks = list(stream)
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert len(encode(text)) == 9
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 9
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"


def test_models_and_engine_header(client: openai.OpenAI) -> None:
    models = client.models.list()
    assert [m.id for m in models.data] == ["sim-instant"]
    raw = client.chat.completions.with_raw_response.create(
        model="sim", messages=messages(), max_tokens=1
    )
    assert raw.headers["x-agentload-engine"] == "simulated"


async def test_concurrent_async_streams_each_get_their_own_output(engine_url: str) -> None:
    async with openai.AsyncOpenAI(
        base_url=engine_url + "/v1", api_key="test", max_retries=0, timeout=HANG
    ) as client:

        async def one(i: int) -> tuple[int, str]:
            stream = await client.chat.completions.create(
                model="sim",
                messages=messages(f"request {i}"),
                max_tokens=10 + i,
                stream=True,
                extra_body={"ignore_eos": True},
            )
            parts = []
            async with stream:
                async for chunk in stream:
                    if chunk.choices and chunk.choices[0].delta.content:
                        parts.append(chunk.choices[0].delta.content)
            return i, "".join(parts)

        results = await asyncio.gather(*(one(i) for i in range(20)))
    for i, text in results:
        assert len(encode(text)) == 10 + i
