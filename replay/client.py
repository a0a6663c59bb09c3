"""The aiohttp streaming client: an `Endpoint` for OpenAI chat, OpenAI completions (token-id
prompts) and Anthropic messages servers.

Timing uses `time.perf_counter_ns`: `start` just before the request is written, `first` when the
first content event (text, reasoning or tool-call delta) is parsed, `end` when the stream ends.
Server errors, 429s, timeouts and dropped connections come back as `Result.error`, never raised.
vLLM-style `ignore_eos`/`min_tokens` (so the server generates exactly `max_tokens`),
`stream_options.include_usage` and `return_token_ids` are sent to OpenAI-style servers as
`extras` allows (the start-up probe, `replay.probe`, drops those the server refused); should a
server still answer 400 naming one, the client drops them all and retries that request once.
Streamed tokens are counted from chunks' `token_ids` when the server sends them (a server
without a tokenizer streams empty text), else one per content chunk; the final usage report,
when there is one, gives the output count.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import msgspec

from corpus.wire import SSEDecoder, apis
from replay.endpoint import Progress, Request, Result, resolve_api
from replay.errors import ConfigError, EndpointError
from replay.prompts import Form
from replay.replicas import Replicas

ANTHROPIC_VERSION = "2023-06-01"
_EXTRAS = (b"ignore_eos", b"min_tokens", b"stream_options", b"return_token_ids")
_ALL_EXTRAS = frozenset(("ignore_eos", "min_tokens", "stream_options", "token_ids",
                         "return_token_ids"))


def base_url(url: str) -> str:
    """`url` as an API base ending in the version segment: `http://h:8000` and
    `http://h:8000/v1/chat/completions` both become `http://h:8000/v1`."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"endpoint {url!r} is not an http(s) URL; e.g. http://host:8000/v1")
    path = parts.path.rstrip("/")
    for suffix in (*(a.path for a in apis.TABLE), "/models"):
        if path.endswith(suffix):
            path = path[: -len(suffix)]
            break
    if not path:
        path = "/v1"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def server_root(url: str) -> str:
    """Scheme and host of `url` (where vLLM and the simulated engine serve `/metrics`)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "", "", ""))


# -- stream chunks (unknown fields ignored; only what timing and usage need) ----------------


class _Details(msgspec.Struct):
    cached_tokens: int | None = None


class _Usage(msgspec.Struct):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    prompt_tokens_details: _Details | None = None


class _Delta(msgspec.Struct):
    content: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    tool_calls: list[Any] | None = None


class _Choice(msgspec.Struct):
    delta: _Delta | None = None
    text: str | None = None
    finish_reason: str | None = None
    token_ids: list[int] | None = None


class _Timings(msgspec.Struct):
    """llama.cpp's per-request figures: prompt tokens evaluated and reused from its cache."""

    prompt_n: int | None = None
    cache_n: int | None = None


class _Chunk(msgspec.Struct):
    choices: list[_Choice] = []
    usage: _Usage | None = None
    error: Any = None
    timings: _Timings | None = None


class _AUsage(msgspec.Struct):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None


class _AMessage(msgspec.Struct):
    usage: _AUsage | None = None


class _ADelta(msgspec.Struct):
    text: str | None = None
    thinking: str | None = None
    partial_json: str | None = None


class _AEvent(msgspec.Struct):
    type: str = ""
    message: _AMessage | None = None
    delta: _ADelta | None = None
    usage: _AUsage | None = None
    error: Any = None


_openai = msgspec.json.Decoder(_Chunk)
_anthropic = msgspec.json.Decoder(_AEvent)
_encode = msgspec.json.Encoder().encode


