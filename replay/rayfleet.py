"""`RayFleet`: a `Fleet` whose shards are Ray actors spread over a Ray cluster's nodes. Agent i
goes to shard i mod N and shard j to node j mod nodes (hard node affinity), so every node runs a
fair share. Each actor loads the corpus (shipped once through the object store), opens its own
endpoint from a picklable `Factory` and runs a `Worker` on its node's monotonic clock.

Every node's CLOCK_MONOTONIC has its own origin: the driver measures each node's offset (remote
reading minus the midpoint of the best of several round trips) and shifts the run's epoch and
deadlines by it, so samples come back on the driver's timeline and merge by concatenation, as
`--workers` results do. Ray is imported only here (the `agentload[ray]` extra).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import shutil
import tempfile
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from replay.endpoint import Endpoint, Factory
from replay.errors import ConfigError, ReplayError
from replay.fleet import Shard, Worker
from replay.processes import Settings, make_worker
from replay.results import Node, Sample
from replay.workload import Workload

PUMP_S = 0.2
"""How often the driver collects samples from every shard while a level runs."""
START_S = 120.0
"""How long shards may take to be placed and load the corpus."""
CALL_S = 60.0
"""How long a shard may take to answer beyond the drain it was given, before it counts as dead."""
PROBES = 9

_samples = msgspec.msgpack.Decoder(list[Sample])
_enc = msgspec.msgpack.Encoder()


def estimate_offset(probes: Sequence[tuple[int, int, int]]) -> tuple[int, int]:
    """(offset, error) in ns of a remote clock from `(sent, remote, received)` probes, the local
    clock read before and after each remote read: the remote reading minus the round trip's
    midpoint for the shortest round trip; the error bound is half that round trip."""
    if not probes:
        raise ValueError("no clock probes")
    sent, remote, received = min(probes, key=lambda p: p[2] - p[0])
    rtt = received - sent
    return remote - (sent + rtt // 2), (rtt + 1) // 2


class Host:
    """The Ray actor behind one shard (wrapped with `ray.remote` at start). Every method is
    async, so all of them run on the actor's event loop, beside its agents."""

    def __init__(self, settings: bytes, corpus: bytes, factory: Factory) -> None:
        self.settings = msgspec.msgpack.decode(settings, type=Settings)
        self.factory = factory
        self.dir = tempfile.mkdtemp(prefix="agentload-")
        self.path = os.path.join(self.dir, os.path.basename(self.settings.corpus) or "corpus.zst")
        with open(self.path, "wb") as f:
            f.write(corpus)
        self.worker: Worker | None = None
        self.endpoint: Endpoint | None = None

    async def open(self, epoch: int) -> str:
        """Load the corpus and open the endpoint; `epoch` is the run's epoch on this node's
        clock. Returns "" or what went wrong."""
        try:
            workload = Workload.load(self.path)
            self.endpoint = await self.factory.open()
            s = msgspec.structs.replace(self.settings, corpus=self.path, epoch=epoch)
            self.worker = make_worker(s, workload, self.endpoint)
        except (ReplayError, OSError) as exc:
            return str(exc)
        return ""

    async def now(self) -> int:
        return time.perf_counter_ns()

    async def begin(self, level: int, agents: int, ids: tuple[int, ...], t0: int,
                    ramp: float) -> None:
        assert self.worker is not None
        self.worker.begin(Shard(level, agents, ids, t0, ramp))

    async def take(self) -> tuple[bytes, int]:
        assert self.worker is not None
        return _enc.encode(self.worker.take()), self.worker.inflight

    async def finish(self, before: int, drain: float) -> tuple[bytes, str]:
        assert self.worker is not None
        try:
            samples = await self.worker.finish(before, drain)
        except Exception as exc:  # an agent bug: report it, don't hang the driver
            return _enc.encode(self.worker.take()), f"{type(exc).__name__}: {exc}"
        return _enc.encode(samples), ""

    async def stop(self) -> None:
        try:
            if self.worker is not None:
                await self.worker.stop()
        finally:
            if self.endpoint is not None:
                await self.endpoint.close()
            shutil.rmtree(self.dir, ignore_errors=True)


