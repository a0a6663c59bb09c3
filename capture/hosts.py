"""LLM API hosts whose TLS the forward proxy intercepts.

In forward mode only connections to these hosts (plus `--intercept` additions) are decrypted
with mitmproxy's CA; every other CONNECT tunnel is passed through as raw bytes, so the rest of
an agent's traffic (package registries, git, telemetry, pinned certificates) is untouched.
Plain-HTTP requests are always inspected, and recorded when their path is a model call.
"""

from __future__ import annotations

import re

# Exact host names, `*.suffix` patterns for per-tenant hosts, and `*` inside a label for
# per-region ones.
LLM_HOSTS: tuple[str, ...] = (
    "api.openai.com",
    "chatgpt.com",  # Codex with a ChatGPT login: /backend-api/codex/responses
    "api.anthropic.com",
    "*.openai.azure.com",
    "*.services.ai.azure.com",
    "openrouter.ai",
    "api.deepseek.com",
    "api.mistral.ai",
    "api.groq.com",
    "api.together.xyz",
    "api.fireworks.ai",
    "api.x.ai",
    "api.moonshot.ai",
    "api.z.ai",
    "generativelanguage.googleapis.com",  # Gemini's OpenAI-compatible endpoint
    "aiplatform.googleapis.com",  # Vertex AI (Claude: …/publishers/anthropic/models/…)
    "*-aiplatform.googleapis.com",  # its regional hosts, e.g. us-east5-aiplatform
    "bedrock-runtime.*.amazonaws.com",  # Amazon Bedrock (Claude: /model/<id>/invoke…)
    "bedrock-runtime-fips.*.amazonaws.com",

    "api.cerebras.ai",
    "inference.baseten.co",
    "api.perplexity.ai",
)


def pattern(host: str) -> str:
    """A mitmproxy `allow_hosts` regex for `host` (any port): a leading `*.` matches one label
    or more, any other `*` part of one label."""
    if host.startswith("*."):
        return rf"^(?:[^.:]+\.)+{re.escape(host[2:])}:\d+$"
    return "^" + "[^.:]+".join(re.escape(part) for part in host.split("*")) + r":\d+$"


def allow_hosts(extra: tuple[str, ...] | list[str] = ()) -> list[str]:
    """`allow_hosts` patterns for the known hosts plus `extra`."""
    return [pattern(h) for h in (*LLM_HOSTS, *extra)]
