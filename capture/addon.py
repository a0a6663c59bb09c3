"""The mitmproxy addon: hook vocabulary only. Model calls are streamed through with a callable
that timestamps and keeps each chunk and returns it unchanged; everything else is streamed
through untouched. Every hook body is guarded: a failure is counted by the recorder and the
flow goes on as if the addon were absent.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from mitmproxy import ctx, http
from mitmproxy.addonmanager import Loader

from capture import agents, identity, wire
from capture.exchange import Exchange
from capture.recorder import Recorder
from capture.socket import Socket

_KEY = "agentload.capture"
_SOCKET = "agentload.capture.socket"
# Request headers the recorder reads (session ids, client family); no other header value,
# API keys included, is kept even in memory.
KEEP = identity.HEADERS | agents.HEADERS


class Capture:
    """Records LLM API calls passing through the proxy into a `Recorder`.

    `prefixes` maps a listener's mode spec (`reverse:https://gw.example.com@127.0.0.1:8081`) to
    the path prefix its upstream URL had (`/openai`), which mitmproxy can't express in a mode
    spec: requests on that listener get it prepended.
    """

    def __init__(self, recorder: Recorder, *, prefixes: dict[str, str] | None = None) -> None:
        self.recorder = recorder
        self.prefixes = prefixes or {}
        self.enabled = True
        self.live: dict[str, Exchange] = {}
        self.sockets: dict[str, Socket] = {}
        self.on_running: Callable[[], None] | None = None

    def load(self, loader: Loader) -> None:
        loader.add_option(
            "capture_enabled",
            bool,
            True,
            "Record LLM API calls (model calls recognized by path) into the corpus. When off, "
            "the proxy still passes every request through unchanged.",
        )

    def configure(self, updated: set[str]) -> None:
        if "capture_enabled" in updated:
            self.enabled = bool(ctx.options.capture_enabled)

    def running(self) -> None:
        if self.on_running is not None:
            self.on_running()

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        req = flow.request
        try:
            prefix = self.prefixes.get(flow.client_conn.proxy_mode.full_spec, "")
            if prefix and not req.path.startswith(prefix + "/"):
                req.path = prefix + req.path
            api = wire.api_for(req.method, req.path) if self.enabled else None
            if api is None:
                req.stream = True  # not a model call: pass through untouched
                return
            ex = Exchange(
                api=api,
                headers=_kept(req.headers),
                unix=time.time(),
                t_start=time.perf_counter(),
                request_encoding=req.headers.get("content-encoding"),
                model=wire.model_for(req.path),
            )
            flow.metadata[_KEY] = ex
            self.live[flow.id] = ex
            req.stream = self._guard(ex.request_chunk, flow)
        except Exception as exc:  # noqa: BLE001 - never let recording touch the traffic
            self._failed(flow, "requestheaders", exc)
            req.stream = True

    def request(self, flow: http.HTTPFlow) -> None:
        ex = flow.metadata.get(_KEY)
        if ex is None:
            return
        try:
            if ex.t_sent is None:  # body arrived with the headers: not streamed
                ex.t_sent = time.perf_counter()
                if flow.request.raw_content:
                    ex.request = [flow.request.raw_content]
        except Exception as exc:  # noqa: BLE001
            self._failed(flow, "request", exc)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        resp = flow.response
        assert resp is not None
        ex = flow.metadata.get(_KEY)
        if ex is None:
            resp.stream = True
            return
        try:
            ex.t_headers = time.perf_counter()
            ex.status = resp.status_code
            ex.content_type = resp.headers.get("content-type", "")
            ex.response_encoding = resp.headers.get("content-encoding")
            resp.stream = self._guard(ex.response_chunk, flow)
        except Exception as exc:  # noqa: BLE001
            self._failed(flow, "responseheaders", exc)
            resp.stream = True

    def response(self, flow: http.HTTPFlow) -> None:
        ex = flow.metadata.pop(_KEY, None)
        if ex is None or self.live.pop(flow.id, None) is None:  # None: `done` recorded it
            return
        try:
            if ex.t_end is None:  # a response without a streamed body
                ex.t_end = time.perf_counter()
                if flow.response is not None and flow.response.raw_content:
                    ex.chunks = [(ex.t_end, flow.response.raw_content)]
            self.recorder.submit(ex)
        except Exception as exc:  # noqa: BLE001
            self.recorder.failure("response", exc)

    def error(self, flow: http.HTTPFlow) -> None:
        ex = flow.metadata.pop(_KEY, None)
        # not live: already recorded as aborted by `done` at shutdown, whose teardown of the
        # connections then reports the same flow again as an error
        if ex is None or self.live.pop(flow.id, None) is None:
            return
        try:
            message = flow.error.msg.lower() if flow.error is not None else ""
            ex.error = "aborted" if "client" in message else "upstream"
            if ex.t_end is None:
                ex.t_end = time.perf_counter()
            self.recorder.submit(ex)
        except Exception as exc:  # noqa: BLE001
            self.recorder.failure("error", exc)

    # -- WebSocket mode (Responses over a WebSocket: Codex, `responses.connect()`) ---------

    def websocket_start(self, flow: http.HTTPFlow) -> None:
        try:
            api = wire.api_for("POST", flow.request.path) if self.enabled else None
            if api != wire.openai_responses.API:
                return
            sock = Socket(api, _kept(flow.request.headers))
            flow.metadata[_SOCKET] = sock
            self.sockets[flow.id] = sock
        except Exception as exc:  # noqa: BLE001
            self.recorder.failure("websocket_start", exc)

    def websocket_message(self, flow: http.HTTPFlow) -> None:
        sock = flow.metadata.get(_SOCKET)
        if sock is None or flow.websocket is None:
            return
        try:
            now = time.perf_counter()
            messages = flow.websocket.messages
            msg = messages[-1]
            finished = sock.client(msg.content, now) if msg.from_client else sock.server(
                msg.content, now
            )
            del messages[:-1]  # the flow keeps no history: bounded memory on a long session
            if finished is not None:
                self.recorder.submit(finished)
        except Exception as exc:  # noqa: BLE001 - stop recording this socket, traffic goes on
            flow.metadata.pop(_SOCKET, None)
            self.sockets.pop(flow.id, None)
            self.recorder.failure("websocket_message", exc)

    def websocket_end(self, flow: http.HTTPFlow) -> None:
        sock = flow.metadata.pop(_SOCKET, None)
        if sock is None or self.sockets.pop(flow.id, None) is None:
            return
        try:
            finished = sock.end(time.perf_counter())
            if finished is not None:
                self.recorder.submit(finished)
        except Exception as exc:  # noqa: BLE001
            self.recorder.failure("websocket_end", exc)

    def done(self) -> None:
        """Shutdown: calls still in flight are recorded as aborted."""
        try:
            now = time.perf_counter()
            for sock in list(self.sockets.values()):
                finished = sock.end(now)
                if finished is not None:
                    self.recorder.submit(finished)
            self.sockets.clear()
            for ex in list(self.live.values()):
                ex.error = "aborted"
                if ex.t_end is None:
                    ex.t_end = now
                if ex.t_sent is not None:
                    self.recorder.submit(ex)
            self.live.clear()
        except Exception as exc:  # noqa: BLE001
            self.recorder.failure("done", exc)

    # -- helpers --------------------------------------------------------------------------

    def _guard(self, keep: Callable[[bytes], bytes], flow: http.HTTPFlow) -> Callable[[bytes], Any]:
        """A stream callable that can't fail: the bytes always go on unchanged."""

        broken = False

        def stream(data: bytes) -> bytes:
            nonlocal broken
            if not broken:
                try:
                    keep(data)
                except Exception as exc:  # noqa: BLE001
                    broken = True
                    self._failed(flow, "stream", exc)
            return data

        return stream

    def _failed(self, flow: http.HTTPFlow, where: str, exc: BaseException) -> None:
        """Stop recording this flow (its traffic goes on) and count the failure."""
        flow.metadata.pop(_KEY, None)
        self.live.pop(flow.id, None)
        self.recorder.failure(where, exc)


def _kept(headers: http.Headers) -> dict[str, str]:
    """The request headers the recorder reads (lower-case names, first value wins)."""
    out: dict[str, str] = {}
    for name, value in headers.items(multi=True):
        key = name.lower()
        if key in KEEP:
            out.setdefault(key, value)
    return out