class _Stream:
    """Per-request parse state: token count, first-token time, usage, end marker."""

    __slots__ = ("cached", "done", "error", "first", "gap", "input", "last", "progress",
                 "tokens", "usage_out")

    def __init__(self, progress: Progress | None = None) -> None:
        self.progress = progress
        self.tokens = 0
        self.first = 0
        self.last = 0
        self.gap = 0
        self.usage_out = -1
        self.input = -1
        self.cached = -1
        self.done = False
        self.error = ""

    def token(self, n: int = 1) -> None:
        now = time.perf_counter_ns()
        if not self.first:
            self.first = now
            if self.progress is not None:
                self.progress.first = self.first
        elif now - self.last > self.gap:  # the longest pause between tokens (stutter)
            self.gap = now - self.last
        self.last = now
        self.tokens += n
        if self.progress is not None:
            self.progress.tokens = self.tokens

    def openai(self, data: str) -> None:
        if data == "[DONE]":
            self.done = True
            return
        try:
            chunk = _openai.decode(data)
        except msgspec.DecodeError:
            self.error = "stream"
            return
        if chunk.error is not None:
            self.error = "stream"
            return
        for choice in chunk.choices:
            d = choice.delta
            if choice.token_ids:
                self.token(len(choice.token_ids))
            elif choice.text or (
                d is not None and (d.content or d.reasoning_content or d.reasoning or d.tool_calls)
            ):
                self.token()
        u = chunk.usage
        if u is not None:
            if u.completion_tokens is not None:
                self.usage_out = u.completion_tokens
            if u.prompt_tokens is not None:
                self.input = u.prompt_tokens
            details = u.prompt_tokens_details
            if details is not None and details.cached_tokens is not None:
                self.cached = details.cached_tokens
        t = chunk.timings
        if t is not None and t.cache_n is not None and t.prompt_n is not None:
            if self.cached < 0:
                self.cached = t.cache_n
            if self.input < 0:
                self.input = t.prompt_n + t.cache_n

    def anthropic(self, data: str) -> None:
        try:
            ev = _anthropic.decode(data)
        except msgspec.DecodeError:
            self.error = "stream"
            return
        kind = ev.type
        if kind == "content_block_delta":
            d = ev.delta
            if d is not None and (d.text or d.thinking or d.partial_json):
                self.token()
        elif kind == "message_start":
            if ev.message is not None and ev.message.usage is not None:
                self._ausage(ev.message.usage)
        elif kind == "message_delta":
            if ev.usage is not None:
                self._ausage(ev.usage)
        elif kind == "message_stop":
            self.done = True
        elif kind == "error" or ev.error is not None:
            self.error = "stream"

    def _ausage(self, u: _AUsage) -> None:
        if u.output_tokens is not None:
            self.usage_out = u.output_tokens
        if u.input_tokens is not None:
            read = u.cache_read_input_tokens or 0
            self.input = u.input_tokens + read + (u.cache_creation_input_tokens or 0)
            self.cached = read


@dataclass(frozen=True, kw_only=True)
class ClientFactory:
    """Picklable settings for a `Client`; `open()` builds and opens one (an endpoint `Factory`)."""

    url: str
    api: str = "chat"
    model: str = ""
    api_key: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    affinity_header: str | None = None
    timeout: float = 600.0
    extras: bool | frozenset[str] = True
    """True/False as `Client` takes it, or the exact set to send (the start-up probe's)."""
    replicas: tuple[str, ...] = ()
    """More URLs of the same server: `open()` then spreads agents over all (`Replicas`)."""

    def client(self, url: str | None = None) -> Client:
        return Client(
            url or self.url, api=self.api, model=self.model, api_key=self.api_key,
            headers=self.headers, affinity_header=self.affinity_header, timeout=self.timeout,
            extras=self.extras,
        )

    async def open(self) -> Client | Replicas:
        if self.replicas:
            spread = Replicas([self.client(u) for u in (self.url, *self.replicas)])
            await spread.open()
            return spread
        client = self.client()
        await client.open()
        return client


