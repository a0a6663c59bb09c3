"""Explicit conversation identity: the session and sub-agent ids clients and gateways send.

Every rule is listed here, in priority order; to support another client, add a row. Values
are digested on the spot (`Identity` holds 16-byte digests, never the ids themselves) and are
only used in memory to group calls; nothing of them reaches the corpus.

What is detected (as observed on the wire; see the module's tests for the shapes):

- Sessions, headers: Claude Code `x-claude-code-session-id`; Codex `session_id` /
  `session-id` (and the older `conversation_id` / `conversation-id`); OpenCode and generic
  gateways `x-session-id`, `x-opencode-session`; LiteLLM `x-litellm-session-id`; Helicone
  `helicone-session-id`; Langfuse `langfuse-session-id` / `x-langfuse-session-id`; Portkey
  `x-portkey-trace-id`.
- Sessions, body: Anthropic `metadata.user_id` when it carries a session part (Claude Code's
  `user_<hash>_account_<uuid>_session_<uuid>`, or a JSON string with `session_id`);
  `metadata.session_id`; LiteLLM `litellm_session_id` / `metadata.litellm_session_id`.
- Chains: OpenAI Responses `previous_response_id` joins the conversation whose response it names.
- Sub-agents: Claude Code `x-claude-code-agent-id` (set on sub-agent calls only, which keep
  the parent's session header) and `x-claude-code-parent-agent-id` (a nested sub-agent's
  parent); Codex `thread-id` when it differs from the session id (Codex stamps
  thread-id = session-id on the root thread) and `x-openai-subagent` (review, compact, …);
  OpenCode and gateways `x-parent-session-id` (the sub-agent has its own `x-session-id`).

Deliberately not used: `prompt_cache_key` and OpenAI's `user`/`safety_identifier` (apps
often share one value across many conversations), request ids and trace ids that change per
call.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import msgspec


def tag(value: str) -> bytes:
    """In-memory key for an identifier (unkeyed digest; never written anywhere)."""
    return hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=16).digest()


@dataclass(frozen=True, slots=True)
class Identity:
    """What a request says about its conversation; all fields are digests or None."""

    session: bytes | None = None  # explicit session (shared by an agent and its sub-agents)
    agent: bytes | None = None  # sub-agent instance within the session (None: the main agent)
    parent_agent: bytes | None = None  # the sub-agent's parent agent within the session
    parent_session: bytes | None = None  # parent session when sub-agents get their own session
    previous_response: bytes | None = None  # OpenAI Responses previous_response_id
    source: str = ""  # the rule that gave `session` (for tests and diagnostics)


_CC_USER_ID = re.compile(r"_session_([0-9A-Za-z-]{8,})$")


def _claude_code_user_id(value: Any) -> str | None:
    """The session part of Anthropic `metadata.user_id` as Claude Code sends it."""
    if not isinstance(value, str):
        return None
    if value.startswith("{"):
        try:
            obj = msgspec.json.decode(value)
        except msgspec.DecodeError:
            return None
        sid = obj.get("session_id") if isinstance(obj, dict) else None
        return sid if isinstance(sid, str) and sid else None
    match = _CC_USER_ID.search(value)
    return match.group(1) if match else None


def _plain(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


# Session headers, in priority order: (header name, who sends it).
SESSION_HEADERS: tuple[tuple[str, str], ...] = (
    ("x-claude-code-session-id", "claude-code"),
    ("session_id", "codex"),
    ("session-id", "codex"),
    ("conversation_id", "codex"),
    ("conversation-id", "codex"),
    ("x-session-id", "gateway"),
    ("x-opencode-session", "opencode"),
    ("x-litellm-session-id", "litellm"),
    ("helicone-session-id", "helicone"),
    ("langfuse-session-id", "langfuse"),
    ("x-langfuse-session-id", "langfuse"),
    ("x-portkey-trace-id", "portkey"),
)

# Session fields in the request body: (dotted path, extractor, who sends it).
SESSION_FIELDS: tuple[tuple[str, Callable[[Any], str | None], str], ...] = (
    ("metadata.user_id", _claude_code_user_id, "claude-code"),
    ("metadata.session_id", _plain, "body"),
    ("litellm_session_id", _plain, "litellm"),
    ("metadata.litellm_session_id", _plain, "litellm"),
)

# Sub-agent headers: (header name, Identity field it sets).
AGENT_HEADERS: tuple[tuple[str, str], ...] = (
    ("x-claude-code-agent-id", "agent"),
    ("x-claude-code-parent-agent-id", "parent_agent"),
    ("x-parent-session-id", "parent_session"),
)
CODEX_THREAD_HEADERS = ("thread-id", "thread_id")
CODEX_SUBAGENT_HEADER = "x-openai-subagent"

# Every header this module reads (the proxy keeps no other header value, even in memory).
HEADERS = frozenset(
    [name for name, _ in SESSION_HEADERS]
    + [name for name, _ in AGENT_HEADERS]
    + [*CODEX_THREAD_HEADERS, CODEX_SUBAGENT_HEADER]
)


def _field(fields: Mapping[str, Any], path: str) -> Any:
    value: Any = fields
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


_NONE = Identity()


def from_headers(headers: Mapping[str, str]) -> Identity:
    """What the headers alone say (lower-case names); `with_body` adds the body's part."""
    if HEADERS.isdisjoint(headers):  # most clients send none of them
        return _NONE
    session: str | None = None
    source = ""
    for name, who in SESSION_HEADERS:
        value = headers.get(name, "").strip()
        if value:
            session, source = value, who
            break
    found: dict[str, bytes] = {}
    for name, slot in AGENT_HEADERS:
        value = headers.get(name, "").strip()
        if value:
            found[slot] = tag(value)
    thread = next((headers[h].strip() for h in CODEX_THREAD_HEADERS if headers.get(h)), "")
    if thread:
        if session is None:
            session, source = thread, "codex"
        elif thread != session and "agent" not in found:
            found["agent"] = tag("thread:" + thread)
    sub = headers.get(CODEX_SUBAGENT_HEADER, "").strip()
    if sub and "agent" not in found:
        found["agent"] = tag("subagent:" + sub)
    return Identity(
        session=tag(session) if session else None,
        agent=found.get("agent"),
        parent_agent=found.get("parent_agent"),
        parent_session=found.get("parent_session"),
        source=source,
    )


def with_body(ident: Identity, fields: Mapping[str, Any]) -> Identity:
    """`ident` completed from the body's top-level `fields` (headers win)."""
    session, source = ident.session, ident.source
    if session is None:
        for path, get, who in SESSION_FIELDS:
            value = get(_field(fields, path))
            if value:
                session, source = tag(value), who
                break
    prev = fields.get("previous_response_id")
    previous = tag(prev) if isinstance(prev, str) and prev else None
    if session is ident.session and previous is None:
        return ident
    return replace(ident, session=session, source=source, previous_response=previous)


def extract(headers: Mapping[str, str], fields: Mapping[str, Any]) -> Identity:
    """The identity of a request: `headers` with lower-case names, `fields` the body's
    top-level fields."""
    return with_body(from_headers(headers), fields)
