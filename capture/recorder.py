"""The recorder: finished exchanges in, anonymized corpus turns out, on a worker thread.

The proxy's event loop only enqueues (`submit`); a single worker thread owns the Anonymizer,
the session table and the Writer, so recording never stalls the traffic: it holds the GIL
only in short steps (tiktoken releases it; rs-bpe gets long texts in parts of < 1 ms, see
`corpus.tokenizer`). The worker flushes the writer at least every
`flush_every` seconds and closes idle sessions. Any failure while recording one exchange is
counted in `stats` and never reaches the agent.

The queue is bounded (`max_queued` exchanges, `max_queued_bytes` of bodies): when the worker
falls behind (a slow disk, a burst of huge contexts), `submit` sheds the new exchange, counted
in `stats.shed`, rather than let memory grow without limit; the traffic is never touched.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mitmproxy.net import encoding as mitm_encoding

from capture import agents, decoders, identity
from capture.body import BodyError, Parsed, parse, shared
from capture.exchange import Exchange
from capture.sessions import Assignment, Call, Outcome, Sessions, Thread
from capture.wire import FORMATS, Format, Result, openai_responses
from capture.wire.result import error_of, loads
from corpus import Anonymizer, Turn, Writer, digest
from corpus.wire import SSEDecoder, eventstream, linearize

log = logging.getLogger(__name__)

_STOP = object()
MEMOS = 256  # threads whose last parsed body is kept for incremental parsing
MAX_QUEUED = 1024  # exchanges waiting for the worker before new ones are shed
MAX_QUEUED_BYTES = 512 << 20  # their request and response bytes
CANDIDATES = 64  # memos tried per request


@dataclass(slots=True)
class Stats:
    """Counters for the live line and the final summary (read from other threads)."""

    sessions: int = 0
    open: int = 0
    turns: int = 0
    failed: int = 0  # HTTP errors and in-stream errors
    aborted: int = 0  # client went away mid-response
    input_tokens: int = 0
    output_tokens: int = 0
    errors: int = 0  # recorder failures (the traffic was not affected)
    skipped: int = 0  # model calls that could not be recorded (not JSON, too large)
    warmups: int = 0  # WebSocket warm-ups (`generate: false`): no model call, no turn
    shed: int = 0  # exchanges not recorded because the queue was full (recorder behind)
    last_error: str = ""
    where: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class _State:
    """Per-thread data the recorder keeps between calls."""

    t0: float  # clock time of the thread's first request (arrival)
    parsed: Parsed | None = None
    segments: list[str] = field(default_factory=list)  # effective conversation segments
    digests: list[bytes] = field(default_factory=list)
    output_items: list[Any] | None = None  # Responses: last output, for previous_response_id


@dataclass(slots=True)
class _Request:
    fmt: Format
    parsed: Parsed
    fields: dict[str, Any]
    pre_segments: list[str]
    pre_digests: list[bytes]
    segments: list[str]  # conversation part
    digests: list[bytes]
    preamble: bytes


class Recorder:
    """Turns exchanges into corpus sessions and turns. `start()` the worker, `submit()` from
    the proxy, `close()` at the end (drains, closes sessions, closes the writer)."""

    def __init__(
        self,
        writer: Writer,
        *,
        idle: float = 900.0,
        flush_every: float = 1.0,
        clock: Callable[[], float] = time.perf_counter,
        max_queued: int = MAX_QUEUED,
        max_queued_bytes: int = MAX_QUEUED_BYTES,
    ) -> None:
        self.writer = writer
        self.max_queued = max_queued
        self.max_queued_bytes = max_queued_bytes
        self._queued_bytes = 0
        self.anon = Anonymizer(
            writer.keys,
            block_size=writer.header.block_size,
            tokenizer_name=writer.header.tokenizer,
        )
        self.sessions = Sessions(idle)
        self.stats = Stats()
        self.flush_every = flush_every
        self.clock = clock
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._pending = 0
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._memos: OrderedDict[int, Thread] = OrderedDict()
        self._warm: OrderedDict[bytes, tuple[list[str], list[bytes]]] = OrderedDict()
        self._closed = False
        self._lock = threading.Lock()  # serializes process() when called without the worker
        self._count_lock = threading.Lock()

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="capture-recorder", daemon=True)
            self._thread.start()

    def submit(self, exchange: Exchange) -> None:
        """Queue a finished exchange (thread-safe, never blocks, never raises); shed it
        (counted in `stats.shed`) when the queue is full."""
        if self._closed:
            return
        with self._cond:
            if self._pending and (
                self._pending >= self.max_queued
                or self._queued_bytes + exchange.size > self.max_queued_bytes
            ):
                with self._count_lock:
                    self.stats.shed += 1
                return
            self._pending += 1
            self._queued_bytes += exchange.size
        self._queue.put(exchange)

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until everything submitted so far is recorded; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self) -> None:
        """Record what is queued, close every session, flush and close the writer."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None
        else:
            self._drain_inline()
        try:
            with self._lock:
                for th in self.sessions.close_all():
                    self._close_session(th)
        except Exception as exc:  # noqa: BLE001 - reported, the file is still closed below
            self.failure("close", exc)
        try:
            self.writer.close()
        except Exception as exc:  # noqa: BLE001 - e.g. a full disk: the frames before stay
            self.failure("close", exc)

    def failure(self, where: str, exc: BaseException) -> None:
        """Count a recorder failure (thread-safe); the traffic is never affected."""
        with self._count_lock:
            self.stats.errors += 1
            self.stats.where[where] = self.stats.where.get(where, 0) + 1
            self.stats.last_error = f"{where}: {_brief(exc)}"
        log.debug("recorder failure in %s", where, exc_info=exc)

    # -- worker --------------------------------------------------------------------------

    def _run(self) -> None:
        next_tick = self.clock() + self.flush_every
        while True:
            try:
                item = self._queue.get(timeout=max(0.0, next_tick - self.clock()))
            except queue.Empty:
                item = None
            if item is _STOP:
                self._drain_inline()
                return
            if item is not None:
                self._handle(item)
            if self.clock() >= next_tick:
                self.tick()
                next_tick = self.clock() + self.flush_every

    def _drain_inline(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not _STOP:
                self._handle(item)

    def _handle(self, ex: Exchange) -> None:
        try:
            with self._lock:
                self.process(ex)
        except Exception as exc:  # noqa: BLE001 - counted, never propagated
            self.failure("record", exc)
        finally:
            with self._cond:
                self._pending -= 1
                self._queued_bytes -= ex.size
                self._cond.notify_all()

    def tick(self) -> None:
        """Close idle sessions and flush (the worker calls this every `flush_every`)."""
        try:
            with self._lock:
                for th in self.sessions.expire(self.clock()):
                    self._close_session(th)
                self.writer.flush()
        except Exception as exc:  # noqa: BLE001
            self.failure("flush", exc)

    # -- recording -----------------------------------------------------------------------

    def process(self, ex: Exchange) -> None:
        """Record one exchange (on the worker; public for benchmarks and tests)."""
        fmt = FORMATS[ex.api]
        if ex.overflow or ex.t_sent is None:
            self.stats.skipped += 1
            return
        try:
            raw = _request_body(ex)
            if not raw or raw.isspace():
                raise BodyError("empty body")
            head_ident = identity.from_headers(ex.headers)
            memo, common = self._memo(raw, self.sessions.related(head_ident, ex.api))
            req = self._read(fmt, raw, memo, common)
        except ValueError:  # not JSON, or an encoding that doesn't decode: not a model call
            self.stats.skipped += 1
            return
        ident = _with_body(head_ident, req)
        chained = self._chain(ident, req)
        result = _response(fmt, ex)
        if req.fields.get("generate") is False:  # a warm-up (WebSocket mode): no model call
            self._warmed(req, result)
            return
        call = Call(
            api=fmt.API,
            identity=ident,
            preamble=req.preamble,
            messages=req.digests,
            ends_in_tool_result=fmt.ends_in_tool_result(req.parsed.items),
            t=ex.t_start,
            referenced=lambda start: fmt.referenced_ids(req.parsed.items[max(0, start - chained):]),
        )
        assignment = self.sessions.assign(call)
        th = assignment.thread
        if assignment.new:
            self._open_session(th, ex, req)
        state: _State = th.state
        prompt = self.anon.prompt(  # tools, system, conversation; digests: from session matching
            req.pre_segments + req.segments, req.pre_digests + req.digests, conversation=th.id
        )
        turn, failed = self._turn(ex, result, assignment, state, prompt.tokens)
        assert th.session is not None
        self.writer.add_turn(th.session, turn, prompt.blocks)
        self.sessions.finish(
            assignment,
            call,
            Outcome(
                t_end=ex.last_byte() or self.clock(),
                failed=failed,
                tool_ids=frozenset(c.id for c in result.tool_calls),
                response_id=identity.tag(result.response_id) if result.response_id else None,
            ),
        )
        state.parsed = req.parsed
        if fmt.API == openai_responses.API:  # keep what a previous_response_id chain needs
            state.segments, state.digests = req.segments, req.digests
            state.output_items = result.output_items
        self._remember(th)
        st = self.stats
        st.turns += 1
        st.input_tokens += turn.input
        st.output_tokens += turn.output
        if turn.stop == "aborted":
            st.aborted += 1
        elif failed:
            st.failed += 1

    def _open_session(self, th: Thread, ex: Exchange, req: _Request) -> None:
        model = req.fields.get("model")
        th.session = self.writer.open_session(
            # an exchange that began before the one that set the corpus's origin, but
            # finished after it, would start before 0: it starts with it
            start=max(0.0, self.writer.relative(ex.unix)),
            model=model if isinstance(model, str) else ex.model or "",
            api=req.fmt.API,
            agent=agents.family(ex.headers),
            parent=th.parent.session if th.parent is not None else None,
        )
        th.state = _State(t0=ex.t_start)
        self.stats.sessions += 1
        self.stats.open = len(self.sessions)

    def _close_session(self, th: Thread) -> None:
        self._memos.pop(th.id, None)
        if th.session is not None:
            self.writer.close_session(th.session)
        self.stats.open = len(self.sessions)

    def _turn(
        self, ex: Exchange, result: Result, a: Assignment, state: _State, tokens: int
    ) -> tuple[Turn, bool]:
        """The corpus turn, and whether the call failed (HTTP or in-stream error, abort)."""
        usage = result.usage
        failed_http = ex.status is not None and ex.status >= 400
        if usage is not None and usage.output is not None:
            output = usage.output
        else:
            output = self.anon.count(result.output_text()) if result.text else 0
        if ex.error == "aborted":
            stop: str | None = "aborted"
        elif ex.error is not None:
            stop = "error:upstream"
        elif result.error is not None:
            stop = result.error
        elif failed_http:
            stop = "error"
        else:
            stop = result.stop
        start = ex.t_start  # the request's arrival: its head reached the proxy
        last = ex.last_byte()
        turn = Turn(
            t=max(0.0, start - state.t0),
            input=tokens,
            output=output,
            reasoning=usage.reasoning if usage is not None else None,
            wait=a.wait,
            after=a.after,
            tool_calls=tuple(self.anon.tool(c.name) for c in result.tool_calls if c.name),
            ttft=(
                max(0.0, result.first_content - start)
                if result.first_content is not None
                else None
            ),
            duration=max(0.0, last - start) if last is not None else None,
            usage_input=usage.input if usage is not None else None,
            usage_cached=usage.cached if usage is not None else None,
            stop=stop,
            status=ex.status,
        )
        return turn, ex.error is not None or result.error is not None or failed_http

    # -- request bodies ------------------------------------------------------------------

    def _memo(self, raw: bytes, threads: list[Thread]) -> tuple[Parsed | None, int]:
        """The earlier parse sharing the most leading elements with `raw`, and how many."""
        best: Parsed | None = None
        best_k = -1
        for th in threads[:CANDIDATES]:
            state = th.state
            memo = state.parsed if state is not None else None
            if memo is None:
                continue
            k = shared(raw, memo)
            if k > best_k:
                best, best_k = memo, k
                if k == len(memo.ends):
                    break
        return best, best_k

    def _remember(self, th: Thread) -> None:
        self._memos[th.id] = th
        self._memos.move_to_end(th.id)
        while len(self._memos) > MEMOS:
            _, old = self._memos.popitem(last=False)
            if old.state is not None:
                old.state.parsed = None

    def _read(
        self, fmt: Format, raw: bytes, memo: Parsed | None, common: int | None = None
    ) -> _Request:
        api = fmt.API
        parsed = parse(raw, fmt.ARRAY, memo, common)
        fields = parsed.fields
        if not parsed.array:  # e.g. Responses `input` as a plain string: no incremental form
            segs = linearize.segments(api, fields)
            digs = [digest(s) for s in segs]
            return _Request(fmt, parsed, fields, segs, digs, [], [], _combine(digs))
        pre = fmt.preamble(fields)
        cached = parsed.cache.get("pre") if parsed.fields_same else None
        if cached is None and memo is not None:  # fields changed; the preamble may not have
            prev = memo.cache.get("pre")
            if prev is not None and prev[0] == pre:
                cached = prev
        if cached is None:
            segs = linearize.segments(api, pre)
            digs = [digest(s) for s in segs]
            cached = (pre, segs, digs, _combine(digs))
        parsed.cache["pre"] = cached
        _, pre_segs, pre_digs, combined = cached
        segs, digs = parsed.notes, parsed.digests  # per item: segment and its digest
        if len(segs) < len(parsed.items):
            new = linearize.segments(api, {fmt.ARRAY: parsed.items[len(segs) :]})
            segs.extend(new)
            digs.extend(map(digest, new))
        return _Request(fmt, parsed, fields, pre_segs, pre_digs, segs, digs, combined)

    def _warmed(self, req: _Request, result: Result) -> None:
        """Keep a warm-up's conversation for the call that continues it; record no turn."""
        self.stats.warmups += 1
        if result.response_id:
            self._warm[identity.tag(result.response_id)] = (req.segments, req.digests)
            while len(self._warm) > MEMOS:
                self._warm.popitem(last=False)

    def _chain(self, ident: identity.Identity, req: _Request) -> int:
        """Rebuild the context of a Responses call that continues a stored response
        (`previous_response_id`): the earlier conversation, its output, then the new input.
        Returns how many leading conversation items were prepended."""
        th = self.sessions.chained(ident)
        if th is None or th.state is None:
            warm = self._warm.get(ident.previous_response) if ident.previous_response else None
            if warm is None:
                return 0
            segs, digs = warm
        else:
            state: _State = th.state
            out_segs = linearize.segments(req.fmt.API, {"input": state.output_items or []})
            segs = state.segments + out_segs
            digs = state.digests + [digest(s) for s in out_segs]
        req.segments = segs + req.segments
        req.digests = digs + req.digests
        return len(segs)


def _brief(exc: BaseException) -> str:
    """An exception in a few words for the live warning: an OS error's reason (e.g. "No
    space left on device"), else its type. Never its message: it could quote a body."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return type(exc).__name__


def _with_body(head: identity.Identity, req: _Request) -> identity.Identity:
    """`identity.with_body(head, req.fields)`, kept with the parse: bodies whose bytes outside
    the conversation array equal the memo's (`fields_same`) share its fields, hence the result
    for the same header identity."""
    cache = req.parsed.cache
    if req.parsed.fields_same:
        found = cache.get("ident")
        if found is not None and found[0] == head:
            return found[1]
    ident = identity.with_body(head, req.fields)
    cache["ident"] = (head, ident)
    return ident


def _combine(digests: list[bytes]) -> bytes:
    return digest("".join(d.hex() for d in digests))


def _request_body(ex: Exchange) -> bytes:
    raw = b"".join(ex.request)
    if ex.request_encoding:
        for name in reversed([n.strip() for n in ex.request_encoding.split(",") if n.strip()]):
            decoded = mitm_encoding.decode(raw, name)
            raw = decoded if isinstance(decoded, bytes) else decoded.encode()
    return raw


def _arrivals(ends: list[int], pieces: list[tuple[float, bytes]], last: float) -> list[float]:
    """The arrival time of each event: that of the chunk holding its last byte (`ends`, in
    the decoded stream) — when an incremental decoder would have dispatched it."""
    out: list[float] = []
    it = iter(pieces)
    size, t = 0, last
    for end in ends:
        while size < end:
            piece = next(it, None)
            if piece is None:  # (not reached: the events lie within the pieces)
                break
            t = piece[0]
            size += len(piece[1])
        out.append(t)
    return out


def _arrival(buf: bytes, event: int, pieces: list[tuple[float, bytes]]) -> float:
    """When event `event` (0-based) of the plain stream `buf` arrived: the time of the chunk
    holding the blank line that ends it (when an incremental decoder would dispatch it)."""
    end = -2
    for _ in range(event + 1):
        end = buf.find(b"\n\n", end + 2)
    end += 2
    size = 0
    for t, piece in pieces:
        size += len(piece)
        if size >= end:
            return t
    return pieces[-1][0]


def _response(fmt: Format, ex: Exchange) -> Result:
    """Parse the response bytes: SSE events through the wire format's stream parser (each
    event timed by the chunk that completed it), or a JSON body."""
    if ex.status is None:
        return Result()
    try:
        dec = decoders.make(ex.response_encoding) if ex.response_encoding else None
    except decoders.DecodeError:  # an encoding we can't read: keep the turn and its timing
        return Result(error="error" if ex.status >= 400 else None)
    ctype = ex.content_type.lower()
    sse = "text/event-stream" in ctype
    if sse or eventstream.CONTENT_TYPE in ctype:
        t = ex.t_headers or 0.0
        pieces: list[tuple[float, bytes]] = ex.chunks  # decoded, with each chunk's arrival
        if dec is not None:
            pieces = []
            try:
                for t, chunk in ex.chunks:
                    pieces.append((t, dec.decode(chunk)))
                pieces.append((t, dec.flush()))
            except Exception:  # noqa: BLE001 - a cut compressed stream: keep what decoded
                pass
        if not sse:  # Bedrock: AWS event-stream frames, each holding one Anthropic event
            buf = b"".join(p for _, p in pieces)
            found = list(eventstream.events(buf))
            times = _arrivals([end for end, _ in found], pieces, t)
            parser = fmt.Stream()
            for (_, event), when in zip(found, times, strict=True):
                parser.feed(event, when)
            return parser.result()
        if fmt.parse_stream is not None:  # the whole stream at once, when it is plain
            buf = b"".join(p for _, p in pieces)
            whole = fmt.parse_stream(buf, lambda i: _arrival(buf, i, pieces))
            if whole is not None:
                return whole
        decoder = SSEDecoder()
        parser = fmt.Stream()
        for t, piece in pieces:
            for event in decoder.feed(piece):
                parser.feed(event, t)
        for event in decoder.flush():
            parser.feed(event, t)
        return parser.result()
    try:
        data = decoders.decode_all([c for _, c in ex.chunks], ex.response_encoding)
    except decoders.DecodeError:
        return Result(error="error" if ex.status >= 400 else None)
    obj = loads(data) if data else None
    if ex.status >= 400:
        return Result(error=error_of(obj), complete=True)
    if obj is None:
        return Result()
    return fmt.body(obj)
