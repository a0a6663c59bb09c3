"""Wire-format parsers on recorded-shape responses, streamed and not."""

from __future__ import annotations

import capture_fixtures as fx
import pytest

from capture.wire import (
    FORMATS,
    Format,
    Result,
    ToolCall,
    Usage,
    anthropic,
    api_for,
    model_for,
    openai_chat,
    openai_responses,
)
from capture.wire.result import error_of, safe
from corpus.wire import SSEDecoder


def stream(fmt: Format, data: bytes, cut: int | None = None) -> Result:
    """Parse `data` as chunks (one split at `cut`); event time = index of its chunk."""
    chunks = [data] if cut is None else [data[:cut], data[cut:]]
    dec, parser = SSEDecoder(), fmt.Stream()
    for i, chunk in enumerate(chunks):
        for event in dec.feed(chunk):
            parser.feed(event, float(i))
    for event in dec.flush():
        parser.feed(event, float(len(chunks)))
    return parser.result()


def events_until_content(fmt: Format, data: bytes) -> int:
    """How many events the stream had when its first content event arrived (event i at t=i)."""
    dec, parser = SSEDecoder(), fmt.Stream()
    for i, event in enumerate(dec.feed(data)):
        parser.feed(event, float(i))
    result = parser.result()
    assert result.first_content is not None
    return int(result.first_content)


def test_api_is_recognized_by_path_suffix() -> None:
    assert api_for("POST", "/v1/chat/completions") == "openai-chat"
    assert api_for("POST", "/openai/deployments/gpt/chat/completions?api-version=1") == (
        "openai-chat"
    )
    assert api_for("POST", "/backend-api/codex/responses") == "openai-responses"
    assert api_for("POST", "/v1/messages") == "anthropic-messages"
    assert api_for("POST", "/v1/messages/count_tokens") is None
    assert api_for("POST", "/v1/threads/t1/messages") is None
    assert api_for("GET", "/v1/responses") is None
    assert api_for("POST", "/v1/embeddings") is None


def test_vertex_claude_calls_name_their_model_in_the_path() -> None:
    base = "/v1/projects/p-1/locations/us-east5/publishers/anthropic/models/"
    for method in ("streamRawPredict", "rawPredict"):
        path = f"{base}claude-sonnet-4%4020250514:{method}"
        assert api_for("POST", path) == "anthropic-messages"
        assert model_for(path) == "claude-sonnet-4@20250514"
    assert api_for("POST", base + "count-tokens:rawPredict") is None  # not a model call
    assert api_for("POST", base + "claude-x:predict") is None
    gemini = "/v1/projects/p/locations/l/publishers/google/models/g:rawPredict"
    assert api_for("POST", gemini) is None
    assert model_for("/v1/messages") is None


def test_bedrock_claude_calls_name_their_model_in_the_path() -> None:
    for action in ("invoke", "invoke-with-response-stream"):
        path = f"/model/us.anthropic.claude-sonnet-4-20250514-v1:0/{action}"
        assert api_for("POST", path) == "anthropic-messages"
        assert model_for(path) == "us.anthropic.claude-sonnet-4-20250514-v1:0"
    # an application inference profile: a Claude call, but its ARN names an account, not a model
    arn = ("/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3A"
           "application-inference-profile%2Fab12/invoke")
    assert api_for("POST", arn) == "anthropic-messages"
    assert model_for(arn) == ""
    assert api_for("POST", "/model/meta.llama3-70b-instruct-v1:0/invoke") is None  # another body
    assert api_for("POST", "/model/anthropic.claude-3-haiku/converse-stream") is None
    assert api_for("POST", "/gateway/model/anthropic.claude-3-haiku/invoke") == "anthropic-messages"


def test_chat_text_stream_reports_usage_cached_and_reasoning() -> None:
    r = stream(openai_chat, fx.CHAT_TEXT_STREAM)
    assert r.output_text() == "Hello there"
    assert r.usage == Usage(input=1117, cached=1024, output=46, reasoning=12)
    assert r.stop == "stop"
    assert r.complete
    assert r.error is None
    assert r.tool_calls == []
    assert events_until_content(openai_chat, fx.CHAT_TEXT_STREAM) == 1  # role chunk is not


def test_chat_tool_stream_collects_calls_across_chunks() -> None:
    r = stream(openai_chat, fx.CHAT_TOOL_STREAM)
    assert r.tool_calls == [
        ToolCall("call_DdmO9pD3xa9XTPNJ32zg2hcA", "get_weather"),
        ToolCall("call_2", "lookup_case"),
    ]
    assert '{"location":"Paris"}' in r.output_text()
    assert r.stop == "tool_calls"
    assert r.usage is None
    assert events_until_content(openai_chat, fx.CHAT_TOOL_STREAM) == 1


def test_chat_reasoning_deltas_count_as_content() -> None:
    r = stream(openai_chat, fx.CHAT_REASONING_STREAM)
    assert r.output_text() == "Let me think42"
    assert r.usage == Usage(input=20, cached=16, output=9, reasoning=7)
    assert events_until_content(openai_chat, fx.CHAT_REASONING_STREAM) == 1


def test_chat_in_stream_error_is_a_failed_turn_without_its_message() -> None:
    r = stream(openai_chat, fx.CHAT_ERROR_STREAM)
    assert r.error == "error:server_error"
    assert not r.complete