def is_loopback(url: str) -> bool:
    """Whether `url` names this machine only (127.0.0.0/8, ::1, localhost)."""
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_ray() -> Any:
    """The `ray` module; `ConfigError` saying how to install it when it is missing."""
    # under `uv run`, Ray would repackage the current directory (corpora and all) as every
    # worker's environment; nodes run the agentload installed on them instead (set it to 1 to
    # opt in). Ray reads this once, when first imported.
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "--ray needs Ray on this machine and every node: pip install 'agentload[ray]'"
        ) from None
    return ray


@dataclass
class _Place:
    node: str
    address: str
    shards: list[int] = field(default_factory=list)
    offset: int = 0
    error: int = 0
    agents: list[int] = field(default_factory=list)


class RayFleet:
    """Agents sharded over Ray actors, `per_node` on every node with at least `per_node` CPUs.
    Connects to the cluster at `address` (`auto`: the one this machine belongs to) unless this
    process is already connected, and disconnects again only if it connected."""

    def __init__(self, settings: Settings, factory: Factory, address: str,
                 per_node: int = 1) -> None:
        if per_node < 1:
            raise ReplayError(f"shards per node must be at least 1, got {per_node}")
        self.settings = settings
        self.factory = factory
        self.address = address
        self.per_node = per_node
        self.places: list[_Place] = []
        self.driver = ""
        self._actors: list[Any] = []
        self._node_of: list[int] = []  # shard -> index into places
        self._samples: list[Sample] = []
        self._inflight: list[int] = []
        self._dead: dict[int, str] = {}
        self._pump: asyncio.Task[None] | None = None
        self._stop_pump = asyncio.Event()
        self._connected = False
        self._closed = False

    @property
    def n(self) -> int:
        return len(self._actors)

    def _connect(self) -> Any:
        ray = load_ray()
        if ray.is_initialized():
            return ray
        try:
            ray.init(address=self.address, logging_level=logging.WARNING, log_to_driver=False,
                     configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ReplayError(
                f"--ray {self.address}: cannot join the Ray cluster ({exc}); start one with "
                "'ray start --head' or pass its address (HOST:6379 or ray://HOST:10001)"
            ) from None
        self._connected = True
        return ray

    async def start(self) -> None:
        """Join the cluster, place the shards and wait until each has loaded the corpus and
        its node's clock offset is known."""
        ray = self._connect()
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        try:
            self.driver = ray.util.get_node_ip_address()
            nodes = [n for n in ray.nodes()
                     if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) >= self.per_node]
            if not nodes:
                raise ReplayError(
                    f"--ray {self.address}: no live node has {self.per_node} CPU"
                    f"{'s' if self.per_node > 1 else ''} free for a shard; add nodes or lower "
                    "--workers (shards per node)")
            nodes.sort(key=lambda n: (n["NodeManagerAddress"], n["NodeID"]))
            self.places = [_Place(n["NodeID"], n["NodeManagerAddress"]) for n in nodes]
            corpus = ray.put(await asyncio.to_thread(Path(self.settings.corpus).read_bytes))
            blob = _enc.encode(self.settings)
            remote = ray.remote(Host)
            for j in range(len(nodes) * self.per_node):
                k = j % len(nodes)
                self.places[k].shards.append(j)
                self._node_of.append(k)
                self._actors.append(remote.options(
                    num_cpus=1, max_restarts=0, max_concurrency=10_000,
                    scheduling_strategy=NodeAffinitySchedulingStrategy(nodes[k]["NodeID"],
                                                                       soft=False),
                ).remote(blob, corpus, self.factory))
            self._inflight = [0] * self.n
            for place in self.places:
                await self._measure_clock(place)
            problems = await asyncio.wait_for(asyncio.gather(*(
                a.open.remote(self.settings.epoch + self.places[self._node_of[j]].offset)
                for j, a in enumerate(self._actors))), START_S)
        except BaseException as exc:
            await self.close()
            if isinstance(exc, TimeoutError):
                raise ReplayError(
                    f"--ray: shards were not ready within {START_S:g} s; check that every "
                    "node has agentload installed and the cluster has free CPUs") from None
            if isinstance(exc, ray.exceptions.RayError):
                raise ReplayError(f"--ray: a shard could not start: {exc}") from None
            raise
        bad = [p for p in problems if p]
        if bad:
            await self.close()
            raise ReplayError(f"a Ray shard could not start: {bad[0]}")

    async def _measure_clock(self, place: _Place) -> None:
        actor = self._actors[place.shards[0]]
        await asyncio.wait_for(actor.now.remote(), START_S)  # placed and warm
        probes = []
        for _ in range(PROBES):
            sent = time.perf_counter_ns()
            remote = await actor.now.remote()
            probes.append((sent, remote, time.perf_counter_ns()))
        place.offset, place.error = estimate_offset(probes)

    def nodes(self, levels: int | None = None) -> list[Node]:
        """The nodes used, with the agents each ran at each of the first `levels` levels."""
        return [
            Node(id=p.node, address=p.address, shards=len(p.shards),
                 agents=p.agents[:levels] if levels is not None else list(p.agents),
                 clock_offset_ms=p.offset / 1e6, clock_error_ms=p.error / 1e6)
            for p in self.places
        ]

    def _died(self, j: int) -> ReplayError:
        p = self.places[self._node_of[j]]
        return ReplayError(
            f"Ray shard {j} on node {p.address} ({p.node[:8]}) died: {self._dead[j]}; the levels "
            "measured so far are kept — check the node, or retry without it"
        )

    def _check(self) -> None:
        if self._dead:
            raise self._died(min(self._dead))

    async def begin(self, level: int, agents: int, t0: int, ramp: float) -> None:
        self._check()
        for p in self.places:
            p.agents.append(0)
        calls = []
        for j, actor in enumerate(self._actors):
            ids = tuple(range(j, agents, self.n))
            place = self.places[self._node_of[j]]
            place.agents[-1] += len(ids)
            calls.append(actor.begin.remote(level, agents, ids, t0 + place.offset, ramp))
        await self._gather(calls, CALL_S)
        self._check()
        self._stop_pump.clear()
        self._pump = asyncio.create_task(self._pumping())

    async def _gather(self, calls: list[Any], limit: float) -> list[Any]:
        """Await one call per shard; a shard that fails or does not answer is marked dead."""
        ray = load_ray()
        out = await asyncio.gather(
            *(asyncio.wait_for(c, limit) for c in calls), return_exceptions=True)
        for j, got in enumerate(out):
            if isinstance(got, ray.exceptions.RayError):
                self._dead.setdefault(j, type(got).__name__)
            elif isinstance(got, TimeoutError):
                self._dead.setdefault(j, f"no answer within {limit:g} s")
            elif isinstance(got, BaseException):
                raise got
        return out

    async def _pumping(self) -> None:
        while not self._stop_pump.is_set():
            try:
                await asyncio.wait_for(self._stop_pump.wait(), PUMP_S)
                return  # the final samples come with `finish`
            except TimeoutError:
                pass
            live = [j for j in range(self.n) if j not in self._dead]
            got = await self._gather([self._actors[j].take.remote() for j in live], CALL_S)
            for j, r in zip(live, got, strict=True):
                if isinstance(r, tuple):
                    self._samples.extend(_samples.decode(r[0]))
                    self._inflight[j] = r[1]

    async def _halt_pump(self) -> None:
        """Stop collecting, letting a collection under way land (its samples are not lost)."""
        pump, self._pump = self._pump, None
        if pump is not None:
            self._stop_pump.set()
            await asyncio.shield(pump)

    def take(self) -> list[Sample]:
        out, self._samples = self._samples, []
        return out

    @property
    def inflight(self) -> int:
        return sum(self._inflight)

    async def finish(self, before: int, drain: float) -> list[Sample]:
        await self._halt_pump()
        live = [j for j in range(self.n) if j not in self._dead]
        got = await self._gather(
            [self._actors[j].finish.remote(before + self.places[self._node_of[j]].offset, drain)
             for j in live], drain + CALL_S)
        errors = []
        for j, r in zip(live, got, strict=True):
            if isinstance(r, tuple):
                self._samples.extend(_samples.decode(r[0]))
                self._inflight[j] = 0
                if r[1]:
                    errors.append(r[1])
        self._check()
        if errors:
            raise ReplayError(f"a Ray shard failed: {errors[0]}")
        return self.take()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._halt_pump()
        ray = load_ray()
        live = [j for j in range(self.n) if j not in self._dead]
        await asyncio.gather(*(asyncio.wait_for(self._actors[j].stop.remote(), 10)
                               for j in live), return_exceptions=True)
        for actor in self._actors:
            ray.kill(actor)
        if self._connected:
            ray.shutdown()
