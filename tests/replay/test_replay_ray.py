"""`replay --ray` on a real two-node Ray cluster (two raylets on this machine, started once and
always shut down): agents placed on both nodes, results merged exactly as one
process's, clock offsets, a shard or node that dies and Ctrl-C keeping what was measured."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fixtures_replay import LIVE, make_corpus, signal_at
from typer.testing import CliRunner

from replay.cli import _bare_ray, app
from replay.client import ClientFactory
from replay.clock import RealClock
from replay.errors import ReplayError
from replay.level import QUICK
from replay.processes import Settings
from replay.rayfleet import RayFleet, estimate_offset, is_loopback, load_ray
from replay.results import Corpus, Run, Sample
from replay.runner import Plan
from replay.runner import run as run_levels
from replay.search import parse_resolution
from replay.tiers import Tier

FAST = [*LIVE, "--min-requests", "5", "--wait", "fixed:0.01", "--seed", "3",
        "--run-tag", "same"]
SMALL = {"num_cpus": 1, "object_store_memory": 80 * 1024 * 1024, "include_dashboard": False}


@pytest.fixture(scope="session")
def ray() -> Any:
    """The `ray` module, imported as `replay --ray` imports it (workers use this venv as is)."""
    return load_ray()


@pytest.fixture(scope="module")
def ray_cluster(ray: Any) -> Iterator[Any]:
    """Two raylets (`node_a`, `node_b`), one CPU each; this process is the driver. Started
    once (only this module uses it) and shut down as soon as the module is done, even after a
    failure, so the rest of the suite has the memory back."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={**SMALL, "resources": {"node_a": 1}})
    try:
        cluster.add_node(**SMALL, resources={"node_b": 1})
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, logging_level=logging.WARNING, log_to_driver=False,
                 configure_logging=False)
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("ray") / "tiny.zst", sessions=4, turns=4)


def _node_names(ray: Any) -> dict[str, str]:
    """Node id -> the custom resource that tells the two nodes apart."""
    out = {}
    for n in ray.nodes():
        if n["Alive"]:
            out[n["NodeID"]] = "node_a" if "node_a" in n["Resources"] else "node_b"
    return out


def test_clock_offset_is_the_best_round_trip_midpoint() -> None:
    skew = 5_000_000_000  # the remote clock reads 5 s ahead
    probes = [
        (100, 150 + skew + 400, 900),  # slow and lopsided: ignored
        (1_000, 1_040 + skew, 1_100),  # true remote read at 1_040, midpoint 1_050
        (2_000, 2_300 + skew, 2_600),
    ]
    offset, error = estimate_offset(probes)
    assert offset == skew - 10
    assert error == 50
    assert abs(offset - skew) <= error
    with pytest.raises(ValueError, match="no clock probes"):
        estimate_offset([])


def test_loopback_urls_and_a_bare_ray_flag() -> None:
    assert is_loopback("http://127.0.0.1:8000/v1")
    assert is_loopback("http://localhost/v1")
    assert is_loopback("http://[::1]:80/v1")
    assert not is_loopback("http://10.0.0.5:8000/v1")
    assert not is_loopback("http://vllm.svc.cluster.local:8000/v1")
    assert _bare_ray(["c.zst", "--ray"]) == ["c.zst", "--ray", "auto"]
    assert _bare_ray(["--ray", "--agents", "2", "c.zst"])[:2] == ["--ray", "auto"]
    assert _bare_ray(["--ray", "10.0.0.1:6379", "c.zst"]) == ["--ray", "10.0.0.1:6379", "c.zst"]


def _run(corpus: Path, engine_url: str, out: Path, *extra: str) -> dict:
    result = CliRunner().invoke(app, [str(corpus), "--endpoint", engine_url + "/v1",
                                      "--agents", "4", "--json", str(out), *FAST, *extra])
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text())


