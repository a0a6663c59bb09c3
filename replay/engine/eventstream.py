"""An aiohttp response that sends SSE events as AWS event-stream frames, as Bedrock's
InvokeModelWithResponseStream does; the framing itself is `corpus.wire.eventstream`."""

from __future__ import annotations

from aiohttp import web

from corpus.wire import SSEDecoder, eventstream


class EventStreamResponse(web.StreamResponse):
    """A streaming response whose writes are SSE bytes, sent as one frame per complete event."""

    def __init__(self) -> None:
        super().__init__(headers={"Content-Type": eventstream.CONTENT_TYPE})
        self._decoder = SSEDecoder()

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        out = b"".join(eventstream.encode(e) for e in self._decoder.feed(bytes(data)))
        if out:
            await super().write(out)
