"""The client family of a request, from its User-Agent (and a few telltale headers).

Only the family name ever leaves this module (`claude-code`, `codex`, `openai-python`, …),
never the header value: versions, OS strings and custom suffixes stay out of the corpus.
Rules are tried in order; the first whose pattern is found in the lower-cased User-Agent wins,
so agent-specific rules come before the SDKs those agents are built on.
"""

from __future__ import annotations

from collections.abc import Mapping

# (substring of the lower-cased User-Agent, family)
RULES: tuple[tuple[str, str], ...] = (
    ("claude-cli/", "claude-code"),
    ("claude-code", "claude-code"),
    ("codex_cli_rs", "codex"),
    ("codex_exec", "codex"),
    ("codex/", "codex"),
    ("aider", "aider"),
    ("opencode", "opencode"),
    ("goose", "goose"),
    ("cline", "cline"),
    ("roo-code", "roo-code"),
    ("kilo-code", "kilo-code"),
    ("continue", "continue"),
    ("cursor", "cursor"),
    ("openhands", "openhands"),
    ("swe-agent", "swe-agent"),
    ("litellm", "litellm"),
    ("langchain", "langchain"),
    ("llama-index", "llama-index"),
    ("openai/python", "openai-python"),
    ("openai/js", "openai-node"),
    ("anthropic/python", "anthropic-python"),
    ("anthropicvertex/python", "anthropic-python"),  # the SDK's Vertex AI client
    ("anthropicbedrock/python", "anthropic-python"),  # and its Bedrock client
    ("anthropic/js", "anthropic-node"),
    ("ai-sdk", "vercel-ai"),
    ("python-httpx", "httpx"),
    ("python-requests", "requests"),
    ("aiohttp", "aiohttp"),
    ("curl/", "curl"),
    ("node-fetch", "node"),
    ("undici", "node"),
)

# Agents that announce themselves in another header: (header, lower-cased values, family).
HEADER_RULES: tuple[tuple[str, frozenset[str], str], ...] = (
    ("x-title", frozenset({"aider"}), "aider"),  # Aider's OpenRouter attribution header
    ("http-referer", frozenset({"https://aider.chat", "https://aider.chat/"}), "aider"),
    ("originator", frozenset({"codex_cli_rs", "codex_exec", "codex_vscode"}), "codex"),
    ("x-app", frozenset({"cli", "cli-bg"}), "claude-code"),
)


# Every header this module reads.
HEADERS = frozenset(["user-agent", *(name for name, _, _ in HEADER_RULES)])


def family(headers: Mapping[str, str]) -> str:
    """Client family for request `headers` (lower-case names), or "" when unknown."""
    for name, values, fam in HEADER_RULES:
        value = headers.get(name)
        if value and value.strip().lower() in values:
            return fam
    ua = headers.get("user-agent", "").lower()
    if not ua:
        return ""
    for needle, fam in RULES:
        if needle in ua:
            return fam
    return "other"
