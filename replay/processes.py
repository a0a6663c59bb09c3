"""`ProcessFleet`: a `Fleet` that shards a level's agents over worker processes (agent i goes to
worker i mod N), each with its own event loop, endpoint and copy of the workload, streaming
samples back over a pipe. Each process builds its endpoint from a picklable `Factory`.

Samples carry CLOCK_MONOTONIC times relative to the run's epoch, the same clock in every process
of the machine, so shards merge by concatenation (live runs only: virtual time is per loop).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.connection
import signal

import msgspec

from replay.clock import Clock, RealClock
from replay.endpoint import Endpoint, Factory
from replay.errors import ReplayError
from replay.fleet import Shard, Worker
from replay.prompts import Synth
from replay.results import Sample
from replay.waits import parse as parse_wait
from replay.workload import Workload


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a worker needs besides its endpoint to rebuild its agents' world."""

    corpus: str
    tag: str = ""
    tokenizer: str = "cl100k_base"
    wait: str = "recorded"
    max_wait: float | None = None
    seed: int = 0
    epoch: int = 0
    time_scale: float = 1.0
    template: int | None = None
    """Tokens the server's chat template adds (the probe's finding; None: the corpus's)."""
    cache_block: int | None = None
    """The server's KV block size when it differs from the corpus's."""


def make_worker(
    s: Settings, workload: Workload, endpoint: Endpoint, clock: Clock | None = None
) -> Worker:
    synth = Synth(
        block_size=workload.header.block_size, tag=s.tag, tokenizer=s.tokenizer,
        shared=workload.shared, template=s.template, cache_block=s.cache_block,
    )
    return Worker(
        workload=workload, synth=synth, endpoint=endpoint,
        wait=parse_wait(s.wait, limit=s.max_wait), clock=clock or RealClock(), epoch=s.epoch,
        seed=s.seed, tag=s.tag, scale=s.time_scale,
    )


# -- worker processes ---------------------------------------------------------------------


class Begin(msgspec.Struct, tag="begin"):
    level: int
    agents: int
    ids: tuple[int, ...]
    t0: int
    ramp: float


class Finish(msgspec.Struct, tag="finish"):
    before: int
    timeout: float


class Quit(msgspec.Struct, tag="quit"):
    pass


class Ready(msgspec.Struct, tag="ready"):
    error: str = ""


class Batch(msgspec.Struct, tag="batch"):
    samples: list[Sample]
    inflight: int


class Done(msgspec.Struct, tag="done"):
    samples: list[Sample]
    error: str = ""


Command = Begin | Finish | Quit
Report = Ready | Batch | Done
_enc = msgspec.msgpack.Encoder()
_commands = msgspec.msgpack.Decoder(Command)
_reports = msgspec.msgpack.Decoder(Report)

PUMP_S = 0.2


def _child(conn: multiprocessing.connection.Connection, settings: bytes, factory: Factory) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the controller handles Ctrl-C
    asyncio.run(_serve(conn, msgspec.msgpack.decode(settings, type=Settings), factory))


async def _serve(
    conn: multiprocessing.connection.Connection, s: Settings, factory: Factory
) -> None:
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[Command | None] = asyncio.Queue()

    def readable() -> None:
        try:
            inbox.put_nowait(_commands.decode(conn.recv_bytes()))
        except (EOFError, OSError):
            loop.remove_reader(conn.fileno())
            inbox.put_nowait(None)

    try:
        workload = Workload.load(s.corpus, allow_damaged=True)  # the parent checked it
        endpoint = await factory.open()
        worker = make_worker(s, workload, endpoint)
    except (ReplayError, OSError) as exc:
        conn.send_bytes(_enc.encode(Ready(error=str(exc))))
        return
    loop.add_reader(conn.fileno(), readable)
    conn.send_bytes(_enc.encode(Ready()))
    pump: asyncio.Task[None] | None = None

    async def pumping() -> None:
        while True:
            await asyncio.sleep(PUMP_S)
            conn.send_bytes(_enc.encode(Batch(worker.take(), worker.inflight)))

    try:
        while True:
            cmd = await inbox.get()
            if cmd is None or isinstance(cmd, Quit):
                break
            if isinstance(cmd, Begin):
                worker.begin(Shard(cmd.level, cmd.agents, cmd.ids, cmd.t0, cmd.ramp))
                pump = asyncio.create_task(pumping())
            elif isinstance(cmd, Finish):
                error = ""
                try:
                    samples = await worker.finish(cmd.before, cmd.timeout)
                except Exception as exc:  # an agent bug: report it, don't hang the controller
                    samples, error = worker.take(), f"{type(exc).__name__}: {exc}"
                if pump is not None:
                    pump.cancel()
                    await asyncio.gather(pump, return_exceptions=True)
                    pump = None
                conn.send_bytes(_enc.encode(Done(samples, error)))
    finally:
        if pump is not None:
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)
        loop.remove_reader(conn.fileno())
        await worker.stop()
        await endpoint.close()


