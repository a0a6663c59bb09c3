"""The simulated engine's core: continuous batching over a step loop, with KV admission and power.

Each step decodes one token for every running sequence that has finished its prompt, and spends
the rest of the token budget (`prefill_budget` minus the decode tokens) prefilling prompts in
arrival order, in chunks. A step lasts the profile's modelled time (x `time_scale`), paced
against the event loop's clock so the long-run rate is right even when single sleeps are late.
A request is admitted when the KV cache can hold its whole prompt plus the output it will
produce (so nothing is ever preempted); cached prompt blocks skip prefill. No admission, no
HTTP: the API modules turn `Generation` streams into responses.

One core, two drivers: `replay serve` runs it on a normal loop in real time, one step per sleep,
waking every stream each step; a forecast runs it on a `replay.virtual` loop with `burst=True`,
where a run of decode-only steps with nothing to admit is taken as one sleep (the state after k
such steps is exactly k single steps'; an arrival or a cancel cuts the burst at the next step
boundary), so modelled hours cost events, not steps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Literal, Protocol, Self

import msgspec

from replay.engine import output
from replay.engine.cache import Pins, PrefixCache, block_hashes, tail_hash
from replay.engine.errors import (
    ContextLengthExceeded,
    EngineError,
    EngineStopped,
    InvalidRequest,
    Overloaded,
)
from replay.engine.power import PowerMeter
from replay.engine.profiles import Profile

log = logging.getLogger(__name__)

Finish = Literal["length", "stop"]


class Stats(msgspec.Struct, frozen=True, kw_only=True):
    """A consistent snapshot of the engine's counters and gauges (tokens unless named)."""

    running: int
    waiting: int
    prompt_tokens_total: int
    generation_tokens_total: int
    prefix_cache_queries_total: int
    prefix_cache_hits_total: int
    requests_finished: dict[str, int]
    kv_blocks_used: int
    """Blocks running requests hold (cached blocks no request uses count as free, like vLLM)."""
    kv_blocks_total: int
    steps_total: int
    power_w: float
    energy_j: float


class _Tokens(Protocol):
    tokens: int


class Generation:
    """One request inside the engine. `async for n in gen` yields how many new tokens each
    wake-up brought (usually 1 per step; more when the consumer fell behind) and ends when the
    output is complete. Call `cancel()` when the client goes away; it is a no-op once done."""

    __slots__ = (
        "_blocks",
        "_admitted",
        "_cancelled",
        "_engine",
        "_hashes",
        "_hit",
        "_pinned",
        "_pins",
        "_prefill_left",
        "_prefilled",
        "progress",
        "quiet",
        "_private",
        "_read",
        "_waiter",
        "cached_tokens",
        "context",
        "done",
        "error",
        "finish_reason",
        "generated",
        "number",
        "prompt_tokens",
        "target",
    )

    def __init__(
        self,
        engine: Engine,
        number: int,
        prompt_tokens: int,
        hashes: list[int],
        target: int,
        finish_reason: Finish,
        blocks: int,
    ) -> None:
        self._engine = engine
        self.number = number
        """Sequential request number in this engine (ids are derived from it)."""
        self.prompt_tokens = prompt_tokens
        self.cached_tokens = 0
        """Prompt tokens served from the prefix cache; set at admission."""
        self.target = target
        """Output tokens this request will produce."""
        self.finish_reason: Finish = finish_reason
        self.generated = 0
        self.context = 0
        self.done = False
        self.error: EngineError | None = None
        self._hashes = hashes
        self._blocks = blocks
        self._hit = 0
        self._pinned = 0
        self._pins: Pins | None = None
        self._private = 0
        self._prefill_left = prompt_tokens
        self._read = 0
        self._waiter: asyncio.Future[None] | None = None
        self._cancelled = False
        self._admitted = False
        self._prefilled = False
        self.quiet = False
        """Wake the consumer only for the first token and the end (a forecast's endpoint needs
        no per-token wake-ups); `progress.tokens`, when set, still follows every commit."""
        self.progress: _Tokens | None = None

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> int:
        while True:
            new = self.generated - self._read
            if new > 0:
                self._read = self.generated
                return new
            if self.done:
                if self.error is not None:
                    raise self.error
                raise StopAsyncIteration
            waiter = asyncio.get_running_loop().create_future()
            self._waiter = waiter
            await waiter

    async def wait(self) -> None:
        """Wait until the output is complete (raises the engine's error if it failed)."""
        async for _ in self:
            pass

    def cancel(self) -> None:
        """Stop generating and free this request's KV blocks at the next step boundary."""
        if not self.done and not self._cancelled:
            self._cancelled = True
            self._engine._on_cancel(self)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)


