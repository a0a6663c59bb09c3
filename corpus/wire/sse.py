"""Incremental Server-Sent Events decoding (sans-I/O), per the WHATWG event-stream rules: the
one SSE decoder capture, replay's client and the simulated engine share.

Feed bytes as they arrive; `feed()` returns the events they complete (`feed(b"")` is not
special). At the end of the stream (mitmproxy's final `b""`) `flush()` returns an event a
sloppy server left without its closing blank line. A leading byte-order mark is dropped.
Lines may end in CRLF, LF or CR, and a line (even a CRLF pair or a UTF-8 sequence) may be
split across chunks: feeding the same bytes split at any boundary yields the same events.
"""

from __future__ import annotations

from typing import NamedTuple

_BOM = b"\xef\xbb\xbf"


class Event(NamedTuple):  # a tuple: created per event, several times cheaper than a dataclass
    """One dispatched event. `event` defaults to "message"; `data` lines are joined by "\\n"."""

    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """Bytes in, `Event`s out. Holds at most one incomplete line between calls."""

    __slots__ = ("_buf", "_data", "_event", "_id", "_retry", "_skip_lf", "_started")

    def __init__(self) -> None:
        self._buf = b""
        self._skip_lf = False  # the previous chunk ended in CR: a leading LF belongs to it
        self._started = False
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None
        self._retry: int | None = None

    def feed(self, data: bytes) -> list[Event]:
        """Events completed by `data` (which may be empty)."""
        if not data:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if data[:1] == b"\n":
                data = data[1:]
        buf = self._buf + data if self._buf else data
        if not self._started:
            if len(buf) < 3 and _BOM.startswith(buf):
                self._buf = buf
                return []
            self._started = True
            if buf.startswith(_BOM):
                buf = buf[3:]
        out: list[Event] = []
        if b"\r" not in buf:  # the common case: LF line ends only
            lines = buf.split(b"\n")
            self._buf = lines.pop()  # incomplete (or empty) last line
            for line in lines:
                if line[:6] == b"data: ":  # inlined from `_line`: most lines are data
                    self._data.append(line[6:].decode("utf-8", "replace"))
                    continue
                event = self._line(line)
                if event is not None:
                    out.append(event)
            return out
        start, end = 0, len(buf)
        while start < end:
            lf = buf.find(b"\n", start)
            cr = buf.find(b"\r", start, lf if lf >= 0 else end)
            if cr >= 0:
                stop, nxt = cr, cr + 1
                if nxt < end and buf[nxt] == 0x0A:
                    nxt += 1
                elif nxt == end:
                    self._skip_lf = True
            elif lf >= 0:
                stop, nxt = lf, lf + 1
            else:
                break
            event = self._line(buf[start:stop])
            if event is not None:
                out.append(event)
            start = nxt
        self._buf = buf[start:]
        return out

    def flush(self) -> list[Event]:
        """End of stream: the last line is processed even without its terminator, and an event
        still pending is dispatched. (A browser would drop it; a recorder wants the final usage
        event even from a server that omits the last blank line.)"""
        out: list[Event] = []
        if self._buf:
            line, self._buf = self._buf, b""
            event = self._line(line)
            if event is not None:
                out.append(event)
        event = self._line(b"")
        if event is not None:
            out.append(event)
        self._skip_lf = False
        self._started = False
        return out

    def _reset(self) -> None:
        self._event = ""
        self._data = []

    def _line(self, raw: bytes) -> Event | None:
        if not raw:
            if not self._data:
                self._event = ""
                return None
            data = self._data[0] if len(self._data) == 1 else "\n".join(self._data)
            event = Event(self._event or "message", data, self._id, self._retry)
            self._reset()
            return event
        if raw[:6] == b"data: ":  # the common case
            self._data.append(raw[6:].decode("utf-8", "replace"))
            return None
        line = raw.decode("utf-8", "replace")
        if line[0] == ":":
            return None
        name, sep, value = line.partition(":")
        if sep and value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\x00" not in value:
                self._id = value
        elif name == "retry":
            if value.isascii() and value.isdigit():
                self._retry = int(value)
        return None
