"""How to point common agents at the capture proxy (text for the CLI to print).

Pure: listeners in, lines out (rich markup). Reverse mode: a base-URL setting per agent
family, chosen from the upstream's host; forward mode: proxy variables plus trusting
mitmproxy's CA.
"""

from __future__ import annotations

import os
from pathlib import Path

from capture.listeners import Listener


def _url(host: str, port: int) -> str:
    where = f"[{host}]" if ":" in host else host
    if host in ("0.0.0.0", "::"):
        where = "127.0.0.1"
    return f"http://{where}:{port}"


def _kind(upstream: str) -> str:
    host = upstream.split("://", 1)[-1].lower()
    if "anthropic" in host:
        return "anthropic"
    if "openai" in host or "chatgpt" in host:
        return "openai"
    return "any"


def reverse(listener: Listener, port: int) -> list[str]:
    """Lines for one reverse listener bound to `port`."""
    base = _url(listener.host, port)
    assert listener.upstream is not None
    kind = _kind(listener.upstream)
    # OpenAI-style clients append /chat/completions or /responses to a base URL ending in /v1;
    # when the upstream URL already carried /v1 the listener adds it itself.
    v1 = "" if listener.prefix.endswith("/v1") else "/v1"
    lines = [f"[bold]{base}[/] → {listener.upstream}{listener.prefix}"]
    if kind in ("anthropic", "any"):
        lines += [
            f"  Claude Code          export ANTHROPIC_BASE_URL={base}",
            f'  Anthropic SDKs       Anthropic(base_url="{base}")',
            f"  LiteLLM / Aider      export ANTHROPIC_API_BASE={base}",
        ]
    if kind in ("openai", "any"):
        lines += [
            # Codex (0.1xx) ignores OPENAI_BASE_URL; a provider of its own points it here. Its
            # Responses calls are recorded over HTTP + SSE and over its WebSocket mode alike.
            "  Codex                codex -c model_provider=capture -c 'model_providers.capture="
            f'{{name="capture", base_url="{base}{v1}", env_key="OPENAI_API_KEY", '
            "wire_api=\"responses\"}'",
            "                       (or the same table under \\[model_providers.capture] in "
            "~/.codex/config.toml, or -c openai_base_url=\"" + f'{base}{v1}"' + ")",
            f'  OpenAI SDKs          OpenAI(base_url="{base}{v1}")  or OPENAI_BASE_URL',
            f"  LiteLLM / Aider      export OPENAI_API_BASE={base}{v1}"
            f"   (aider --openai-api-base {base}{v1})",
        ]
    return lines


def forward(listener: Listener, port: int, confdir: str | os.PathLike[str]) -> list[str]:
    """Lines for the forward proxy bound to `port`."""
    proxy = _url(listener.host, port)
    ca = Path(os.path.expanduser(os.fspath(confdir))) / "mitmproxy-ca-cert.pem"
    return [
        f"[bold]forward proxy {proxy}[/] (only LLM API hosts are decrypted; see capture.hosts)",
        f"  every agent          export HTTPS_PROXY={proxy} HTTP_PROXY={proxy}",
        "  and trust mitmproxy's CA:",
        f"  Claude Code, Node    export NODE_EXTRA_CA_CERTS={ca}",
        f"  Codex                export CODEX_CA_CERTIFICATE={ca}",
        f"  Python SDKs, Aider   export SSL_CERT_FILE={ca} REQUESTS_CA_BUNDLE={ca}",
    ]