class Engine:
    """Continuous-batching simulator for one `Profile`. Use `async with Engine(...)` (or
    `start()`/`stop()`) inside a running event loop, then `submit()` requests."""

    def __init__(
        self,
        profile: Profile,
        *,
        max_queue: int | None = None,
        seed: int = 0,
        time_scale: float = 1.0,
        burst: bool = False,
    ) -> None:
        if time_scale < 0:
            raise ValueError(f"time_scale must be >= 0, got {time_scale}")
        self.profile = profile
        self.max_queue = max_queue
        self.seed = seed
        self.time_scale = time_scale
        self.cache = PrefixCache(max(1, profile.kv_capacity_tokens // profile.block_size))
        self.burst = burst
        """Take runs of identical decode steps as one sleep (for virtual time; see module)."""
        self._clock: Callable[[], float] = time.monotonic
        self.power = PowerMeter(profile.idle_power_w, self._clock())
        self._waiting: deque[Generation] = deque()
        self._num_waiting = 0
        self._prefilling: deque[Generation] = deque()
        self._decoding: list[Generation] = []
        self._purge = False
        self._kv_tokens = 0
        self._count = 0
        self._prompt_total = 0
        self._generated_total = 0
        self._queries = 0
        self._hits = 0
        self._steps = 0
        self._finished: dict[str, int] = {"length": 0, "stop": 0, "abort": 0}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._vclock = 0.0
        self._cut: asyncio.Future[None] | None = None

    # lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the step loop in the running event loop."""
        if self._task is None:
            loop = asyncio.get_running_loop()
            self._clock = loop.time
            self.power = PowerMeter(self.power.watts, loop.time())
            self._task = loop.create_task(self._run(), name="engine-steps")

    async def stop(self) -> None:
        """Stop the step loop; requests still queued or generating fail with `EngineStopped`."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._fail_all(EngineStopped("the simulated engine stopped"))

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # requests --------------------------------------------------------------------------------

    def submit(
        self,
        prompt: Sequence[int],
        *,
        max_tokens: int | None = None,
        min_tokens: int = 0,
        ignore_eos: bool = False,
        param: str = "messages",
    ) -> Generation:
        """Queue a request for the prompt token ids `prompt`.

        Output length: exactly `max_tokens` with `ignore_eos`; otherwise a seeded natural length
        drawn from the prompt, raised to `min_tokens` and capped at `max_tokens` (finish
        "length" when the cap cuts it, else "stop"). `max_tokens=None` means the profile's
        default, shortened to fit the context. Raises `InvalidRequest`/`ContextLengthExceeded`
        (`param` names the prompt field in messages), `Overloaded` when `max_queue` requests are
        already waiting, `EngineStopped` when the loop is not running.
        """
        if self._task is None:
            raise EngineStopped("the simulated engine is not running")
        p = self.profile
        n = len(prompt)
        if n == 0:
            raise InvalidRequest("the prompt is empty", param=param)
        if max_tokens is None:
            max_tokens = min(p.default_max_tokens, p.max_context - n)
            if max_tokens < 1:
                raise ContextLengthExceeded(
                    f"This model's maximum context length is {p.max_context} tokens. However, "
                    f"your prompt has {n} tokens. Please reduce the length of the prompt.",
                    param=param,
                )
        self._check_fits(n, max_tokens, param)
        bs = p.block_size
        hashes = block_hashes(prompt, bs)
        if ignore_eos:
            target = max_tokens
        else:
            natural = output.natural_length(
                tail_hash(prompt, hashes, bs), self.seed, p.natural_median_tokens
            )
            target = min(max_tokens, max(natural, min_tokens))
        finish: Finish = "length" if target == max_tokens else "stop"
        return self._enqueue(n, hashes, target, finish, param, prefilled=False)

    def submit_blocks(
        self, tokens: int, hashes: list[int], max_tokens: int, *, prefilled: bool = False
    ) -> Generation:
        """Queue a request given as its size and the chained hashes of its full blocks (the
        engine's `block_size`), generating exactly `max_tokens` — what a forecast sends, with
        no token ids to hash. `prefilled`: the prompt's KV arrives from a prefill engine
        (disaggregated serving), so it takes KV space but no prefill compute and counts no
        prefix-cache query. Raises as `submit` does."""
        if self._task is None:
            raise EngineStopped("the simulated engine is not running")
        if tokens < 1:
            raise InvalidRequest("the prompt is empty", param="prompt")
        self._check_fits(tokens, max_tokens, "prompt")
        return self._enqueue(tokens, hashes, max_tokens, "length", "prompt", prefilled=prefilled)

    def _check_fits(self, n: int, max_tokens: int, param: str) -> None:
        """Raise as vLLM does when `max_tokens` is below 1 or an `n`-token prompt plus
        `max_tokens` exceeds the context."""
        if max_tokens < 1:
            raise InvalidRequest(
                f"max_tokens must be at least 1, got {max_tokens}", param="max_tokens"
            )
        limit = self.profile.max_context
        if n + max_tokens > limit:
            raise ContextLengthExceeded(
                f"This model's maximum context length is {limit} tokens. However, you "
                f"requested {n + max_tokens} tokens ({n} in the prompt, {max_tokens} in the "
                "completion). Please reduce the length of the prompt or completion.",
                param=param,
            )

    def _enqueue(
        self, n: int, hashes: list[int], target: int, finish: Finish, param: str, *,
        prefilled: bool,
    ) -> Generation:
        bs = self.profile.block_size
        blocks = -(-(n + target) // bs)
        if blocks > self.cache.capacity:
            raise ContextLengthExceeded(
                f"this request needs {n + target} KV-cache tokens but the simulated engine "
                f"holds {self.cache.capacity * bs}; shorten the prompt or max_tokens",
                param=param,
            )
        self._count += 1
        gen = Generation(self, self._count, n, hashes, target, finish, blocks)
        gen._prefilled = prefilled
        if self._num_waiting or not self._admit_one(gen):
            if self.max_queue is not None and self._num_waiting >= self.max_queue:
                raise Overloaded(
                    f"the simulated engine's queue is full ({self._num_waiting} requests waiting, "
                    f"--max-queue {self.max_queue}); retry later"
                )
            self._waiting.append(gen)
            self._num_waiting += 1
        self._wake.set()
        self._interrupt()
        return gen

    def _interrupt(self) -> None:
        """Something changed (an arrival, a cancel): end a running burst at its next step."""
        cut = self._cut
        if cut is not None and not cut.done():
            cut.set_result(None)

    def stats(self) -> Stats:
        """Counters and gauges now (safe to call from the engine's loop at any time)."""
        now = self._clock()
        return Stats(
            running=len(self._prefilling) + len(self._decoding),
            waiting=self._num_waiting,
            prompt_tokens_total=self._prompt_total,
            generation_tokens_total=self._generated_total,
            prefix_cache_queries_total=self._queries,
            prefix_cache_hits_total=self._hits,
            requests_finished=dict(self._finished),
            kv_blocks_used=self.cache.pinned,
            kv_blocks_total=self.cache.capacity,
            steps_total=self._steps,
            power_w=self.power.watts,
            energy_j=self.power.energy_j(now),
        )

    # internals -------------------------------------------------------------------------------

    def _admit_one(self, gen: Generation) -> bool:
        p = self.profile
        if len(self._prefilling) + len(self._decoding) >= p.max_batch:
            return False
        pins = self.cache.admit(gen._hashes, (gen.prompt_tokens - 1) // p.block_size, gen._blocks)
        if pins is None:
            return False
        gen._pins = pins
        hit = pins.hit
        cached = hit * p.block_size
        gen._admitted = True
        gen._hit = gen._pinned = hit
        gen._private = gen._blocks - hit
        gen.cached_tokens = cached
        if gen._prefilled:  # the KV arrives whole: no compute, joins decoding next step
            gen.context = gen.prompt_tokens
            gen._prefill_left = 0
            self._kv_tokens += gen.prompt_tokens
        else:
            gen.context = cached
            gen._prefill_left = gen.prompt_tokens - cached
            self._kv_tokens += cached
            self._prompt_total += gen.prompt_tokens
            self._queries += gen.prompt_tokens
            self._hits += cached
        self._prefilling.append(gen)
        return True

    def _admit(self) -> None:
        waiting = self._waiting
        while waiting:
            gen = waiting[0]
            if gen._cancelled:
                waiting.popleft()
                continue
            if not self._admit_one(gen):
                break
            waiting.popleft()
            self._num_waiting -= 1

    def _on_cancel(self, gen: Generation) -> None:
        if not gen._admitted:  # still waiting: drop it now (lazily removed from the deque)
            self._num_waiting -= 1
            self._end(gen, "abort")
        else:
            self._purge = True
            self._interrupt()

    def _end(self, gen: Generation, reason: str) -> None:
        """Mark `gen` done, return its KV blocks and wake its consumer."""
        if gen._pinned or gen._private:
            self.cache.release(gen._hashes[: gen._pinned], gen._private, gen._pins)
            gen._pinned = gen._private = 0
            gen._pins = None
        self._kv_tokens -= gen.context
        if gen.progress is not None:
            gen.progress.tokens = gen.generated
        gen.done = True
        self._finished[reason] = self._finished.get(reason, 0) + 1
        gen._wake()

    def _purge_cancelled(self) -> None:
        self._purge = False
        for gen in self._prefilling:
            if gen._cancelled:
                self._end(gen, "abort")
        for gen in self._decoding:
            if gen._cancelled:
                self._end(gen, "abort")
        self._prefilling = deque(g for g in self._prefilling if not g._cancelled)
        self._decoding = [g for g in self._decoding if not g._cancelled]

    def _fail_all(self, error: EngineError) -> None:
        for queue in (self._waiting, self._prefilling, self._decoding):
            for gen in queue:
                if not gen.done:
                    gen.error = error
                    self._end(gen, "abort")
        self._waiting.clear()
        self._num_waiting = 0
        self._prefilling.clear()
        self._decoding = []

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                await self._step(loop)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug must not hang every client: fail them, go on
                log.exception("simulated engine step failed")
                self._fail_all(EngineError(f"simulated engine step failed: {exc!r}"))

    async def _step(self, loop: asyncio.AbstractEventLoop) -> None:
        p = self.profile
        if self._purge:
            self._purge_cancelled()
        self._admit()
        decoding = self._decoding
        prefilling = self._prefilling
        if not decoding and not prefilling:
            self.power.set(p.idle_power_w, loop.time())
            self._wake.clear()
            await self._wake.wait()
            return
        budget = p.prefill_budget - len(decoding)
        chunks: list[tuple[Generation, int]] = []
        prefill = 0
        pairs = 0.0
        for gen in prefilling:
            if budget <= 0:
                break
            chunk = min(gen._prefill_left, budget)
            chunks.append((gen, chunk))
            budget -= chunk
            prefill += chunk
            pairs += chunk * (gen.context + chunk / 2)  # the chunk attends its prefix and itself
        work = prefill + len(decoding)
        self.power.set(p.power(work), loop.time())
        if self.burst and not chunks and not self._purge:
            await self._burst(loop, decoding)
            return
        dt = p.step_time(prefill, len(decoding), self._kv_tokens, pairs) * self.time_scale
        if dt <= 0:
            await asyncio.sleep(0)
        else:
            now = loop.time()
            # Idle or far behind: restart the schedule rather than burst to catch up.
            if self._vclock < now - max(0.05, 4 * dt):
                self._vclock = now
            self._vclock += dt
            await asyncio.sleep(max(0.0, self._vclock - now))
        self._commit(decoding, chunks)

    async def _burst(self, loop: asyncio.AbstractEventLoop, decoding: list[Generation]) -> None:
        """Run decode-only steps until the first sequence completes, as one sleep; an
        interrupt (`_interrupt`) ends the burst at the step in progress."""
        p = self.profile
        n = len(decoding)
        kv = self._kv_tokens
        scale = self.time_scale
        k = min(g.target - g.generated for g in decoding)
        start = loop.time()
        end = start + p.steps_time(n, kv, k) * scale
        cut = loop.create_future()
        self._cut = cut
        timer = loop.call_at(end, _settle, cut)
        try:
            await cut
        finally:
            timer.cancel()
            self._cut = None
        now = loop.time()
        if now < end:  # interrupted: finish the step in progress, then stop
            lo, hi = 0, k  # least j with start + steps_time(j) >= now
            while lo < hi:
                mid = (lo + hi) // 2
                if start + p.steps_time(n, kv, mid) * scale >= now:
                    hi = mid
                else:
                    lo = mid + 1
            k = max(1, lo)
            end = start + p.steps_time(n, kv, k) * scale
            if end > now:
                await asyncio.sleep(end - now)
        self._vclock = loop.time()
        self._commit(decoding, [], k)

    def _commit(
        self, decoding: list[Generation], chunks: list[tuple[Generation, int]], steps: int = 1
    ) -> None:
        """Apply `steps` steps of this composition (only decode-only steps repeat: `chunks`
        is empty when `steps` > 1)."""
        self._steps += steps
        emitted = 0
        keep: list[Generation] = []
        for gen in decoding:
            if gen._cancelled:  # cancelled during the last of these steps
                if steps > 1:
                    gen.generated += steps - 1
                    gen.context += steps - 1
                    self._kv_tokens += steps - 1
                    emitted += steps - 1
                self._end(gen, "abort")
                continue
            gen.generated += steps
            gen.context += steps
            self._kv_tokens += steps
            emitted += steps
            if gen.generated >= gen.target:
                self._end(gen, gen.finish_reason)
            else:
                keep.append(gen)
                if gen.progress is not None:
                    gen.progress.tokens = gen.generated
                if not gen.quiet:
                    gen._wake()
        prefilling = self._prefilling
        for gen, chunk in chunks:
            if gen._cancelled:
                continue  # still in the prefill queue: `_purge_cancelled` ends it
            gen._prefill_left -= chunk
            gen.context += chunk
            self._kv_tokens += chunk
            if gen._prefill_left:
                continue
            # Completed prefills precede the one partial chunk, but a cancelled one may sit first.
            if prefilling[0] is gen:
                prefilling.popleft()
            else:
                prefilling.remove(gen)
            self.cache.register(gen._hashes, gen._hit, gen._pins)
            gen._private -= len(gen._hashes) - gen._hit
            gen._pinned = len(gen._hashes)
            gen.generated = 1  # the last prefill chunk (or a transferred KV's first decode step)
            gen.context += 1
            self._kv_tokens += 1
            emitted += 1
            if gen.target <= 1:
                self._end(gen, gen.finish_reason)
            else:
                keep.append(gen)
                gen._wake()
        self._decoding = keep
        self._generated_total += emitted


def _settle(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
