"""Response shapes as the providers send them (written from their documented and observed wire
formats; ids and text shortened). Streams are the raw SSE bytes."""

from __future__ import annotations

import json
from typing import Any


def _sse(events: list[tuple[str | None, Any]]) -> bytes:
    out = []
    for name, data in events:
        payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
        head = f"event: {name}\n" if name else ""
        out.append(f"{head}data: {payload}\n\n")
    return "".join(out).encode()


def _chunk(delta: dict[str, Any], finish: str | None = None, usage: Any = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
        "object": "chat.completion.chunk",
        "created": 1741570283,
        "model": "gpt-4o-2024-08-06",
        "system_fingerprint": "fp_eb9dce56a8",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        "usage": usage,
    }


CHAT_USAGE = {
    "prompt_tokens": 1117,
    "completion_tokens": 46,
    "total_tokens": 1163,
    "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 12,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}

CHAT_TEXT_STREAM = _sse(
    [
        (None, _chunk({"role": "assistant", "content": "", "refusal": None})),
        (None, _chunk({"content": "Hello"})),
        (None, _chunk({"content": " there"})),
        (None, _chunk({}, "stop")),
        (None, {**_chunk({}), "choices": [], "usage": CHAT_USAGE}),
        (None, "[DONE]"),
    ]
)

CHAT_TOOL_STREAM = _sse(
    [
        (None, _chunk({"role": "assistant", "content": None})),
        (
            None,
            _chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_DdmO9pD3xa9XTPNJ32zg2hcA",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": ""},
                        }
                    ]
                }
            ),
        ),
        (None, _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"location"'}}]})),
        (None, _chunk({"tool_calls": [{"index": 0, "function": {"arguments": ':"Paris"}'}}]})),
        (
            None,
            _chunk(
                {
                    "tool_calls": [
                        {
                            "index": 1,
                            "id": "call_2",
                            "type": "function",
                            "function": {"name": "lookup_case", "arguments": "{}"},
                        }
                    ]
                }
            ),
        ),
        (None, _chunk({}, "tool_calls")),
        (None, "[DONE]"),
    ]
)

CHAT_REASONING_STREAM = _sse(  # DeepSeek / vLLM style
    [
        (None, _chunk({"role": "assistant", "content": None, "reasoning_content": ""})),
        (None, _chunk({"reasoning_content": "Let me think"})),
        (None, _chunk({"content": "42"})),
        (
            None,
            {
                **_chunk({}, "stop"),
                "usage": {
                    "prompt_tokens": 20,
                    "completion_tokens": 9,
                    "prompt_cache_hit_tokens": 16,
                    "completion_tokens_details": {"reasoning_tokens": 7},
                },
            },
        ),
        (None, "[DONE]"),
    ]
)

CHAT_ERROR_STREAM = _sse(
    [
        (None, _chunk({"role": "assistant", "content": "Hel"})),
        (
            None,
            {"error": {"message": "The server had an error", "type": "server_error",
                       "param": None, "code": None}},
        ),
    ]
)

CHAT_BODY = {
    "id": "chatcmpl-123",
    "object": "chat.completion",
    "created": 1741569952,
    "model": "gpt-4.1-2025-04-14",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_abc",
                        "type": "function",
                        "function": {"name": "read_file", "arguments": '{"path":"a.py"}'},
                    }
                ],
                "refusal": None,
                "annotations": [],
            },
            "logprobs": None,
            "finish_reason": "tool_calls",
        }
    ],
    "usage": CHAT_USAGE,
    "service_tier": "default",
}

OPENAI_ERROR_BODY = {
    "error": {
        "message": "Rate limit reached for gpt-4o in organization org-SECRET on tokens per min",
        "type": "tokens",
        "param": None,
        "code": "rate_limit_exceeded",
    }
}

