"""What replay asks a server once, before the first level: its dialect, which extension
parameters it refuses, how many tokens its chat template adds, its KV-cache block size, whether
it publishes load figures, and whether it can empty its prefix cache.

Every finding lands in `results.Server`, so the output says what was measured and corrected.
A few tiny requests (max_tokens 2) are sent; nothing here is part of any level's figures.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import aiohttp
import msgspec

from corpus.wire import apis
from replay import dialect as dialects
from replay.client import ANTHROPIC_VERSION, base_url, server_root
from replay.endpoint import resolve_api
from replay.errors import ConfigError, EndpointError
from replay.results import Server
from replay.scrapers import info, samples

PROBE_WORDS = " the model is ready and the test can start now"
"""Probe text: single-token words under cl100k, so the corpus tokenizer's count is exact."""
_NEEDED = {
    apis.OPENAI_CHAT: frozenset(("ignore_eos", "min_tokens", "stream_options",
                                 "return_token_ids")),
    apis.OPENAI_COMPLETIONS: frozenset(dialects.EXTRAS),
    apis.ANTHROPIC: frozenset(("ignore_eos", "min_tokens")),  # usage always comes; none sent
}
"""The extensions each wire API relies on; one not sent is a guarantee lost."""


@dataclass(frozen=True)
class Target:
    """Where and how to probe: the API base URL, the wire API (a name or alias from
    `corpus.wire.apis`), model, headers and the ids of `PROBE_WORDS` under the corpus's
    tokenizer."""

    url: str
    api: str
    model: str
    headers: dict[str, str]
    ids: list[int]


async def probe(
    target: Target,
    *,
    dialect: str = "auto",
    wanted: frozenset[str] = frozenset(dialects.EXTRAS),
    reset: bool = False,
) -> Server:
    """Probe the server at `target`; raises `EndpointError` when it cannot answer a plain
    request, `ConfigError` when `reset` is asked of a server that cannot empty its cache."""
    target = dataclasses.replace(target, api=resolve_api(target.api))
    base = base_url(target.url)
    root = server_root(base)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        metric_text, server_header = await _get(session, root + "/metrics")
        values = samples(metric_text) if metric_text else {}
        root_text = ""
        if not values:
            root_text, _ = await _get(session, root + "/")
        found = dialects.detect(base, set(values), server_header=server_header,
                                root_text=root_text, api=target.api)
        d = found if dialect == "auto" else dialects.get(dialect)
        out = Server(dialect=d.name, detected=dialect == "auto")
        out.block_size = dialects.block_size(info(metric_text)) if metric_text else None
        out.metrics = any(n in values for names in d.metrics.values() for n in names)
        status, detail, _ = await _request(session, base, target, set())
        if status != 200 and target.api == apis.OPENAI_COMPLETIONS and "token_ids" in wanted:
            # a server without a tokenizer takes token ids only
            status, detail, _ = await _request(session, base, target, {"token_ids"})
        if status != 200:
            raise EndpointError(
                f"{base}{apis.path(target.api)}: a plain one-turn request failed with HTTP "
                f"{status}: {detail[:300]}"
            )
        needed = set(wanted) & _NEEDED[target.api]
        # the client sends no extensions with the Messages API (servers ignore them there)
        candidates = needed & d.extras if target.api != apis.ANTHROPIC else set()
        out.refused = sorted(await _refused(session, base, target, candidates))
        out.sends = sorted(candidates - set(out.refused))
        out.lost = dialects.lost(needed - set(out.sends))
        await _template(session, root, base, target, d, out)
        if reset:
            out.reset = await _reset(session, root, d)
    return out


async def reset_cache(session: aiohttp.ClientSession, root: str, path: str) -> None:
    """POST `root + path` (a cold prefix cache); raises `EndpointError` unless it answers 2xx."""
    try:
        async with session.post(root + path, timeout=aiohttp.ClientTimeout(total=60)) as resp:
            if resp.status // 100 != 2:
                body = (await resp.content.read(300)).decode("utf-8", "replace")
                raise EndpointError(f"{root}{path}: HTTP {resp.status} {body}".strip())
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise EndpointError(f"{root}{path}: {exc or type(exc).__name__}") from exc


