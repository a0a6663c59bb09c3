"""The `replay` command end to end on loopback: one level, a small search, server errors,
unreachable endpoints, bad corpora, the simulated engine subprocess, `replay serve`, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp import web
from fixtures_replay import LIVE, FlakyServer, app_in_thread, invoke, make_corpus, signal_at

from replay.cli import main

FAST = [*LIVE, "--min-requests", "5", "--wait", "fixed:0.01"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("cli") / "tiny.zst", sessions=4, turns=4)


def test_one_level_against_an_endpoint_writes_the_documented_json(
    corpus: Path, engine_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "r.json"
    code, text = invoke(str(corpus), "--endpoint", engine_url + "/v1", "--agents", "3",
                        "--json", str(out), *FAST)
    assert code == 0, text
    doc = json.loads(out.read_text())
    assert doc["simulated"] is False
    assert doc["schema"] == 1
    assert doc["model"] == "sim-instant"
    assert {"endpoint", "api", "corpus", "run_tag", "settings", "tiers", "levels", "notes",
            "sample_fields", "interrupted", "power_source"} <= doc.keys()
    *_, level = doc["levels"]  # a level too short or unstable to judge is measured again
    assert level["agents"] == 3
    assert level["completed"] >= 5
    assert level["errors"] == 0
    assert {"p25_speed", "p95_ttft", "verdicts", "fidelity", "samples", "window_start",
            "window_end", "error_rate", "errors_by_kind", "power"} <= level.keys()
    fid = level["fidelity"]
    assert fid["input_ratio"] == pytest.approx(1.0, abs=0.01)
    assert fid["output_ratio"] == 1.0
    assert fid["cache_ideal"] > 0.3
    assert fid["cache_counters"] is not None
    assert len(level["samples"][0]) == len(doc["sample_fields"])
    assert [t["agents"] for t in doc["tiers"]] == [3, 3, 3]
    assert "simulated" not in text.split("replay")[1].split("\n")[0]


def test_a_search_over_tiers_finishes_with_every_tier_answered(
    corpus: Path, engine_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "s.json"
    code, text = invoke(str(corpus), "--endpoint", engine_url, "--api", "completions",
                        "--slo", "1:10", "--slo", "1000000:10", "--max-agents", "4",
                        "--json", str(out), *FAST)
    assert code == 0, text
    doc = json.loads(out.read_text())
    # a level too unstable to judge (a loaded machine) is measured again: the ladder is the same
    assert list(dict.fromkeys(lv["agents"] for lv in doc["levels"])) == [1, 2, 4]
    assert [(t["agents"], t["capped"]) for t in doc["tiers"]] == [(4, True), (0, False)]
    assert doc["levels"][0]["fidelity"]["input_ratio"] == 1.0  # token ids are exact
    assert "1 tok/s" in text


def test_server_errors_stop_the_level_and_fail_the_run(corpus: Path, tmp_path: Path) -> None:
    srv = FlakyServer(fail_every=3, status=500)
    out = tmp_path / "e.json"
    with app_in_thread(srv.app()) as url:
        code, text = invoke(str(corpus), "--endpoint", url + "/v1", "--agents", "2",
                            "--json", str(out), "--power", f"dcgm:{url}/metrics",
                            "--header", "X-Team: legal", "--affinity-header", "X-Session-Id",
                            *FAST)
    assert all(h["x-team"] == "legal" for h in srv.headers)
    assert len({h["x-session-id"] for h in srv.headers}) >= 2
    assert code == 1, text
    assert text.strip().splitlines()[-1].startswith("error: nothing usable was measured")
    assert "stopped early" in text
    doc = json.loads(out.read_text())
    (level,) = doc["levels"]
    assert all(t["errors"] == level["errors"] for t in doc["tiers"])  # the table shows them
    assert level["errors"] > 0
    assert level["errors_by_kind"].keys() == {"http_500"}
    assert level["error_rate"] > 0.05
    assert not any(v["passed"] for v in level["verdicts"])
    assert "error rate" in level["verdicts"][0]["reason"]
    assert level["power"]["mean_w"] == pytest.approx(500.0)


def test_json_output_is_checked_before_the_run_and_never_overwritten_silently(
    corpus: Path, engine_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "r.json"
    out.write_text("earlier run")
    code, text = invoke(str(corpus), "--endpoint", engine_url, "--agents", "1", "--json",
                        str(out), *FAST)
    assert code == 1
    assert text.startswith(f"error: --json {out}: already exists; pass --force")
    assert "level 1" not in text  # refused before measuring anything
    assert out.read_text() == "earlier run"
    code, text = invoke(str(corpus), "--endpoint", engine_url, "--agents", "1", "--json",
                        str(out), "--force", *FAST)
    assert code == 0, text
    assert json.loads(out.read_text())["levels"]
    code, text = invoke(str(corpus), "--json", str(tmp_path / "no" / "r.json"), *FAST)
    assert code == 1
    assert "no such directory" in text


def test_models_http_error_is_reported_as_such(corpus: Path) -> None:
    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=500, text="upstream [bold]down[/]")

    app_ = web.Application()
    app_.router.add_get("/v1/models", broken)
    with app_in_thread(app_) as url:
        code, text = invoke(str(corpus), "--endpoint", url + "/v1", *FAST)
    assert code == 1
    assert "/v1/models answered HTTP 500: upstream [bold]down[/]; pass --model" in text


@pytest.mark.parametrize(
    ("server", "cause"),
    [(FlakyServer(cut=True), "nothing usable was measured"),
     (FlakyServer(die_after=4), "the endpoint stopped answering")],
    ids=["streams-cut-mid-way", "killed-mid-run"],
)
def test_a_failing_server_fails_the_run_loudly(
    corpus: Path, tmp_path: Path, server: FlakyServer, cause: str
) -> None:
    out = tmp_path / "f.json"
    with app_in_thread(server.app()) as url:
        code, text = invoke(str(corpus), "--endpoint", url + "/v1", "--agents", "2",
                            "--json", str(out), *FAST)
    assert code == 1, text
    last = text.strip().splitlines()[-1]
    assert last.startswith(f"error: {cause}")
    assert "stopped early" in last
    doc = json.loads(out.read_text())  # what was measured is still saved
    (level,) = doc["levels"]
    assert level["stopped"]
    assert level["errors"] > 0
    assert all(t["errors"] == level["errors"] for t in doc["tiers"])


def test_unreachable_endpoint_is_one_line_error(corpus: Path) -> None:
    code, text = invoke(str(corpus), "--endpoint", "http://127.0.0.1:9/v1", *FAST)
    assert code == 1
    assert text.startswith("error: cannot reach http://127.0.0.1:9/v1")
    assert text.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [(["missing.zst"], "no such corpus file"),
     (["--slo", "fast"], "--slo 'fast'"),
     (["--slo", "agentload[nvml]"], "--slo 'agentload[nvml]'"),  # printed literally
     (["--wait", "later"], "unknown wait policy"),
     (["--power", "sim", "--endpoint", "http://127.0.0.1:9"], "--power sim"),
     (["--api-key-env", "AGENTLOAD_TEST_UNSET_KEY"], "AGENTLOAD_TEST_UNSET_KEY"),
     (["--header", "novalue"], "NAME:VALUE"),
     (["--api", "grpc"], "--api 'grpc'"),
     (["--resolution", "0%"], "--resolution"),
     (["--time-scale", "0.5", "--endpoint", "http://127.0.0.1:9"], "simulated engine only")],
)
def test_bad_input_is_one_line_error(corpus: Path, args: list[str], message: str) -> None:
    if args[0] != "missing.zst":
        args = [str(corpus), *args]
    code, text = invoke(*args)
    assert code == 1
    assert text.startswith("error: ")
    assert message in text


def test_not_a_corpus_is_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.zst"
    bad.write_bytes(b"hello")
    code, text = invoke(str(bad))
    assert code == 1
    assert "not a zstd file" in text


def test_without_endpoint_the_simulated_engine_runs_and_says_so(
    corpus: Path, tmp_path: Path
) -> None:
    out = tmp_path / "sim.json"
    code, text = invoke(str(corpus), "--profile", "instant", "--agents", "2", "--json", str(out),
                        "--workers", "2", "--time-scale", "1", *FAST)
    assert code == 0, text
    assert "simulated engine" in text
    doc = json.loads(out.read_text())
    assert doc["simulated"] is True
    assert doc["profile"] == "instant"
    assert doc["short_windows"] is True
    assert any("simulated" in n and "model error: no modelled time" in n for n in doc["notes"])
    *_, level = doc["levels"]  # a level too short or unstable to judge is measured again
    assert {s[0] for s in level["samples"]} == {0, 1}  # both workers' agents reported
    assert level["power"]["source"] == "sim"
    assert level["power"]["ok"]
    assert doc["tiers"][0]["agents_per_mw"] > 0


def test_replay_serve_dispatches_to_the_engine(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["serve", "--help"])
    assert exc.value.code == 0
    assert "--profile" in capsys.readouterr().out


@pytest.mark.timeout(900)  # a starved machine is slow to start and to save; not a speed check
@pytest.mark.parametrize(
    ("sig", "phase"),
    [(signal.SIGINT, "window"), (signal.SIGTERM, "window"), (signal.SIGTERM, "warm-up")],
)
def test_a_stop_signal_saves_what_was_measured(
    corpus: Path, engine_url: str, tmp_path: Path, sig: signal.Signals, phase: str
) -> None:
    """Ctrl-C and SIGTERM (what `timeout` and container runtimes send) stop a run the same
    way: partial results saved, no traceback, exit 130. The signal is sent once the progress
    line of `phase` is printed (an event, not a sleep)."""
    out = tmp_path / "int.json"
    cmd = [sys.executable, "-c", "from replay.cli import main; main()", str(corpus),
           "--endpoint", engine_url, "--agents", "2", "--json", str(out), "--quick",
           "--duration", "600", "--warmup", "0.2", "--warmup-max", "600"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    code, output = signal_at(cmd, env, f"2 agents  {phase}", sig, hang_s=600)
    assert code == 130, output
    assert "Traceback" not in output
    assert "interrupted" in output
    doc = json.loads(out.read_text())
    assert doc["interrupted"] is True
    (level,) = doc["levels"]
    assert level["partial"] is True
    if phase == "window":
        assert level["samples"]


def test_python_dash_m_replay_runs_the_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "replay", "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "--endpoint" in done.stdout
    assert "replay serve" in done.stdout  # the other commands are findable from --help


def test_a_damaged_corpus_is_an_error_with_the_message_validate_gives(
    corpus: Path, tmp_path: Path, cut_in_last_frame: Callable[[Path, Path], Path]
) -> None:
    from corpus.validate import validate

    cut = cut_in_last_frame(corpus, tmp_path / "cut.zst")
    (message,) = validate(cut).problems
    code, text = invoke(str(cut), *FAST)
    assert code == 1
    assert text == f"error: {message}\n"



def test_allow_damaged_replays_the_intact_frames_and_says_what_was_lost(
    damaged_corpus: Path,
) -> None:
    from replay.errors import ReplayError
    from replay.workload import Workload

    cut = damaged_corpus
    with pytest.raises(ReplayError, match="is truncated"):
        Workload.load(cut)
    workload = Workload.load(cut, allow_damaged=True)
    assert len(workload.sessions) == 4  # the cut frame held only the last Close
    assert workload.damage is not None
    assert "4 sessions before it are intact" in workload.damage