def test_chat_body_and_error_body() -> None:
    r = openai_chat.body(fx.CHAT_BODY)
    assert r.tool_calls == [ToolCall("call_abc", "read_file")]
    assert r.stop == "tool_calls"
    assert r.usage is not None
    assert r.usage.input == 1117
    bad = openai_chat.body(fx.OPENAI_ERROR_BODY)
    assert bad.error == "error:tokens"
    assert error_of(fx.OPENAI_ERROR_BODY) == "error:tokens"


def test_anthropic_stream_normalizes_usage_to_total_input() -> None:
    r = stream(anthropic, fx.ANTHROPIC_STREAM)
    assert r.usage == Usage(input=25 + 20000 + 1000, cached=20000, output=89, reasoning=None)
    assert r.tool_calls == [ToolCall("toolu_01T1x1fJ34qAmk2tNTrN7Up6", "Bash")]
    assert r.stop == "tool_use"
    assert r.complete
    assert "Hmm." in r.output_text()
    assert '{"command": "ls"}' in r.output_text()
    # message_start and content_block_start(thinking, empty) are not content; the delta is
    assert events_until_content(anthropic, fx.ANTHROPIC_STREAM) == 2


def test_anthropic_error_event() -> None:
    r = stream(anthropic, fx.ANTHROPIC_ERROR_STREAM)
    assert r.error == "error:overloaded_error"
    assert r.usage is not None
    assert r.usage.input == 10


def test_anthropic_body_and_error_body() -> None:
    r = anthropic.body(fx.ANTHROPIC_BODY)
    assert r.usage == Usage(input=2095 + 1800, cached=1800, output=503)
    assert r.tool_calls == [ToolCall("toolu_1", "search_statutes")]
    assert anthropic.body(fx.ANTHROPIC_ERROR_BODY).error == "error:rate_limit_error"


def test_responses_stream_with_reasoning_and_function_call() -> None:
    r = stream(openai_responses, fx.RESPONSES_STREAM)
    assert r.usage == Usage(input=3000, cached=2048, output=200, reasoning=128)
    assert r.tool_calls == [ToolCall("call_q1", "shell")]
    assert r.stop == "completed"
    assert r.complete
    assert r.response_id is not None
    assert r.response_id.startswith("resp_")
    assert r.output_items is not None
    assert [i["type"] for i in r.output_items] == [
        "reasoning",
        "function_call",
    ]
    assert events_until_content(openai_responses, fx.RESPONSES_STREAM) == 3


def test_responses_incomplete_failed_and_error_event() -> None:
    r = stream(openai_responses, fx.RESPONSES_INCOMPLETE_STREAM)
    assert r.stop == "max_output_tokens"
    assert r.output_text() == "Partial"
    failed = stream(openai_responses, fx.RESPONSES_FAILED_STREAM)
    assert failed.error == "error:server_error"
    assert failed.stop == "failed"
    assert stream(openai_responses, fx.RESPONSES_ERROR_EVENT).error == (
        "error:rate_limit_exceeded"
    )


def test_responses_body() -> None:
    r = openai_responses.body(fx.RESPONSES_BODY)
    assert r.output_text() == "Done."
    assert r.tool_calls == []
    assert r.usage is not None
    assert r.usage.reasoning == 128


@pytest.mark.parametrize(
    ("fmt", "data"),
    [
        (openai_chat, fx.CHAT_TOOL_STREAM),
        (anthropic, fx.ANTHROPIC_STREAM),
        (openai_responses, fx.RESPONSES_STREAM),
    ],
)
def test_results_do_not_depend_on_chunking(fmt: Format, data: bytes) -> None:
    whole = stream(fmt, data)
    for cut in range(1, len(data), 7):
        split = stream(fmt, data, cut)
        assert split.tool_calls == whole.tool_calls
        assert split.output_text() == whole.output_text()
        assert split.usage == whole.usage
        assert split.stop == whole.stop


def test_request_side_helpers() -> None:
    chat = [
        {"role": "user", "content": "x"},
        {"role": "assistant", "tool_calls": [{"id": "c1", "function": {"name": "f"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "r"},
    ]
    assert openai_chat.referenced_ids(chat) == {"c1"}
    assert openai_chat.ends_in_tool_result(chat)
    msgs = [
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Bash"}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1"}]},
    ]
    assert anthropic.referenced_ids(msgs) == {"t1"}
    assert anthropic.ends_in_tool_result(msgs)
    assert not anthropic.ends_in_tool_result([{"role": "user", "content": "hi"}])
    items = [{"type": "function_call", "call_id": "k"}, {"type": "function_call_output",
                                                         "call_id": "k", "output": "o"}]
    assert openai_responses.referenced_ids(items) == {"k"}
    assert openai_responses.ends_in_tool_result(items)
    assert anthropic.preamble({"system": "s", "tools": [1], "model": "m"}) == {
        "tools": [1],
        "system": "s",
    }
    assert set(FORMATS) == {"openai-chat", "openai-responses", "anthropic-messages"}


def test_only_vocabulary_like_labels_are_kept() -> None:
    assert safe("end_turn") == "end_turn"
    assert safe("Rate limit for org-123!") is None
    assert safe("x" * 60) is None