def test_agents_run_on_both_nodes_and_merge_as_one_process_does(
    ray: Any, ray_cluster: Any, corpus: Path, engine_url: str, tmp_path: Path
) -> None:
    spread = _run(corpus, engine_url, tmp_path / "ray.json", "--ray", "auto")
    alone = _run(corpus, engine_url, tmp_path / "one.json")
    # the same document, plus the nodes
    assert spread.keys() == alone.keys()
    assert spread["sample_fields"] == alone["sample_fields"]
    assert spread["levels"][-1].keys() == alone["levels"][-1].keys()
    names = _node_names(ray)
    nodes = spread["nodes"]
    assert sorted(names[n["id"]] for n in nodes) == ["node_a", "node_b"]
    assert all(n["shards"] == 1 for n in nodes)
    assert all(n["agents"] == [2] * len(spread["levels"]) for n in nodes)
    assert all(abs(n["clock_offset_ms"]) <= n["clock_error_ms"] + 1 for n in nodes)  # one host
    assert any("ray: 2 shards on 2 nodes" in note for note in spread["notes"])
    assert alone["nodes"] == []
    *_, level = spread["levels"]
    fields = spread["sample_fields"]
    rows = [dict(zip(fields, s, strict=True)) for s in level["samples"]]
    assert {r["agent"] for r in rows} == {0, 1, 2, 3}  # both nodes' agents reported
    assert level["errors"] == 0
    assert level["completed"] >= 5
    # sample times are on the driver's timeline: inside the level, in order within a request
    assert all(level["started"] - 0.5 <= r["start"] <= r["end"] for r in rows)
    # what the engine makes deterministic is identical: the deal and every turn's tokens
    # (not `ideal_cached`: it depends on what the same shard sent before)

    def turns(doc: dict) -> dict[tuple[int, ...], tuple[int, ...]]:
        out = {}
        for lv in doc["levels"]:
            for s in lv["samples"]:
                r = dict(zip(fields, s, strict=True))
                key = (r["agent"], r["session"], r["cycle"], r["turn"])
                out[key] = (r["input"], r["asked"], r["output"], r["status"])
        return out

    a, b = turns(spread), turns(alone)
    common = a.keys() & b.keys()
    assert len(common) >= 8
    assert {k: a[k] for k in common} == {k: b[k] for k in common}


def _fleet(corpus: Path, engine_url: str) -> RayFleet:
    settings = Settings(corpus=str(corpus), wait="fixed:0.01", epoch=RealClock().now(), seed=3)
    factory = ClientFactory(url=engine_url + "/v1", model="sim-instant")
    return RayFleet(settings, factory, "auto")


async def test_a_shard_that_dies_is_an_error_and_keeps_what_was_measured(
    ray: Any, ray_cluster: Any, corpus: Path, engine_url: str
) -> None:
    fleet = _fleet(corpus, engine_url)
    await fleet.start()
    try:
        clock = RealClock()
        await fleet.begin(0, 4, clock.now(), 0.0)
        kept = []
        while {s.agent % 2 for s in kept} != {0, 1}:  # samples from both shards
            await asyncio.sleep(0.05)  # the pump delivers every 0.2 s; nothing else to await
            kept.extend(fleet.take())
        ray.kill(fleet._actors[1], no_restart=True)
        with pytest.raises(ReplayError, match=r"Ray shard 1 on node .* died"):
            kept.extend(await fleet.finish(clock.now(), 0.0))
        kept.extend(fleet.take())
        assert {s.agent % 2 for s in kept} == {0, 1}
        with pytest.raises(ReplayError, match="Ray shard 1"):
            await fleet.begin(1, 4, clock.now(), 0.0)
    finally:
        await fleet.close()


async def test_ctrl_c_keeps_the_partial_level_from_every_node(
    ray_cluster: Any, corpus: Path, engine_url: str
) -> None:
    fleet = _fleet(corpus, engine_url)
    await fleet.start()
    clock = RealClock()
    record = Run(simulated=False, endpoint=engine_url, api="openai-chat", model="sim-instant",
                 corpus=Corpus(path=str(corpus), domain="test", sessions=4, turns=16,
                               block_size=64, tokenizer="cl100k_base", recorded_api="openai-chat",
                               ideal_cache_ratio=0.0),
                 run_tag="", seed=3)
    plan = Plan(tiers=[Tier(floor=1.0, ttft=10.0)], timing=QUICK.scaled(10), max_agents=4,
                resolution=parse_resolution("25%"), agents=4, max_error_rate=0.05)
    both = asyncio.Event()
    seen: set[int] = set()
    take = fleet.take

    def watched() -> list[Sample]:  # the level loop collects samples through `take`
        out = take()
        seen.update(s.agent % 2 for s in out)
        if seen == {0, 1}:
            both.set()
        return out

    fleet.take = watched  # type: ignore[method-assign]
    task = asyncio.create_task(run_levels(record, fleet, plan, epoch=fleet.settings.epoch,
                                          clock=clock))
    try:
        await both.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        await fleet.close()
    assert record.interrupted
    (level,) = record.levels
    assert level.partial
    assert {s.agent % 2 for s in level.samples} == {0, 1}
    assert [n.agents for n in fleet.nodes(len(record.levels))] == [[2], [2]]