class Client:
    """An `Endpoint` over aiohttp for `api` in `replay.endpoint.APIS` (or its alias). Call
    `open()` inside the event loop before `send`, and `close()` at the end."""

    def __init__(
        self,
        url: str,
        *,
        api: str = "chat",
        model: str = "",
        api_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        affinity_header: str | None = None,
        timeout: float = 600.0,
        extras: bool | frozenset[str] = True,
        trace_configs: Sequence[aiohttp.TraceConfig] = (),
    ) -> None:
        api = resolve_api(api)
        self.base = base_url(url)
        self.api = api
        self.model = model
        self.affinity_header = affinity_header
        self.timeout = timeout
        if isinstance(extras, bool):  # False: all but the output-length controls
            chosen = _ALL_EXTRAS if extras else _ALL_EXTRAS - {"ignore_eos", "min_tokens"}
        else:
            chosen = frozenset(extras)
        self.sends: frozenset[str] = frozenset() if api == apis.ANTHROPIC else chosen
        """Extension parameters this client sends (`replay.dialect.EXTRAS`)."""
        self._extras = bool(self.sends - {"token_ids"})
        self._url = self.base + apis.path(api)
        h = {"content-type": "application/json"}
        if api == apis.ANTHROPIC:
            h["anthropic-version"] = ANTHROPIC_VERSION
            if api_key:
                h["x-api-key"] = api_key
        elif api_key:
            h["authorization"] = f"Bearer {api_key}"
        h.update({k.lower(): v for k, v in (headers or {}).items()})
        self._headers = h
        self._session: aiohttp.ClientSession | None = None
        self._traces = list(trace_configs)

    @property
    def form(self) -> Form:
        return ("ids" if self.api == apis.OPENAI_COMPLETIONS and "token_ids" in self.sends
                else "text")

    async def open(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, force_close=False),
                timeout=aiohttp.ClientTimeout(total=self.timeout, sock_connect=10),
                trace_configs=self._traces or None,
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def models(self, *, needed: bool = True) -> list[str]:
        """Model ids the server lists at `/models`; raises `EndpointError` when unreachable,
        or when it answers an HTTP error and the list is `needed` (no --model given)."""
        await self.open()
        assert self._session is not None
        try:
            async with self._session.get(
                self.base + "/models",
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=15),
            ) as resp:
                if resp.status != 200:
                    if not needed:
                        return []
                    text = (await resp.content.read(200)).decode("utf-8", "replace").strip()
                    raise EndpointError(
                        f"{self.base}/models answered HTTP {resp.status}"
                        f"{': ' + ' '.join(text.split()) if text else ''}; pass --model NAME "
                        "to name the model, or check the server"
                    )
                body = await resp.read()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise EndpointError(
                f"cannot reach {self.base}: {_reason(exc)}; is the server running at that URL?"
            ) from exc
        try:
            data = msgspec.json.decode(body)
            return [str(m["id"]) for m in data.get("data", []) if "id" in m]
        except (msgspec.DecodeError, AttributeError, TypeError):
            return []

    def body(self, request: Request) -> bytes:
        """The JSON request body for `request`."""
        prompt = request.prompt
        body: dict[str, Any] = {"model": self.model, "max_tokens": request.max_tokens}
        if self.api == apis.OPENAI_COMPLETIONS:
            body["prompt"] = prompt.ids if prompt.ids is not None else prompt.text
        else:
            body["messages"] = [{"role": "user", "content": prompt.text or ""}]
        body["stream"] = True
        if self._extras:
            sends = self.sends
            if "stream_options" in sends:
                body["stream_options"] = {"include_usage": True}
            if "ignore_eos" in sends:
                body["ignore_eos"] = True
            if "min_tokens" in sends:
                body["min_tokens"] = request.max_tokens
            if "return_token_ids" in sends:
                body["return_token_ids"] = True
        return _encode(body)

    async def send(self, request: Request) -> Result:
        result = await self._send(request)
        if result.status == 400 and self._extras and any(
            name in result.detail.encode() for name in _EXTRAS
        ):
            self._extras = False  # the server rejects vLLM's extras: send plain requests
            result = await self._send(request)
        return result

    async def _send(self, request: Request) -> Result:
        if self._session is None:
            await self.open()
        assert self._session is not None
        headers = self._headers
        if self.affinity_header and request.affinity:
            headers = {**headers, self.affinity_header: request.affinity}
        data = self.body(request)
        stream = _Stream(request.progress)
        start = time.perf_counter_ns()
        try:
            async with self._session.post(self._url, data=data, headers=headers) as resp:
                if resp.status != 200:
                    detail = (await resp.content.read(2048)).decode("utf-8", "replace")
                    return Result(
                        start, 0, time.perf_counter_ns(), 0, status=resp.status,
                        error=f"http_{resp.status}", detail=detail,
                    )
                handle = stream.anthropic if self.api == apis.ANTHROPIC else stream.openai
                decoder = SSEDecoder()
                async for chunk in resp.content.iter_any():
                    for event in decoder.feed(chunk):
                        handle(event.data)
                for event in decoder.flush():
                    handle(event.data)
                status = resp.status
        except TimeoutError:
            return Result(start, stream.first, time.perf_counter_ns(), stream.tokens,
                          status=0, error="timeout")
        except (aiohttp.ClientError, OSError) as exc:
            # a connection lost after tokens arrived is a stream cut mid-way, not a server
            # that cannot be reached
            return Result(start, stream.first, time.perf_counter_ns(), stream.tokens,
                          status=0, error="cut" if stream.first else "connect",
                          detail=_reason(exc))
        end = time.perf_counter_ns()
        output = stream.usage_out if stream.usage_out >= 0 else stream.tokens
        error = stream.error or ("" if stream.done else "incomplete")
        return Result(
            start, stream.first, end, output, status=status, error=error,
            server_input=stream.input, server_cached=stream.cached, gap=stream.gap,
        )


def _reason(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"connection failed ({exc.os_error.strerror or exc.os_error})"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__
