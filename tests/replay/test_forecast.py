"""`replay --forecast`: the replay loop against modelled engines on virtual time — the same JSON
as a live run plus what was modelled, deterministic per seed; routers, topologies, transfers."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import msgspec
import pytest
from typer.testing import CliRunner

from replay import virtual
from replay.cli import app
from replay.clock import LoopClock
from replay.endpoint import Request
from replay.engine import PROFILES
from replay.errors import ConfigError
from replay.forecast import Cluster, Topology
from replay.forecast.routers import STRIDE, Affinity, Prefix, RoundRobin
from replay.prompts import Prompt
from replay.results import loads

EXAMPLE = Path(__file__).parents[2] / "corpus" / "reference" / "example.zst"
ONE_LEVEL = ["--forecast", "--agents", "6", "--duration", "60", "--wait", "fixed:1",
             "--no-progress"]


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, [str(EXAMPLE), *args])
    return result.exit_code, result.output


def without_wall(path: Path) -> dict[str, object]:
    doc = json.loads(path.read_text())
    doc["modelled"]["wall_s"] = None
    doc["notes"] = [n for n in doc["notes"] if "wall seconds" not in n]
    return doc


def test_a_forecast_writes_the_replay_json_with_what_was_modelled(tmp_path: Path) -> None:
    code, out = invoke(*ONE_LEVEL, "--replicas", "2", "--json", str(tmp_path / "f.json"))
    assert code == 0, out
    run = loads((tmp_path / "f.json").read_bytes())
    assert run.forecast
    assert not run.simulated
    m = run.modelled
    assert m is not None
    assert (m.engine, m.replicas, m.gpus, m.router) == ("h100", 2, 2, "round-robin")
    assert m.modelled_s > 60
    assert m.wall_s > 0
    (level,) = run.levels
    assert level.agents == 6
    assert level.completed > 20
    assert level.errors == 0
    assert level.power is not None
    assert level.power.ok
    assert level.power.mean_w is not None
    assert 2 * 90 <= level.power.mean_w <= 2 * 700  # two GPUs between idle and full power
    assert level.fidelity.cache_counters is not None
    assert 0 < level.fidelity.cache_counters < 1
    assert run.tiers[0].agents_per_mw is not None
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert lines[0] == "forecast h100: one line per measured level"
    assert all("forecast" in ln for ln in lines if ln.startswith("note:"))


def test_the_same_seed_gives_the_same_json(tmp_path: Path) -> None:
    for name in ("a", "b"):
        code, out = invoke(*ONE_LEVEL, "--seed", "7", "--json", str(tmp_path / f"{name}.json"))
        assert code == 0, out
    a, b = without_wall(tmp_path / "a.json"), without_wall(tmp_path / "b.json")
    assert a == b
    code, _ = invoke(*ONE_LEVEL, "--seed", "8", "--json", str(tmp_path / "c.json"))
    assert without_wall(tmp_path / "c.json")["levels"] != a["levels"]


def test_more_replicas_serve_the_same_agents_faster(tmp_path: Path) -> None:
    speeds = []
    for n in ("1", "4"):
        code, out = invoke("--forecast", "--agents", "24", "--duration", "60", "--no-progress",
                           "--wait", "fixed:1",
                           "--replicas", n, "--router", "least-loaded",
                           "--json", str(tmp_path / f"{n}.json"))
        assert code == 0, out
        (level,) = loads((tmp_path / f"{n}.json").read_bytes()).levels
        speeds.append(level.p25_speed)
    one, four = speeds
    assert one is not None
    assert four is not None
    assert four > 1.5 * one


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--forecast", "--endpoint", "http://x/v1"], "drop --endpoint"),
        (["--forecast", "--workers", "2"], "drop --workers"),
        (["--forecast", "--router", "random"], "router 'random'"),
        (["--forecast", "--prefill-replicas", "2"], "prefill and decode replicas go together"),
        (["--replicas", "4"], "add --forecast"),
        (["--forecast", "--profile", "nope"], "unknown engine profile 'nope'"),
    ],
)
def test_bad_forecast_flags_are_one_line_errors(args: list[str], message: str) -> None:
    code, out = invoke(*args)
    assert code == 1
    assert message in out
    assert "Traceback" not in out


def test_round_robin_cycles_and_affinity_sticks() -> None:
    rr = RoundRobin()
    assert [rr.pick("", [], [0, 0, 0]) for _ in range(4)] == [0, 1, 2, 0]
    sticky = Affinity()
    assert sticky.pick("a", [], [3, 0, 1]) == 1
    assert sticky.pick("b", [], [3, 5, 1]) == 2
    assert sticky.pick("a", [], [0, 9, 0]) == 1


def blocks(*parts: int) -> list[int]:
    """A prompt of len(parts) x STRIDE blocks: part p contributes blocks p*100 .. p*100+15."""
    return [p * 100 + j for p in parts for j in range(STRIDE)]


def test_the_prefix_router_follows_the_longest_prefix_unless_overloaded() -> None:
    router = Prefix(capacity=100)
    assert router.pick("", blocks(1, 2, 3), [0, 0]) == 0
    assert router.pick("", blocks(7, 8), [1, 0]) == 1
    assert router.match(blocks(1, 2, 9)) == (2 * STRIDE, 0)
    assert router.pick("", blocks(1, 2, 3, 4), [1, 1]) == 0  # its prefix lives on engine 0
    assert router.pick("", blocks(1, 2, 3, 5), [9, 1]) == 1  # engine 0 is overloaded
    assert router.match(blocks(1, 2, 3, 5)) == (4 * STRIDE, 1)
    assert router.match(blocks(1)[:-1]) == (0, -1)  # shorter than the grain


def test_the_prefix_index_forgets_deepest_blocks_first() -> None:
    router = Prefix(capacity=3)
    router.pick("", blocks(1, 2, 3, 4, 5), [0])
    assert router.match(blocks(1, 2, 3, 4, 5)) == (3 * STRIDE, 0)  # still prefix-closed


def test_topologies_are_validated() -> None:
    with pytest.raises(ConfigError, match="go together"):
        Topology(prefill=1)
    with pytest.raises(ConfigError, match="positive"):
        Topology(prefill=1, decode=1, kv_gbps=0)
    t = Topology(prefill=2, decode=6, router="prefix")
    assert t.engines == 8
    assert t.describe("h100", 8) == (
        "2 prefill + 6 decode × h100 (8-GPU groups), prefix routing, KV over 50 GB/s (64 GPUs)"
    )


async def first_token(topology: Topology) -> tuple[float, int]:
    clock = LoopClock()
    profile = msgspec.structs.replace(PROFILES["h100"], block_size=64)
    cluster = Cluster(topology, profile, clock)
    await cluster.start()
    try:
        prompt = Prompt(tokens=64_000, ideal_cached=0, blocks=list(range(1000)))
        result = await cluster.send(Request(prompt, 10))
    finally:
        await cluster.close()
    assert not result.error
    return (result.first - result.start) / 1e9, result.output


def test_disaggregated_ttft_adds_the_kv_transfer() -> None:
    together, n1 = virtual.run(first_token(Topology()))
    # 64,000 tokens x 131,072 bytes over 8.388608 GB/s: exactly 1 s
    apart, n2 = virtual.run(first_token(Topology(prefill=1, decode=1, kv_gbps=8.388608)))
    assert n1 == n2 == 10
    assert apart - together == pytest.approx(1.0, abs=1e-6)


def test_a_cancelled_request_frees_its_engine() -> None:
    async def main() -> int:
        clock = LoopClock()
        cluster = Cluster(Topology(), msgspec.structs.replace(PROFILES["h100"], block_size=64),
                          clock)
        await cluster.start()
        try:
            prompt = Prompt(tokens=640, ideal_cached=0, blocks=list(range(10)))
            task = asyncio.create_task(cluster.send(Request(prompt, 10_000)))
            await asyncio.sleep(5)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.sleep(1)
            return cluster.engines[0].stats().running + cluster.decode.load[0]
        finally:
            await cluster.close()

    assert virtual.run(main()) == 0