def test_ray_is_refused_where_the_run_is_one_process(corpus: Path) -> None:
    result = CliRunner().invoke(app, [str(corpus), "--forecast", "--ray", "auto", *FAST])
    assert result.exit_code == 1
    assert "--forecast runs in one process on virtual time; drop --ray" in result.output


def test_ctrl_c_in_a_replay_process_joined_with_a_bare_ray_flag_saves_every_node(
    ray_cluster: Any, corpus: Path, engine_url: str, tmp_path: Path
) -> None:
    """As a user runs it: a separate `replay` process joins the cluster (`--ray` alone reads
    RAY_ADDRESS, as `ray start` and KubeRay leave it), and Ctrl-C during the window saves the
    partial level with both nodes' agents and the node list; exit 130, no traceback."""
    out = tmp_path / "int.json"
    cmd = [sys.executable, "-c", "from replay.cli import main; main()", str(corpus),
           "--endpoint", engine_url, "--agents", "4", "--json", str(out), "--quick",
           "--duration", "600", "--warmup", "0.2", "--warmup-max", "600", "--wait",
           "fixed:0.01", "--ray"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "RAY_ADDRESS": ray_cluster.address}
    code, output = signal_at(cmd, env, "4 agents  window", signal.SIGINT, hang_s=120)
    assert code == 130, output
    assert "Traceback" not in output
    doc = json.loads(out.read_text())
    assert doc["interrupted"] is True
    (level,) = doc["levels"]
    assert level["partial"] is True
    fields = doc["sample_fields"]
    assert {s[fields.index("agent")] for s in level["samples"]} == {0, 1, 2, 3}
    assert [n["agents"] for n in doc["nodes"]] == [[2], [2]]
    assert doc["settings"]["ray"] == "auto"


async def test_a_node_that_dies_mid_level_ends_the_run_and_keeps_what_was_measured(
    ray: Any, ray_cluster: Any, corpus: Path, engine_url: str
) -> None:
    """A third raylet joins, takes its share of agents, and is killed while they stream: the
    run ends with an error naming that node, and the samples collected before are kept."""
    doomed = ray_cluster.add_node(**SMALL, resources={"node_c": 1})
    ray_cluster.wait_for_nodes()
    fleet = _fleet(corpus, engine_url)
    try:
        await fleet.start()
        (gone,) = [j for j, p in enumerate(fleet.places) if p.node == doomed.node_id]
        clock = RealClock()
        await fleet.begin(0, 6, clock.now(), 0.0)
        kept: list[Sample] = []
        while {s.agent % 3 for s in kept} != {0, 1, 2}:  # samples from every shard
            await asyncio.sleep(0.05)  # the pump delivers every 0.2 s; nothing else to await
            kept.extend(fleet.take())
        ray_cluster.remove_node(doomed)
        address = fleet.places[gone].address
        with pytest.raises(ReplayError, match=rf"Ray shard {gone} on node {address} .* died"):
            kept.extend(await fleet.finish(clock.now(), 0.0))
        kept.extend(fleet.take())
        assert {s.agent % 3 for s in kept} == {0, 1, 2}
        assert [n.agents for n in fleet.nodes()] == [[2], [2], [2]]
    finally:
        await fleet.close()
        if any(n is doomed for n in ray_cluster.worker_nodes):
            ray_cluster.remove_node(doomed)


def test_the_kuberay_example_runs_replay_with_options_it_has() -> None:
    import shlex

    import typer.main
    import yaml

    doc = yaml.safe_load((Path(__file__).parents[2] / "docs" / "kuberay.yaml").read_text())
    argv = shlex.split(doc["spec"]["entrypoint"])
    assert argv[0] == "replay"
    known = {o for p in typer.main.get_command(app).params for o in (*p.opts, *p.secondary_opts)}
    used = {a for a in argv if a.startswith("--")}
    assert used <= known, used - known
    assert "--ray" in used
    head = doc["spec"]["rayClusterSpec"]["headGroupSpec"]["rayStartParams"]
    assert head["num-cpus"] == "0"  # the driver's pod runs no shard