class ProcessFleet:
    """Agents sharded over `n` worker processes (spawned; each loads the corpus itself and
    opens its own endpoint from `factory`)."""

    def __init__(self, settings: Settings, factory: Factory, n: int) -> None:
        if n < 1:
            raise ReplayError(f"workers must be at least 1, got {n}")
        self.settings = settings
        self.factory = factory
        self.n = n
        self._procs: list[multiprocessing.process.BaseProcess] = []
        self._conns: list[multiprocessing.connection.Connection] = []
        self._samples: list[Sample] = []
        self._inflight = [0] * n
        self._waiting: dict[int, asyncio.Future[Report]] = {}
        self._dead: set[int] = set()
        self._closed = False

    async def start(self) -> None:
        """Spawn the workers and wait until each has loaded the corpus."""
        ctx = multiprocessing.get_context("spawn")
        blob = _enc.encode(self.settings)
        loop = asyncio.get_running_loop()
        for _ in range(self.n):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_child, args=(child, blob, self.factory), daemon=True)
            proc.start()
            child.close()
            self._procs.append(proc)
            self._conns.append(parent)
        for i, conn in enumerate(self._conns):
            loop.add_reader(conn.fileno(), self._readable, i)
        try:
            readies = await asyncio.gather(*(self._expect(i) for i in range(self.n)))
        except BaseException:
            await self.close()
            raise
        problems = [r.error for r in readies if isinstance(r, Ready) and r.error]
        if problems:
            await self.close()
            raise ReplayError(f"worker could not start: {problems[0]}")

    def _expect(self, i: int) -> asyncio.Future[Report]:
        fut: asyncio.Future[Report] = asyncio.get_running_loop().create_future()
        self._waiting[i] = fut
        return fut

    def _readable(self, i: int) -> None:
        conn = self._conns[i]
        try:
            msg = _reports.decode(conn.recv_bytes())
        except (EOFError, OSError):
            asyncio.get_running_loop().remove_reader(conn.fileno())
            self._dead.add(i)
            fut = self._waiting.pop(i, None)
            if fut is not None and not fut.done():
                fut.set_exception(self._died(i))
            return
        if isinstance(msg, Batch):
            self._samples.extend(msg.samples)
            self._inflight[i] = msg.inflight
            return
        if isinstance(msg, Done):
            self._samples.extend(msg.samples)
            self._inflight[i] = 0
        fut = self._waiting.pop(i, None)
        if fut is not None and not fut.done():
            fut.set_result(msg)

    def _died(self, i: int) -> ReplayError:
        code = self._procs[i].exitcode
        return ReplayError(
            f"worker process {i} exited unexpectedly (exit code {code}); the levels measured "
            "so far are kept — retry with fewer worker processes or check memory"
        )

    def _send(self, i: int, msg: object) -> None:
        if i in self._dead:
            raise self._died(i)
        try:
            self._conns[i].send_bytes(_enc.encode(msg))
        except OSError:
            self._dead.add(i)
            raise self._died(i) from None

    async def begin(self, level: int, agents: int, t0: int, ramp: float) -> None:
        for i in range(self.n):
            ids = tuple(range(i, agents, self.n))
            self._send(i, Begin(level, agents, ids, t0, ramp))

    def take(self) -> list[Sample]:
        out, self._samples = self._samples, []
        return out

    @property
    def inflight(self) -> int:
        return sum(self._inflight)

    async def finish(self, before: int, drain: float) -> list[Sample]:
        futs = [self._expect(i) for i in range(self.n)]
        for i in range(self.n):
            self._send(i, Finish(before, drain))
        done = await asyncio.gather(*futs)
        errors = [d.error for d in done if isinstance(d, Done) and d.error]
        if errors:
            raise ReplayError(f"a worker failed: {errors[0]}")
        return self.take()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        for conn in self._conns:
            try:
                loop.remove_reader(conn.fileno())
                conn.send_bytes(_enc.encode(Quit()))
            except (OSError, ValueError):
                pass
        for proc in self._procs:
            await asyncio.to_thread(proc.join, 10)
            if proc.is_alive():
                proc.terminate()
                await asyncio.to_thread(proc.join, 5)
        for conn in self._conns:
            conn.close()