async def _reset(session: aiohttp.ClientSession, root: str, d: dialects.Dialect) -> str:
    if d.reset is None:
        raise ConfigError(
            f"--reset-cache: a {d.name} server has no cache-reset endpoint replay knows; "
            "drop --reset-cache (or name the server's family with --dialect)"
        )
    try:
        await reset_cache(session, root, d.reset)
    except EndpointError as exc:
        hint = f" ({d.note})" if d.note else ""
        raise ConfigError(f"--reset-cache: {exc}{hint}") from None
    return d.reset


async def _get(session: aiohttp.ClientSession, url: str) -> tuple[str, str]:
    """(body, Server header) of a GET, ("", "") when it fails or is not 200."""
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=10)) as resp:
            if resp.status != 200:
                return "", resp.headers.get("server", "")
            return await resp.text(errors="replace"), resp.headers.get("server", "")
    except (aiohttp.ClientError, OSError, TimeoutError, UnicodeDecodeError):
        return "", ""


def _body(target: Target, extras: set[str], stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": target.model, "max_tokens": 2, "stream": stream}
    if target.api == apis.OPENAI_COMPLETIONS:
        body["prompt"] = target.ids if "token_ids" in extras else PROBE_WORDS
    else:
        body["messages"] = [{"role": "user", "content": PROBE_WORDS}]
    if "stream_options" in extras:
        body["stream_options"] = {"include_usage": True}
    if "ignore_eos" in extras:
        body["ignore_eos"] = True
    if "min_tokens" in extras:
        body["min_tokens"] = 2
    if "return_token_ids" in extras:
        body["return_token_ids"] = True
    return body


async def _request(
    session: aiohttp.ClientSession, base: str, target: Target, extras: set[str]
) -> tuple[int, str, dict[str, Any]]:
    """(status, error detail, decoded body) of one probe request; streamed when it carries
    `stream_options` (servers refuse it otherwise), else a plain JSON answer."""
    stream = "stream_options" in extras
    headers = {"content-type": "application/json", **target.headers}
    if target.api == apis.ANTHROPIC:
        headers.setdefault("anthropic-version", ANTHROPIC_VERSION)
    data = msgspec.json.encode(_body(target, extras, stream))
    try:
        async with session.post(base + apis.path(target.api), data=data, headers=headers) as resp:
            status = resp.status
            try:
                raw = await resp.read()
            except aiohttp.ClientPayloadError as exc:
                # the server took the request and cut its answer: not a refusal, and no reason
                # to stop here (the levels will count such failures)
                return status, f"response cut short: {exc}", {}
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise EndpointError(
            f"cannot reach {base}: {exc or type(exc).__name__}; is the server running there?"
        ) from exc
    text = raw.decode("utf-8", "replace")
    if status != 200 or stream:
        return status, text, {}
    try:
        decoded = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return status, text, {}
    return status, "", decoded if isinstance(decoded, dict) else {}


async def _refused(
    session: aiohttp.ClientSession, base: str, target: Target, candidates: set[str]
) -> set[str]:
    """The candidates the server answers 400 to: all at once first, then one by one."""
    if not candidates:
        return set()
    status, _, _ = await _request(session, base, target, candidates)
    if status == 200:
        return set()
    out: set[str] = set()
    for name in sorted(candidates):
        status, _, _ = await _request(session, base, target, {name})
        if status != 200:
            out.add(name)
    return out


async def _template(
    session: aiohttp.ClientSession, root: str, base: str, target: Target,
    d: dialects.Dialect, out: Server,
) -> None:
    """Tokens the server adds around a one-message text request: from its /tokenize (vLLM),
    else from a plain request's usage; also how its tokenizer compares with the corpus's."""
    local = len(target.ids)
    if d.tokenize is not None:
        plain = await _count(session, root + d.tokenize,
                             {"model": target.model, "prompt": PROBE_WORDS,
                              "add_special_tokens": False})
        chat = None
        if target.api != apis.OPENAI_COMPLETIONS:
            chat = await _count(session, root + d.tokenize, {
                "model": target.model, "add_generation_prompt": True,
                "messages": [{"role": "user", "content": PROBE_WORDS}]})
        if plain is not None:
            out.tokenizer_ratio = plain / local
            if target.api == apis.OPENAI_COMPLETIONS:
                out.template, out.template_source = 0, "tokenize"
            elif chat is not None:
                out.template, out.template_source = chat - plain, "tokenize"
            return
    if target.api == apis.OPENAI_COMPLETIONS and "token_ids" in out.sends:
        out.template, out.template_source = 0, "usage"
        return
    _, _, answer = await _request(session, base, target, set())
    usage = answer.get("usage") if isinstance(answer, dict) else None
    if isinstance(usage, dict):
        total = usage.get("prompt_tokens", usage.get("input_tokens"))
        if target.api == apis.ANTHROPIC and isinstance(total, int):
            total += int(usage.get("cache_read_input_tokens") or 0)
            total += int(usage.get("cache_creation_input_tokens") or 0)
        if isinstance(total, int) and total >= local:
            out.template, out.template_source = total - local, "usage"


async def _count(session: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> int | None:
    try:
        async with session.post(url, json=body, timeout=aiohttp.ClientTimeout(total=30)) as resp:
            if resp.status != 200:
                return None
            data = await resp.json(content_type=None)
    except (aiohttp.ClientError, OSError, TimeoutError, ValueError):
        return None
    count = data.get("count") if isinstance(data, dict) else None
    return count if isinstance(count, int) else None


def describe(
    server: Server, *, corpus_block: int, marker: int, api: str = apis.OPENAI_CHAT
) -> list[str]:
    """Notes for the output: what the probe found and what replay did about it."""
    notes: list[str] = []
    head = f"server: {server.dialect}" + (" (detected)" if server.detected else " (--dialect)")
    if server.sends:
        head += f"; sends {', '.join(server.sends)}"
    notes.append(head)
    for line in server.lost:
        notes.append(f"guarantee lost: {line}")
    if resolve_api(api) == apis.OPENAI_COMPLETIONS:
        if server.template:
            notes.append(f"the server adds {server.template} tokens to a completions prompt")
    elif server.template is not None and server.template_source:
        if server.template != marker:
            notes.append(
                f"chat template adds {server.template} tokens a request (measured via "
                f"{server.template_source}; the corpus counts {marker}): text prompts "
                "shortened to match, so server prompt tokens equal the recorded input"
            )
    elif server.dialect != "anthropic":
        notes.append(
            f"chat template overhead not measured (no /tokenize, no usage): {marker} tokens "
            "assumed; server prompt tokens may differ from the recorded input by the difference"
        )
    r = server.tokenizer_ratio
    if r is not None and abs(r - 1) > 0.005:
        notes.append(
            f"the server's tokenizer counts {r:.3f}× the corpus tokenizer's tokens for the same "
            "text: text prompts are off by about that factor (token-id prompts are exact)"
        )
    if server.block_size is not None and server.block_size != corpus_block:
        notes.append(
            f"server KV blocks are {server.block_size} tokens (corpus: {corpus_block}): the "
            f"cache ideal is computed at {server.block_size}-token blocks"
        )
    if not server.metrics and server.dialect not in ("openai", "anthropic"):
        notes.append("the server publishes no load metrics replay reads: no server figures "
                     "per level")
    if server.reset:
        notes.append(f"prefix cache emptied before each level ({server.reset})")
    if len(server.endpoints) > 1:
        notes.append(f"{len(server.endpoints)} replicas, agents spread sticky per agent; "
                     "probed the first only (replicas assumed alike)")
    return notes
