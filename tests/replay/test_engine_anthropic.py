"""The simulated engine through the official anthropic SDK: messages, streaming, tool use."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import anthropic
import pytest

from corpus import TokenCache
from corpus.tokenizer import encode
from corpus.wire.linearize import segments

HANG = 300.0
"""SDK clients' time-out, a hang guard: their default 5 s connect time-out runs on the
client's event loop, which a loaded machine can stall for longer (seen: ConnectTimeout on
loopback with the connection already accepted)."""

TOKENS = TokenCache()
SYSTEM = "You are a contract-review agent. " * 40  # long shared prefix (> 16-token blocks)
TOOLS: list[Any] = [
    {
        "name": "search_clauses",
        "description": "Search the contract for clauses.",
        "input_schema": {
            "type": "object",
            "properties": {"query": {"type": "string"}},
            "required": ["query"],
        },
    }
]


def local_count(body: dict[str, Any]) -> int:
    return TOKENS.count(segments("anthropic-messages", body))


@pytest.fixture
def client(engine_url: str) -> Any:
    with anthropic.Anthropic(base_url=engine_url, api_key="test", max_retries=0, timeout=HANG) as c:
        yield c


def test_message_usage_matches_local_counts(client: anthropic.Anthropic) -> None:
    msgs: list[Any] = [{"role": "user", "content": "Summarize clause 4."}]
    resp = client.messages.create(
        model="sim",
        system="Be brief.",
        messages=msgs,
        max_tokens=30,
        extra_body={"ignore_eos": True},
    )
    block = resp.content[0]
    assert block.type == "text"
    u = resp.usage
    total = u.input_tokens + (u.cache_read_input_tokens or 0) + (u.cache_creation_input_tokens or 0)
    assert total == local_count({"system": "Be brief.", "messages": msgs})
    assert u.output_tokens == len(encode(block.text)) == 30
    assert resp.stop_reason == "max_tokens"


def test_second_request_sharing_a_prefix_reads_the_cache(client: anthropic.Anthropic) -> None:
    def body(question: str) -> dict[str, Any]:
        return {"system": SYSTEM, "messages": [{"role": "user", "content": question}]}

    def ask(question: str) -> anthropic.types.Message:
        return client.messages.create(model="sim", max_tokens=2, **body(question))

    questions = ["Which law governs this contract?", "Who may terminate, and how?"]
    first, second = ask(questions[0]), ask(questions[1])
    a, b = (
        [t for seg in segments("anthropic-messages", body(q)) for t in TOKENS.tokens(seg)]
        for q in questions
    )
    common = next(i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y)
    assert common > 200
    assert not first.usage.cache_read_input_tokens
    assert second.usage.cache_read_input_tokens == common // 16 * 16
    assert second.usage.input_tokens == len(b) - common // 16 * 16
    assert second.usage.cache_creation_input_tokens == 0


def test_stream_helper_accumulates_text_and_usage(client: anthropic.Anthropic) -> None:
    msgs: list[Any] = [{"role": "user", "content": "Stream the answer."}]
    with client.messages.stream(
        model="sim", messages=msgs, max_tokens=33, extra_body={"ignore_eos": True}
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert len(encode(text)) == final.usage.output_tokens == 33
    assert final.content[0].type == "text"
    assert final.content[0].text == text
    assert final.usage.input_tokens == local_count({"messages": msgs})
    assert final.stop_reason == "max_tokens"


def test_event_sequence_matches_the_messages_protocol(
    client: anthropic.Anthropic, engine_url: str
) -> None:
    body: dict[str, Any] = {"model": "sim", "max_tokens": 3}
    body["messages"] = [{"role": "user", "content": "events"}]
    raw_body = body | {"stream": True, "ignore_eos": True}
    request = urllib.request.Request(
        engine_url + "/v1/messages", data=json.dumps(raw_body).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=60) as resp:
        raw = resp.read().decode()
    names = [line[len("event: ") :] for line in raw.splitlines() if line.startswith("event: ")]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    stream = client.messages.create(stream=True, extra_body={"ignore_eos": True}, **body)
    with stream:
        kinds = [event.type for event in stream]
    assert kinds == [n for n in names if n != "ping"]  # the SDK drops pings


def test_natural_stop_is_end_turn(client: anthropic.Anthropic) -> None:
    resp = client.messages.create(
        model="sim", messages=[{"role": "user", "content": "short"}], max_tokens=20_000
    )
    assert resp.stop_reason == "end_turn"
    assert resp.usage.output_tokens < 20_000


def test_tool_use_then_text_after_the_tool_result(client: anthropic.Anthropic) -> None:
    msgs: list[Any] = [{"role": "user", "content": "Find the indemnity clause."}]
    first = client.messages.create(model="sim", messages=msgs, tools=TOOLS, max_tokens=5)
    assert first.stop_reason == "tool_use"
    use = first.content[0]
    assert use.type == "tool_use"
    assert use.name == "search_clauses"
    assert use.input == {"query": " the model reads each line"}
    msgs.append({"role": "assistant", "content": [b.model_dump() for b in first.content]})
    msgs.append(
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "Clause 9"}],
        }
    )
    second = client.messages.create(model="sim", messages=msgs, tools=TOOLS, max_tokens=5)
    assert second.content[0].type == "text"
    assert second.usage.input_tokens + (second.usage.cache_read_input_tokens or 0) == (
        local_count({"messages": msgs, "tools": TOOLS})
    )


def test_streamed_tool_use_builds_the_input(client: anthropic.Anthropic) -> None:
    with client.messages.stream(
        model="sim",
        messages=[{"role": "user", "content": "search"}],
        tools=TOOLS,
        tool_choice={"type": "tool", "name": "search_clauses"},
        max_tokens=4,
    ) as stream:
        final = stream.get_final_message()
    use = final.content[0]
    assert use.type == "tool_use"
    assert use.input == {"query": " the model reads each"}
    assert final.stop_reason == "tool_use"
    assert final.usage.output_tokens == 4


def test_count_tokens_agrees_with_usage(client: anthropic.Anthropic) -> None:
    msgs: list[Any] = [{"role": "user", "content": "count me"}]
    counted = client.messages.count_tokens(model="sim", messages=msgs, system="sys")
    assert counted.input_tokens == local_count({"system": "sys", "messages": msgs})


def test_models_list_in_anthropic_shape(client: anthropic.Anthropic) -> None:
    page = client.models.list()
    assert [m.id for m in page.data] == ["sim-instant"]


@pytest.mark.parametrize("cloud", ["vertex", "bedrock"])
def test_cloud_forms_answer_like_messages(engine_url: str, cloud: str) -> None:
    """Vertex AI's and Bedrock's paths serve the same Messages API (model in the path;
    Bedrock streams in AWS event-stream frames, which the SDK checks through botocore)."""
    c: anthropic.AnthropicVertex | anthropic.AnthropicBedrock
    if cloud == "vertex":
        c = anthropic.AnthropicVertex(region="europe-west1", project_id="p", access_token="t",
                                      base_url=engine_url + "/v1", max_retries=0, timeout=HANG)
    else:
        c = anthropic.AnthropicBedrock(aws_access_key="AKIATEST", aws_secret_key="s",
                                       aws_region="eu-west-1", base_url=engine_url,
                                       max_retries=0, timeout=HANG)
    body: dict[str, Any] = {"system": SYSTEM, "tools": TOOLS, "messages": [
        {"role": "user", "content": "Find the indemnity clause."}]}
    with c:
        with c.messages.stream(model="anthropic.sim", max_tokens=12, **body) as s:
            msg = s.get_final_message()
        plain = c.messages.create(model="anthropic.sim", max_tokens=12, **body)
    for m in (msg, plain):
        u = m.usage
        total = u.input_tokens + (u.cache_read_input_tokens or 0) + (
            u.cache_creation_input_tokens or 0)
        assert total == local_count({**body, "model": "anthropic.sim"})
        assert m.usage.output_tokens == 12
        assert m.model == "anthropic.sim"
    assert [b.type for b in msg.content] == ["tool_use"]  # tools given: the engine calls one


def test_unknown_cloud_methods_are_not_found(engine_url: str) -> None:
    for path in ("/v1/projects/p/locations/l/publishers/anthropic/models/m:predict",
                 "/model/anthropic.sim/converse"):
        req = urllib.request.Request(engine_url + path, data=b"{}", method="POST")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req)
        err.value.close()
        assert err.value.code == 404
