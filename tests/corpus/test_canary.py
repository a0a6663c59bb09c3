"""Canaries: secrets placed everywhere in real-shaped requests never reach the corpus bytes."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import zstandard

from corpus import Anonymizer, Header, Reader, Turn, Writer, sidecar

PRIVATE_TOOL = "search_case_law"  # not on KNOWN_TOOLS: must only appear as a keyed id


class Canaries:
    def __init__(self) -> None:
        self.placed: dict[str, str] = {}

    def __call__(self, where: str) -> str:
        secret = f"{where[:3]}{uuid.uuid4().hex}"
        self.placed[secret] = where
        return secret


def openai_chat(c: Canaries) -> tuple[dict, list[str]]:
    tool = f"tool_{c('openai tool name')}"
    body = {
        "model": "gpt-4o",
        "user": c("openai user field"),
        "metadata": {"customer": c("openai metadata")},
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": tool,
                    "description": c("openai tool description"),
                    "parameters": {"type": "object", "properties": {c("openai schema key"): {}}},
                },
            },
            {"type": "function", "function": {"name": PRIVATE_TOOL, "parameters": {}}},
        ],
        "messages": [
            {"role": "system", "content": f"You work for {c('openai system prompt')}."},
            {"role": "user", "content": [{"type": "text", "text": c("openai user message")}]},
            {
                "role": "assistant",
                "content": c("openai assistant message"),
                "tool_calls": [
                    {
                        "id": c("openai tool call id"),
                        "type": "function",
                        "function": {"name": tool, "arguments": f'{{"q": "{c("openai args")}"}}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "x", "content": c("openai tool result")},
        ],
    }
    return body, [tool, PRIVATE_TOOL, "Bash"]


def anthropic_messages(c: Canaries) -> tuple[dict, list[str]]:
    tool = f"tool_{c('anthropic tool name')}"
    body = {
        "model": "claude-sonnet-4-5",
        "metadata": {"user_id": f"user_{c('anthropic user id')}_session_{c('anthropic session')}"},
        "system": [
            {
                "type": "text",
                "text": f"x-anthropic-billing-header: cc_version=2.0.1; cch={c('billing nonce')};",
            },
            {"type": "text", "text": c("anthropic system prompt"), "cache_control": {}},
        ],
        "tools": [
            {
                "name": tool,
                "description": c("anthropic tool description"),
                "input_schema": {"type": "object"},
            }
        ],
        "messages": [
            {"role": "user", "content": c("anthropic user message")},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": c("anthropic thinking"), "signature": "s"},
                    {
                        "type": "tool_use",
                        "id": c("anthropic tool use id"),
                        "name": tool,
                        "input": {"path": c("anthropic tool input")},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t",
                        "content": [{"type": "text", "text": c("anthropic tool result")}],
                    }
                ],
            },
        ],
    }
    return body, [tool, "Read"]


def openai_responses(c: Canaries) -> tuple[dict, list[str]]:
    tool = f"tool_{c('responses tool name')}"
    body = {
        "model": "gpt-5-codex",
        "instructions": c("responses instructions"),
        "prompt_cache_key": c("responses cache key"),
        "tools": [{"type": "function", "name": tool, "description": c("responses tool desc")}],
        "input": [
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": c("responses user text")}],
            },
            {
                "type": "function_call",
                "call_id": c("responses call id"),
                "name": tool,
                "arguments": c("responses arguments"),
            },
            {"type": "function_call_output", "call_id": "c", "output": c("responses output")},
            {
                "type": "reasoning",
                "summary": [{"type": "summary_text", "text": c("responses reasoning")}],
                "encrypted_content": c("responses encrypted reasoning"),
            },
        ],
    }
    return body, [tool, "apply_patch"]


def _record(path: Path, c: Canaries) -> None:
    """What capture does with each request: anonymize, then write numbers and pseudonyms."""
    header = Header(domain="legal", notes="captured for the canary test")
    with Writer(path, header) as w:
        anon = Anonymizer(w.keys, block_size=16)
        for api, make in (
            ("openai-chat", openai_chat),
            ("anthropic-messages", anthropic_messages),
            ("openai-responses", openai_responses),
        ):
            for _ in range(2):  # two sessions per API: the second shares tools and system
                body, called = make(c)
                sid = w.open_session(
                    start=w.relative(1_700_000_000.0),
                    model=body["model"],
                    api=api,
                    agent="claude-code",
                )
                prompt = anon.request(api, body)
                output = anon.count(c(f"{api} completion text"))
                w.add_turn(
                    sid,
                    Turn(
                        t=0.0,
                        input=prompt.tokens,
                        output=output,
                        after="start",
                        tool_calls=tuple(anon.tool(name) for name in called),
                        stop="tool_use",
                        status=200,
                    ),
                    prompt.blocks,
                )
                w.close_session(sid)


def _needles(secret: str) -> list[bytes]:
    variants = {secret, secret.lower(), secret.upper(), secret[-12:]}
    out = [v.encode() for v in variants]
    out += [v.encode("utf-16-le") for v in variants]
    return out


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Canaries]:
    path = tmp_path_factory.mktemp("canary") / "legal.zst"
    canaries = Canaries()
    _record(path, canaries)
    return path, canaries


def test_no_secret_reaches_the_corpus(recorded: tuple[Path, Canaries]) -> None:
    path, canaries = recorded
    raw = path.read_bytes()
    with zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True) as r:
        plain = r.read()
    assert b"agentload-corpus" in plain  # really decompressed
    assert len(canaries.placed) > 40
    for haystack in (plain, plain.lower(), raw):
        for secret, where in canaries.placed.items():
            for needle in _needles(secret):
                assert needle.lower() not in haystack.lower(), f"{where} leaked"


def test_no_secret_reaches_the_sidecar(recorded: tuple[Path, Canaries]) -> None:
    path, canaries = recorded
    keys = sidecar(path).read_bytes()
    for secret, where in canaries.placed.items():
        for needle in _needles(secret):
            assert needle not in keys, f"{where} leaked into the sidecar"


def test_private_tool_names_become_keyed_ids(recorded: tuple[Path, Canaries]) -> None:
    path, _ = recorded
    raw = path.read_bytes()
    with zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True) as r:
        plain = r.read()
    assert PRIVATE_TOOL.encode() not in plain
    assert PRIVATE_TOOL.encode("utf-16-le") not in plain
    calls = {name for s in Reader(path).sessions() for t in s.turns for name in t.tool_calls}
    assert {"Bash", "Read", "apply_patch"} <= calls  # well-known names stay readable
    private = calls - {"Bash", "Read", "apply_patch"}
    assert private
    assert all(name.startswith("tool-") and len(name) == 13 for name in private)


def test_shared_tools_and_system_prompts_are_still_visible_as_sharing(
    recorded: tuple[Path, Canaries],
) -> None:
    """Anonymous but useful: the two sessions per API share nothing secret, yet numbers stay
    consistent (each distinct request has its own blocks; counts are plausible)."""
    path, _ = recorded
    sessions = list(Reader(path).sessions())
    assert len(sessions) == 6
    for s in sessions:
        (turn,) = s.turns
        assert turn.input > 50
        assert len(s.prefixes()[0]) == -(-turn.input // 16)
