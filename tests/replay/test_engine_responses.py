"""The simulated engine's OpenAI Responses API (/v1/responses) through the official openai SDK."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import msgspec
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corpus import TokenCache
from corpus.tokenizer import encode
from corpus.wire.linearize import prompts, segments
from replay.engine import PROFILES, Running
from replay.engine.api_responses import ResponseStore

HANG = 300.0
"""SDK clients' time-out, a hang guard: their default 5 s connect time-out runs on the
client's event loop, which a loaded machine can stall for longer (seen: ConnectTimeout on
loopback with the connection already accepted)."""

TOKENS = TokenCache()
API = "openai-responses"

TOOLS: list[Any] = [
    {
        "type": "function",
        "name": "read_file",
        "description": "Read a file from the workspace.",
        "parameters": {
            "type": "object",
            "properties": {"path": {"type": "string"}},
            "required": ["path"],
        },
    },
    {"type": "function", "name": "run_tests", "parameters": {"type": "object", "properties": {}}},
]
INSTRUCTIONS = "Responses agent (simulated engine tests): read files before editing them."

TEXT_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
]
CALL_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.done",
    "response.output_item.done",
    "response.completed",
]


def local_count(body: dict[str, Any]) -> int:
    return TOKENS.count(segments(API, body))


def prompt_tokens(body: dict[str, Any]) -> list[int]:
    return [t for seg in segments(API, body) for t in TOKENS.tokens(seg)]


def user(text: Any) -> dict[str, Any]:
    return {"role": "user", "content": text}


def squeeze(types: list[str]) -> list[str]:
    """Event types with runs of the same type collapsed (deltas -> one entry)."""
    return [t for i, t in enumerate(types) if i == 0 or types[i - 1] != t]


def post(url: str, body: dict[str, Any] | bytes) -> tuple[int, bytes]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url + "/v1/responses", data=raw, method="POST")
    request.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()


def openai_error(raw: bytes) -> dict[str, Any]:
    error: dict[str, Any] = json.loads(raw)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    return error


@pytest.fixture
def client(engine_url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=engine_url + "/v1", api_key="test", max_retries=0,
                       timeout=HANG) as c:
        yield c


def test_text_response_usage_matches_local_token_counts(client: openai.OpenAI) -> None:
    items = [user("Explain the failing test in tests/test_io.py (responses, usage).")]
    resp = client.responses.create(
        model="sim",
        instructions=INSTRUCTIONS,
        input=items,
        max_output_tokens=25,
        extra_body={"ignore_eos": True},
    )
    assert resp.id.startswith("resp_")
    assert resp.object == "response"
    assert resp.model == "sim"
    assert resp.instructions == INSTRUCTIONS
    assert resp.max_output_tokens == 25
    assert [item.type for item in resp.output] == ["message"]
    assert resp.output[0].id.startswith("msg_")
    assert len(encode(resp.output_text)) == 25
    # Cut by the cap: incomplete, as OpenAI reports it.
    assert resp.status == "incomplete"
    assert resp.incomplete_details is not None
    assert resp.incomplete_details.reason == "max_output_tokens"
    usage = resp.usage
    assert usage is not None
    assert usage.input_tokens == local_count({"instructions": INSTRUCTIONS, "input": items})
    assert usage.input_tokens_details.cached_tokens == 0
    assert usage.output_tokens == 25
    assert usage.output_tokens_details.reasoning_tokens == 0
    assert usage.total_tokens == usage.input_tokens + 25


def test_string_input_counts_like_one_user_message(client: openai.OpenAI) -> None:
    text = "string input is one user message"
    resp = client.responses.create(model="sim", input=text, max_output_tokens=2)
    assert resp.usage is not None
    assert (
        resp.usage.input_tokens
        == local_count({"input": text})
        == local_count({"input": [user(text)]})
    )


def test_natural_length_stops_completed_and_honours_min_tokens(client: openai.OpenAI) -> None:
    text = "a question with a natural answer length (responses)"
    free = client.responses.create(model="sim", input=text, max_output_tokens=20_000)
    assert free.status == "completed"
    assert free.incomplete_details is None
    assert free.usage is not None
    assert 1 <= free.usage.output_tokens < 20_000
    floor = free.usage.output_tokens + 30
    held = client.responses.create(
        model="sim", input=text, max_output_tokens=20_000, extra_body={"min_tokens": floor}
    )
    assert held.usage is not None
    assert held.usage.output_tokens >= floor
    default = client.responses.create(model="sim", input=text, extra_body={"ignore_eos": True})
    assert default.usage is not None
    assert default.usage.output_tokens == 256  # the profile's default_max_tokens


def test_streamed_text_follows_the_event_sequence(client: openai.OpenAI) -> None:
    items = [user("stream please " * 20)]
    stream = client.responses.create(
        model="sim", input=items, max_output_tokens=30, stream=True, extra_body={"ignore_eos": True}
    )
    with stream:
        events = list(stream)
    types = [e.type for e in events]
    assert squeeze(types) == [*TEXT_EVENTS, "response.incomplete"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = [e for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) == 30  # one event per token when the client keeps up
    text = "".join(e.delta for e in deltas)
    done = next(e for e in events if e.type == "response.output_text.done")
    assert done.text == text
    assert len(encode(text)) == 30
    created, last = events[0], events[-1]
    assert created.type == "response.created"
    assert last.type == "response.incomplete"
    assert created.response.status == "in_progress"
    assert created.response.usage is None
    assert last.response.id == created.response.id
    assert last.response.output_text == text
    assert last.response.usage is not None
    assert last.response.usage.output_tokens == 30
    assert last.response.usage.input_tokens == local_count({"input": items})


def test_sdk_stream_helper_returns_the_final_response(client: openai.OpenAI) -> None:
    with client.responses.stream(
        model="sim", input="a short natural answer, streamed", max_output_tokens=5_000
    ) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert final.status == "completed"
    assert final.output_text == "".join(deltas)
    assert final.usage is not None
    assert final.usage.output_tokens == len(encode(final.output_text))


def test_wire_format_is_named_sse_events(engine_url: str) -> None:
    body = {"model": "sim", "input": "hi", "max_output_tokens": 3, "stream": True}
    status, raw = post(engine_url, body)
    assert status == 200
    frames = raw.decode().split("\n\n")
    assert frames[-1] == ""
    for frame in frames[:-1]:
        event, data = frame.split("\n")
        assert event.startswith("event: ")
        assert data.startswith("data: ")
        doc = json.loads(data.removeprefix("data: "))
        assert doc["type"] == event.removeprefix("event: ")
        assert isinstance(doc["sequence_number"], int)


def test_function_call_then_text_answer_forms_an_agent_loop(client: openai.OpenAI) -> None:
    items: list[Any] = [user("Open README.md, then summarize it.")]
    first = client.responses.create(
        model="sim", instructions=INSTRUCTIONS, input=items, tools=TOOLS, max_output_tokens=8
    )
    assert first.status == "completed"
    (call,) = first.output
    assert call.type == "function_call"
    assert call.name == "read_file"
    assert call.call_id.startswith("call_")
    assert set(json.loads(call.arguments)) == {"path"}
    assert first.usage is not None
    assert 1 <= first.usage.output_tokens <= 8
    items += [call.model_dump(exclude_none=True)]
    items += [{"type": "function_call_output", "call_id": call.call_id, "output": "# README"}]
    second = client.responses.create(
        model="sim",
        instructions=INSTRUCTIONS,
        input=items,
        tools=TOOLS,
        max_output_tokens=8,
        extra_body={"ignore_eos": True},
    )
    assert [item.type for item in second.output] == ["message"]
    assert len(encode(second.output_text)) == 8
    assert second.usage is not None
    full = {"instructions": INSTRUCTIONS, "input": items, "tools": TOOLS}
    assert second.usage.input_tokens == local_count(full)
    # The first request's prompt is a prefix of the second: its whole blocks are cached.
    assert second.usage.input_tokens_details.cached_tokens == first.usage.input_tokens // 16 * 16


def test_previous_response_id_counts_the_stored_conversation(client: openai.OpenAI) -> None:
    items: list[Any] = [user("Open setup.py via a chained response.")]
    first = client.responses.create(
        model="sim", instructions=INSTRUCTIONS, input=items, tools=TOOLS, max_output_tokens=5
    )
    (call,) = first.output
    assert call.type == "function_call"
    result = {"type": "function_call_output", "call_id": call.call_id, "output": "setup()"}
    second = client.responses.create(
        model="sim",
        previous_response_id=first.id,
        instructions=INSTRUCTIONS,
        input=[result],
        tools=TOOLS,
        max_output_tokens=4,
    )
    assert second.previous_response_id == first.id
    assert second.output[0].type == "message"  # a function_call_output turn gets text
    # Counted as if the whole conversation had been sent again (prior input and output first).
    conversation = [*items, call.model_dump(exclude_none=True), result]
    whole = {"instructions": INSTRUCTIONS, "tools": TOOLS, "input": conversation}
    assert first.usage is not None
    assert second.usage is not None
    assert second.usage.input_tokens == local_count(whole)
    assert second.usage.input_tokens_details.cached_tokens == first.usage.input_tokens // 16 * 16
    # A third link chains on: its prompt holds the second's answer too.
    third = client.responses.create(
        model="sim", previous_response_id=second.id, input="thanks", max_output_tokens=2
    )
    answer = {"role": "assistant", "content": second.output_text}
    assert third.usage is not None
    assert third.usage.input_tokens == local_count(
        {"input": [*conversation, answer, user("thanks")]}
    )


def test_unknown_or_unstored_previous_response_counts_own_input(client: openai.OpenAI) -> None:
    unknown = client.responses.create(
        model="sim", previous_response_id="resp_nope", input="hello again", max_output_tokens=2
    )
    assert unknown.usage is not None
    assert unknown.usage.input_tokens == local_count({"input": "hello again"})
    private = client.responses.create(model="sim", input="x", max_output_tokens=2, store=False)
    chained = client.responses.create(
        model="sim", previous_response_id=private.id, input="y", max_output_tokens=2
    )
    assert chained.usage is not None
    assert chained.usage.input_tokens == local_count({"input": "y"})


def test_tool_choice_variants(client: openai.OpenAI) -> None:
    named = client.responses.create(
        model="sim",
        input="run them",
        tools=TOOLS,
        tool_choice={"type": "function", "name": "run_tests"},
        max_output_tokens=4,
    )
    assert named.output[0].type == "function_call"
    assert named.output[0].name == "run_tests"
    assert json.loads(named.output[0].arguments) == {"input": " the model reads each"}
    off = client.responses.create(
        model="sim", input="run them", tools=TOOLS, tool_choice="none", max_output_tokens=2
    )
    assert off.output[0].type == "message"
    after_result: list[Any] = [
        user("go"),
        {"type": "function_call", "call_id": "c1", "name": "run_tests", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "ok"},
    ]
    auto = client.responses.create(model="sim", input=after_result, tools=TOOLS)
    assert auto.output[0].type == "message"
    forced = client.responses.create(
        model="sim", input=after_result, tools=TOOLS, tool_choice="required", max_output_tokens=2
    )
    assert forced.output[0].type == "function_call"
    allowed = client.responses.create(
        model="sim",
        input=after_result,
        tools=TOOLS,
        tool_choice={
            "type": "allowed_tools",
            "mode": "required",
            "tools": [{"type": "function", "name": "run_tests"}],
        },
        max_output_tokens=2,
    )
    assert allowed.output[0].type == "function_call"
    assert allowed.output[0].name == "run_tests"
    hosted = client.responses.create(
        model="sim",
        input="search",
        tools=[*TOOLS, {"type": "web_search"}],
        tool_choice={"type": "web_search"},
        max_output_tokens=2,
    )
    assert hosted.output[0].type == "message"


def test_reasoning_and_developer_items_are_counted(client: openai.OpenAI) -> None:
    items: list[Any] = [
        {"role": "developer", "content": "Be brief."},
        user("hi"),
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "hm"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "x"}]},
        user([{"type": "input_text", "text": "and now?"}]),
    ]
    resp = client.responses.create(model="sim", input=items, max_output_tokens=2)
    assert resp.usage is not None
    assert resp.usage.input_tokens == local_count({"input": items})


async def test_async_streamed_function_call_arrives_as_argument_deltas(engine_url: str) -> None:
    async with openai.AsyncOpenAI(
        base_url=engine_url + "/v1", api_key="test", max_retries=0, timeout=HANG
    ) as client:
        stream = await client.responses.create(
            model="sim", input="Open main.py (async)", tools=TOOLS, max_output_tokens=6, stream=True
        )
        async with stream:
            events = [e async for e in stream]
        assert squeeze([e.type for e in events]) == CALL_EVENTS
        added = events[2]
        assert added.type == "response.output_item.added"
        assert added.item.type == "function_call"
        assert added.item.name == "read_file"
        args = "".join(
            e.delta for e in events if e.type == "response.function_call_arguments.delta"
        )
        assert json.loads(args) == {"path": " the model reads each line of"}
        args_done = events[-3]
        assert args_done.type == "response.function_call_arguments.done"
        assert args_done.arguments == args
        assert args_done.to_dict()["name"] == "read_file"  # newer API versions send it
        done = events[-1]
        assert done.type == "response.completed"
        assert done.response.output[0].type == "function_call"
        assert done.response.output[0].arguments == args
        assert done.response.usage is not None
        assert done.response.usage.output_tokens == 6

        async with client.responses.stream(
            model="sim", input="Open main.py (helper)", tools=TOOLS, max_output_tokens=3
        ) as helper:
            final = await helper.get_final_response()
        assert final.output[0].type == "function_call"
        assert json.loads(final.output[0].arguments) == {"path": " the model reads"}

        async def one(i: int) -> int:
            resp = await client.responses.create(
                model="sim",
                input=f"request {i}",
                max_output_tokens=5 + i,
                extra_body={"ignore_eos": True},
            )
            return len(encode(resp.output_text))

        assert await asyncio.gather(*(one(i) for i in range(10))) == [5 + i for i in range(10)]


def test_repeated_long_prefix_is_served_from_the_cache(client: openai.OpenAI) -> None:
    document = "def handler(event, context):\n    return process(event)\n" * 120
    first = client.responses.create(
        model="sim", instructions=document, input="summarize the handler", max_output_tokens=2
    )
    second = client.responses.create(
        model="sim", instructions=document, input="now list its bugs", max_output_tokens=2
    )
    assert first.usage is not None
    assert second.usage is not None
    assert first.usage.input_tokens_details.cached_tokens == 0
    # Whole 16-token blocks of the shared token prefix come from the cache.
    a = prompt_tokens({"instructions": document, "input": "summarize the handler"})
    b = prompt_tokens({"instructions": document, "input": "now list its bugs"})
    shared = next(i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y)
    assert shared > 1000
    assert second.usage.input_tokens_details.cached_tokens == shared // 16 * 16


def test_malformed_body_is_400_in_openai_shape(engine_url: str, client: openai.OpenAI) -> None:
    for data in (b"{not json", b"[1]", b""):
        status, raw = post(engine_url, data)
        assert status == 400
        assert openai_error(raw)["type"] == "invalid_request_error"
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="sim", input=[{"role": "robot", "content": "x"}])
    assert caught.value.status_code == 400
    assert caught.value.param == "input[0].role"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "hi"}, "model"),
        ({"model": "sim", "input": 5}, "input"),
        ({"model": "sim", "input": ["hi"]}, "input[0]"),
        ({"model": "sim", "input": [{"content": "x"}]}, "input[0].type"),
        ({"model": "sim", "input": [{"role": "user", "content": 3}]}, "input[0].content"),
        ({"model": "sim", "input": [{"type": "function_call", "name": "f"}]}, "input[0].call_id"),
        ({"model": "sim", "input": [{"type": "function_call_output", "call_id": "c"}]},
         "input[0].output"),
        ({"model": "sim", "input": []}, "input"),
        ({"model": "sim", "input": "x", "instructions": 3}, "instructions"),
        ({"model": "sim", "input": "x", "max_output_tokens": 0}, "max_output_tokens"),
        ({"model": "sim", "input": "x", "max_output_tokens": "9"}, "max_output_tokens"),
        ({"model": "sim", "input": "x", "stream": "yes"}, "stream"),
        ({"model": "sim", "input": "x", "store": "no"}, "store"),
        ({"model": "sim", "input": "x", "previous_response_id": 7}, "previous_response_id"),
        ({"model": "sim", "input": "x", "background": True}, "background"),
        ({"model": "sim", "input": "x", "tools": "x"}, "tools"),
        ({"model": "sim", "input": "x", "tools": [{"name": "f"}]}, "tools[0].type"),
        ({"model": "sim", "input": "x", "tools": [{"type": "function", "function": {}}]},
         "tools[0].name"),
        ({"model": "sim", "input": "x", "tools": TOOLS, "tool_choice": "any"}, "tool_choice"),
        ({"model": "sim", "input": "x", "tools": TOOLS,
          "tool_choice": {"type": "function", "name": "nope"}}, "tool_choice"),
        ({"model": "sim", "input": "x", "ignore_eos": 1}, "ignore_eos"),
        ({"model": "sim", "input": "x", "min_tokens": -1}, "min_tokens"),
    ],
)  # fmt: skip
def test_bad_fields_are_400_naming_the_param(
    engine_url: str, body: dict[str, Any], param: str
) -> None:
    status, raw = post(engine_url, body)
    assert status == 400
    assert openai_error(raw)["param"] == param


def test_context_overflow_is_400_context_length_exceeded(
    start_engine: Callable[..., Running],
) -> None:
    small = msgspec.structs.replace(PROFILES["instant"], max_context=300)
    url = start_engine(small).url
    with openai.OpenAI(base_url=url + "/v1", api_key="t", max_retries=0, timeout=HANG) as client:
        with pytest.raises(openai.BadRequestError) as caught:
            client.responses.create(model="sim", input="word " * 400, max_output_tokens=3)
    assert caught.value.code == "context_length_exceeded"
    assert caught.value.param == "input"
    assert "maximum context length is 300 tokens" in caught.value.message


async def test_full_queue_answers_429(
    start_engine: Callable[..., Running], scrape: Callable[[str], dict[str, float]]
) -> None:
    one_at_a_time = msgspec.structs.replace(PROFILES["h100"], max_batch=1)
    url = start_engine(one_at_a_time, max_queue=1).url
    body = {"model": "sim", "input": "hi", "max_output_tokens": 3, "ignore_eos": True}
    async with aiohttp.ClientSession() as session:
        hold = await session.post(
            url + "/v1/responses", json=body | {"max_output_tokens": 2000, "stream": True}
        )
        while b"response.output_text.delta" not in await hold.content.readline():
            pass  # first token: it is running
        queued = asyncio.ensure_future(session.post(url + "/v1/responses", json=body))
        for _ in range(200):
            if (await asyncio.to_thread(scrape, url))["vllm:num_requests_waiting"] == 1:
                break
            await asyncio.sleep(0.01)
        async with session.post(url + "/v1/responses", json=body) as resp:
            assert resp.status == 429
            assert resp.headers["Retry-After"] == "1"
            error = (await resp.json())["error"]
            assert error["type"] == "rate_limit_error"
        hold.close()  # the client goes away: its slot frees and the queued request runs
        async with await queued as resp:
            assert resp.status == 200
            assert (await resp.json())["usage"]["output_tokens"] == 3


def test_response_store_is_a_bounded_lru() -> None:
    store = ResponseStore(max_responses=2, max_segments=5)
    store.put("a", ("1",))
    store.put("b", ("1", "2"))
    assert store.get("a") == ("1",)  # now most recent
    store.put("c", ("3",))
    assert store.get("b") is None
    assert len(store) == 2
    store.put("d", ("x",) * 5)  # over the segment budget: older entries go, the newest stays
    assert store.get("a") is None
    assert store.get("c") is None
    assert store.get("d") == ("x",) * 5


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 40) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(["role", "content", "type", "name", "text", "call_id", "output"]),
            children,
        )
    ),
    max_leaves=8,
)
items = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "type": st.sampled_from(
                ["message", "function_call", "function_call_output", "reasoning", "x"]
            )
            | json_values,
            "role": st.sampled_from(["user", "assistant", "developer", "x"]),
            "content": json_values,
            "output": json_values,
            "arguments": json_values,
            "name": json_values,
            "call_id": st.just("c") | json_values,
            "summary": json_values,
        },
    ),
    max_size=3,
)
bodies = st.fixed_dictionaries(
    {},
    optional={
        "model": st.just("sim") | json_values,
        "input": items | st.text(max_size=10) | json_values,
        "max_output_tokens": st.integers(-1, 20) | json_values,
        "stream": st.booleans() | json_values,
        **{
            name: json_values
            for name in (
                "instructions",
                "tools",
                "tool_choice",
                "previous_response_id",
                "store",
                "min_tokens",
                "ignore_eos",
                "parallel_tool_calls",
                "text",
            )
        },
    },
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies)
def test_arbitrary_bodies_never_crash_the_server(engine_url: str, body: dict[str, Any]) -> None:
    status, raw = post(engine_url, body)
    assert status in (200, 400), raw
    if status == 400:
        assert openai_error(raw)["type"] == "invalid_request_error"


def test_batched_text_completions_count_each_prompt_like_linearize(client: openai.OpenAI) -> None:
    texts = ["def add(a, b):\n    return a + b\n", "class Stack:\n    pass\n" * 3]
    batch = client.completions.create(
        model="sim", prompt=texts, max_tokens=2, extra_body={"ignore_eos": True}
    )
    assert batch.usage is not None
    per_prompt = prompts("openai-completions", {"prompt": texts})
    assert len(per_prompt) == len(batch.choices) == 2
    assert batch.usage.prompt_tokens == sum(TOKENS.count(p) for p in per_prompt)
