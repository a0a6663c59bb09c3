"""A TCP relay that keeps every byte the server sends, so a test can compare what a client got
through capture with what the server sent in the same exchange (vLLM's stream chunking varies
from request to request, so a second, direct request is no reference for the bytes)."""

from __future__ import annotations

import asyncio
import contextlib

import h11


class Tee:
    """Listens on a loopback port and relays each connection to `upstream` (host, port);
    `sent` holds the server's bytes since the last `clear()`, in arrival order."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.sent = bytearray()
        self.port = 0
        self._server: asyncio.Server | None = None
        self._pumps: set[asyncio.Task[None]] = set()

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._pumps):
            task.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def clear(self) -> None:
        self.sent.clear()

    def response_body(self) -> bytes:
        """The body of the one response the server sent since `clear()`, de-chunked."""
        conn = h11.Connection(h11.CLIENT)
        conn.send(h11.Request(method="POST", target="/", headers=[("Host", "x"),
                                                                   ("Content-Length", "0")]))
        conn.send(h11.EndOfMessage())
        conn.receive_data(bytes(self.sent))
        body = bytearray()
        while True:
            event = conn.next_event()
            if isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return bytes(body)
            elif event is h11.NEED_DATA:
                raise AssertionError(f"incomplete response from the server: {bytes(self.sent)!r}")

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, keep: bool) -> None:
            try:
                while data := await src.read(65536):
                    if keep:
                        self.sent += data
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    dst.close()

        tasks = [asyncio.create_task(pump(reader, up_writer, False)),
                 asyncio.create_task(pump(up_reader, writer, True))]
        self._pumps.update(tasks)
        try:
            await asyncio.gather(*tasks)
        finally:
            self._pumps.difference_update(tasks)