ANTHROPIC_STREAM = _sse(
    [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
                    "type": "message",
                    "role": "assistant",
                    "content": [],
                    "model": "claude-sonnet-4-5",
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {
                        "input_tokens": 25,
                        "cache_creation_input_tokens": 1000,
                        "cache_read_input_tokens": 20000,
                        "output_tokens": 1,
                    },
                },
            },
        ),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "thinking", "thinking": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "thinking_delta", "thinking": "Hmm."}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "signature_delta", "signature": "EqQBCgIY"}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("content_block_start", {"type": "content_block_start", "index": 1,
                                 "content_block": {"type": "text", "text": ""}}),
        ("ping", {"type": "ping"}),
        ("content_block_delta", {"type": "content_block_delta", "index": 1,
                                 "delta": {"type": "text_delta", "text": "Let me check."}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 1}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 2,
                "content_block": {"type": "tool_use", "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
                                  "name": "Bash", "input": {}},
            },
        ),
        ("content_block_delta", {"type": "content_block_delta", "index": 2,
                                 "delta": {"type": "input_json_delta", "partial_json": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 2,
                                 "delta": {"type": "input_json_delta",
                                           "partial_json": '{"command": "ls"}'}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 2}),
        (
            "message_delta",
            {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
             "usage": {"output_tokens": 89}},
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
)

ANTHROPIC_ERROR_STREAM = _sse(
    [
        (
            "message_start",
            {"type": "message_start",
             "message": {"id": "msg_1", "type": "message", "role": "assistant", "content": [],
                         "model": "claude-sonnet-4-5", "stop_reason": None,
                         "usage": {"input_tokens": 10, "output_tokens": 1}}},
        ),
        ("error", {"type": "error", "error": {"type": "overloaded_error",
                                              "message": "Overloaded"}}),
    ]
)

ANTHROPIC_BODY = {
    "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5",
    "content": [
        {"type": "text", "text": "I'll look."},
        {"type": "tool_use", "id": "toolu_1", "name": "search_statutes",
         "input": {"query": "privileged"}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 2095,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 1800,
        "output_tokens": 503,
    },
}

ANTHROPIC_ERROR_BODY = {
    "type": "error",
    "error": {"type": "rate_limit_error",
              "message": "Number of requests has exceeded your rate limit"},
}


def _resp(status: str, output: list[Any], usage: Any, **extra: Any) -> dict[str, Any]:
    return {
        "id": "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b",
        "object": "response",
        "created_at": 1741476542,
        "status": status,
        "error": None,
        "incomplete_details": None,
        "model": "gpt-5-codex",
        "output": output,
        "usage": usage,
        **extra,
    }


RESPONSES_USAGE = {
    "input_tokens": 3000,
    "input_tokens_details": {"cached_tokens": 2048},
    "output_tokens": 200,
    "output_tokens_details": {"reasoning_tokens": 128},
    "total_tokens": 3200,
}
_REASONING = {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAA"}
_CALL = {"type": "function_call", "id": "fc_1", "call_id": "call_q1", "name": "shell",
         "arguments": '{"command":["ls"]}', "status": "completed"}
_MESSAGE = {"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": "Done.", "annotations": []}]}

RESPONSES_STREAM = _sse(
    [
        ("response.created", {"type": "response.created", "sequence_number": 0,
                              "response": _resp("in_progress", [], None)}),
        ("response.in_progress", {"type": "response.in_progress", "sequence_number": 1,
                                  "response": _resp("in_progress", [], None)}),
        ("response.output_item.added", {"type": "response.output_item.added",
                                        "sequence_number": 2, "output_index": 0,
                                        "item": {**_REASONING, "encrypted_content": None}}),
        ("response.reasoning_summary_text.delta",
         {"type": "response.reasoning_summary_text.delta", "sequence_number": 3,
          "item_id": "rs_1", "output_index": 0, "summary_index": 0, "delta": "Listing"}),
        ("response.output_item.done", {"type": "response.output_item.done", "sequence_number": 4,
                                       "output_index": 0, "item": _REASONING}),
        ("response.output_item.added", {"type": "response.output_item.added",
                                        "sequence_number": 5, "output_index": 1,
                                        "item": {**_CALL, "arguments": "",
                                                 "status": "in_progress"}}),
        ("response.function_call_arguments.delta",
         {"type": "response.function_call_arguments.delta", "sequence_number": 6,
          "item_id": "fc_1", "output_index": 1, "delta": '{"command":'}),
        ("response.function_call_arguments.delta",
         {"type": "response.function_call_arguments.delta", "sequence_number": 7,
          "item_id": "fc_1", "output_index": 1, "delta": '["ls"]}'}),
        ("response.function_call_arguments.done",
         {"type": "response.function_call_arguments.done", "sequence_number": 8,
          "item_id": "fc_1", "output_index": 1, "arguments": '{"command":["ls"]}'}),
        ("response.output_item.done", {"type": "response.output_item.done", "sequence_number": 9,
                                       "output_index": 1, "item": _CALL}),
        ("response.completed", {"type": "response.completed", "sequence_number": 10,
                                "response": _resp("completed", [_REASONING, _CALL],
                                                  RESPONSES_USAGE)}),
    ]
)

RESPONSES_INCOMPLETE_STREAM = _sse(
    [
        ("response.created", {"type": "response.created",
                              "response": _resp("in_progress", [], None)}),
        ("response.output_text.delta", {"type": "response.output_text.delta",
                                        "item_id": "msg_1", "output_index": 0,
                                        "content_index": 0, "delta": "Partial"}),
        ("response.incomplete", {"type": "response.incomplete",
                                 "response": _resp("incomplete", [_MESSAGE], RESPONSES_USAGE,
                                                   incomplete_details={
                                                       "reason": "max_output_tokens"})}),
    ]
)

RESPONSES_FAILED_STREAM = _sse(
    [
        ("response.created", {"type": "response.created",
                              "response": _resp("in_progress", [], None)}),
        ("response.failed", {"type": "response.failed",
                             "response": _resp("failed", [], None,
                                               error={"code": "server_error",
                                                      "message": "secret detail"})}),
    ]
)

RESPONSES_ERROR_EVENT = _sse(
    [("error", {"type": "error", "code": "rate_limit_exceeded", "message": "slow down",
                "param": None, "sequence_number": 1})]
)

RESPONSES_BODY = _resp("completed", [_REASONING, _MESSAGE], RESPONSES_USAGE)
