"""Sans-I/O wire knowledge every package shares: the SSE decoder, the AWS event-stream codec,
the table of API names and paths, and request linearization. No sockets, files or clocks here;
capture, replay and the simulated engine feed these bytes and bodies.
"""

from corpus.wire import apis, eventstream, linearize
from corpus.wire.sse import Event, SSEDecoder

__all__ = ["Event", "SSEDecoder", "apis", "eventstream", "linearize"]
