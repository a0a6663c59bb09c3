"""One model call as the proxy saw it: the hand-off from the addon to the recorder.

The addon only timestamps and keeps references to bytes (O(1) per chunk on the traffic path);
all parsing happens later, off the traffic path, in the recorder. Header values are held in
memory for the recorder's session rules and never written anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from time import perf_counter

MAX_BODY = 256 << 20  # bytes kept per direction; beyond that the call is not recorded


@dataclass(eq=False, slots=True)
class Exchange:
    """Clock times are `time.perf_counter()` seconds; `unix` is the wall clock at the request."""

    api: str
    headers: dict[str, str]  # request headers, lower-case names (first value wins)
    unix: float
    t_start: float  # request head received: the request's time (t, wait, ttft, duration)
    request_encoding: str | None = None
    model: str | None = None  # named by the path, not the body (Vertex AI)
    request: list[bytes] = field(default_factory=list)
    t_sent: float | None = None  # request body fully forwarded upstream (None: it never was)
    status: int | None = None
    content_type: str = ""
    response_encoding: str | None = None
    t_headers: float | None = None  # response headers received
    chunks: list[tuple[float, bytes]] = field(default_factory=list)  # (arrival, bytes)
    t_end: float | None = None  # last response byte forwarded to the agent
    error: str | None = None  # "aborted" (client went away) or "upstream"
    size: int = 0
    overflow: bool = False

    def last_byte(self) -> float | None:
        """When the agent got the response's last byte: the last body chunk forwarded (the
        end-of-message framing follows at once), else the end of the response."""
        if self.chunks and self.error is None:
            return self.chunks[-1][0]
        return self.t_end

    def request_chunk(self, data: bytes) -> bytes:
        """`flow.request.stream` callable: keep a reference, pass the bytes on unchanged."""
        if data:
            self._keep(data, self.request)
        else:
            self.t_sent = perf_counter()
        return data

    def response_chunk(self, data: bytes) -> bytes:
        """`flow.response.stream` callable: timestamp, keep a reference, pass the bytes on
        unchanged; the final `b""` marks the last byte."""
        now = perf_counter()
        if data:
            if not self.overflow:
                self.size += len(data)
                if self.size > MAX_BODY:
                    self.overflow = True
                    self.chunks.clear()
                else:
                    self.chunks.append((now, data))
        else:
            self.t_end = now
        return data

    def _keep(self, data: bytes, into: list[bytes]) -> None:
        if self.overflow:
            return
        self.size += len(data)
        if self.size > MAX_BODY:
            self.overflow = True
            into.clear()
        else:
            into.append(data)
