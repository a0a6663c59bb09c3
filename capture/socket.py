"""OpenAI's Responses WebSocket mode (`GET …/responses` upgraded), as exchanges (sans-I/O).

Codex and the OpenAI SDKs' `responses.connect()` keep one WebSocket open and send each model
call as a `{"type": "response.create", …}` text message holding the POST body's fields; the
server answers with the same events a streamed response carries, one JSON message each, one
response at a time. `Socket` turns that into the `Exchange`s the recorder already reads: the
message is the request body, each server message one `data:` event with its arrival time, and
a terminal event (`response.completed`, `.incomplete`, `.failed`, `error`) ends the call. Work
on the traffic path is O(1) per message (plus a bounded look at the event type), as for HTTP.
"""

from __future__ import annotations

import re
import time

import msgspec

from capture.exchange import Exchange

CREATE = b'"response.create"'
TERMINAL = frozenset(
    {"response.completed", "response.incomplete", "response.failed", "response.cancelled",
     "error"}
)
_HEAD = re.compile(rb'\A\s*\{\s*"type"\s*:\s*"([A-Za-z0-9_.]+)"')


class _Type(msgspec.Struct):
    type: str = ""


_TYPE = msgspec.json.Decoder(_Type)


def event_type(message: bytes) -> str:
    """The `type` of a server event: read off its start when it comes first (as OpenAI sends
    it), else by a decode that builds nothing but that field; "" when there is none."""
    found = _HEAD.match(message, 0, 200)
    if found is not None:
        return found.group(1).decode()
    try:
        return _TYPE.decode(message).type
    except msgspec.DecodeError:
        return ""


class Socket:
    """The calls of one Responses WebSocket. Each method returns the exchange it finished (to
    submit to the recorder), if any."""

    def __init__(self, api: str, headers: dict[str, str]) -> None:
        self.api = api
        self.headers = headers
        self.current: Exchange | None = None

    def client(self, message: bytes, t: float) -> Exchange | None:
        """A client message: a `response.create` starts a call (abandoning one still open,
        which a client can only do by giving up on it); other client events change nothing."""
        if CREATE not in message:
            return None
        gone = self._abort(t)
        ex = Exchange(api=self.api, headers=self.headers, unix=time.time(), t_start=t)
        ex.request_chunk(message)
        ex.t_sent = t
        ex.status, ex.content_type, ex.t_headers = 200, "text/event-stream", t
        self.current = ex
        return gone

    def server(self, message: bytes, t: float) -> Exchange | None:
        """A server message: one event of the open call; the call ends with its terminal one."""
        ex = self.current
        if ex is None:
            return None
        ex.chunks.append((t, b"data: " + message + b"\n\n"))
        if event_type(message) in TERMINAL:
            ex.t_end = t
            self.current = None
            return ex
        return None

    def end(self, t: float) -> Exchange | None:
        """The socket closed: a call still open was cut off."""
        return self._abort(t)

    def _abort(self, t: float) -> Exchange | None:
        ex, self.current = self.current, None
        if ex is not None:
            ex.error = "aborted"
            ex.t_end = t
        return ex
