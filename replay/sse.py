"""A sans-I/O server-sent-events decoder: feed bytes as they arrive, get complete events.

Events may span chunks and lines may end in LF, CRLF or CR. `feed(b"")` is not special; call
`flush()` once the stream has ended to get an event that lacked its closing blank line.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Event:
    """One event: its `event` name ("" when none was given) and its joined `data` lines."""

    event: str
    data: bytes


class SSEDecoder:
    """Incremental SSE parser (comments and `id`/`retry` fields are ignored)."""

    def __init__(self) -> None:
        self._buf = b""
        self._event = ""
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[Event]:
        """Events completed by `chunk`, in order."""
        buf = self._buf + chunk if self._buf else chunk
        if b"\r" in buf:
            if buf.endswith(b"\r"):  # maybe half of a CRLF: decide on the next chunk
                buf = buf[:-1]
                keep_cr = True
            else:
                keep_cr = False
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        else:
            keep_cr = False
        lines = buf.split(b"\n")
        tail = lines.pop()
        self._buf = tail + b"\r" if keep_cr else tail
        out: list[Event] = []
        data = self._data
        for line in lines:
            if line.startswith(b"data:"):  # the hot path: one data line per token event
                data.append(line[6:] if line[5:6] == b" " else line[5:])
            elif not line:
                if data:
                    out.append(Event(self._event, b"\n".join(data) if len(data) > 1 else data[0]))
                    data.clear()
                self._event = ""
            else:
                self._line(line, out)
        return out

    def flush(self) -> list[Event]:
        """The last event if the stream ended without a blank line after it."""
        out: list[Event] = []
        rest, self._buf = self._buf.rstrip(b"\r"), b""
        if rest:
            self._line(rest, out)
        self._line(b"", out)
        return out

    def _line(self, line: bytes, out: list[Event]) -> None:
        if not line:
            if self._data:
                out.append(Event(self._event, b"\n".join(self._data)))
            self._event = ""
            self._data.clear()
            return
        if line[0] == 0x3A:  # ':' comment
            return
        name, sep, value = line.partition(b":")
        if sep and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
