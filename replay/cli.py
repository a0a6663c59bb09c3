"""The `replay` command: `replay CORPUS [--endpoint URL]` finds how many agents a server keeps
inside each SLO tier, and at what power; `replay serve …` runs the simulated engine.

An agent is one concurrent top-level session: sub-agent sessions (a corpus session's `parent`)
are replayed concurrently inside the agent that replays their parent, never dealt on their own,
so "agents" counts top-level sessions running at once and a sub-agent's requests count as its
agent's (per-agent view).

The only module of the package that prints or exits. Library errors become one
`error: …` line and exit code 1; Ctrl-C prints and saves what was measured, then exits 130.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import secrets
import signal
import sys
import tempfile
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from corpus import CorpusError, outfile
from corpus.wire import apis
from replay import launch
from replay import results as res
from replay.arrivals import parse as parse_arrivals
from replay.config import RunConfig
from replay.dialect import CHOICES as DIALECT_CHOICES
from replay.endpoint import API_CHOICES, APIS, resolve_api
from replay.engine.errors import CatalogError
from replay.engine.server import resolve as resolve_profile
from replay.engine.setup_options import SetupOptions, setup_profile
from replay.errors import ConfigError, ReplayError, flagged
from replay.forecast import Topology
from replay.launch import unusable
from replay.level import FULL, QUICK, QUICK_TIME_SCALE, Timing
from replay.power import validate as validate_power
from replay.presets import choose as choose_slo
from replay.presets import describe as describe_presets
from replay.progress import View
from replay.report_cli import show
from replay.report_html import render as render_html
from replay.runner import Plan
from replay.search import parse_resolution
from replay.tiers import Tier
from replay.waits import parse as parse_wait
from replay.workload import Workload

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode="rich")
console = Console()
err_console = Console(stderr=True)


def _fail(message: str) -> typer.Exit:
    err_console.print(f"[red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(1)


def _headers(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition(":")
        if not sep or not key.strip():
            raise ConfigError(f"--header {pair!r}: expected NAME:VALUE")
        out[key.strip()] = value.strip()
    return out


def _write(path: Path, data: bytes, run_tag: str, what: str) -> None:
    """Write one output beside `path` and rename; if that fails, to the temporary directory,
    and say so (exit 1): a finished measurement is never lost."""
    try:
        outfile.write(path, data)
    except CorpusError as exc:
        spare = Path(tempfile.gettempdir()) / f"replay-{run_tag}{path.suffix}"
        try:
            outfile.write(spare, data)
        except CorpusError:
            raise _fail(f"{what} {exc}; the results are only in the table above") from None
        err_console.print(f"[red]error:[/] {what} {escape(str(exc))}; wrote it to {spare} "
                          "instead", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    console.print(f"wrote {path}", highlight=False)


def _report(record: res.Run, json_path: Path | None, html_path: Path | None = None) -> None:
    """Print the table, why tiers have the answer they have, the legend and the notes; then
    write --json and --html (each beside its target and renamed)."""
    show(record)
    if json_path is not None:
        _write(json_path, res.dumps(record), record.run_tag, "--json")
    if html_path is not None:
        _write(html_path, render_html(record).encode("utf-8"), record.run_tag, "--html")


@app.command(context_settings={"help_option_names": ["-h", "--help"]})
def replay(
    corpus: Annotated[Path, typer.Argument(help="Corpus file (.zst) to replay.")],
    endpoints: Annotated[
        list[str] | None,
        typer.Option("--endpoint", help="Server base URL, e.g. http://host:8000/v1. Without "
                     "it, replay starts the built-in simulated engine. Repeat it for several "
                     "replicas without a router: agents are spread over them, sticky per "
                     "agent."),
    ] = None,
    dialect: Annotated[
        str,
        typer.Option(help="Server family: auto (detect from /metrics and the URL), vllm, "
                     "sglang, trtllm, llamacpp, ollama, openai, anthropic. Decides which "
                     "extensions are tried, where load figures and cached tokens are read, "
                     "and how --reset-cache empties the cache."),
    ] = "auto",
    reset_cache: Annotated[
        bool,
        typer.Option(help="Ask the server for a cold prefix cache before each level (vLLM "
                     "/reset_prefix_cache with VLLM_SERVER_DEV_MODE=1, SGLang /flush_cache)."),
    ] = False,
    api: Annotated[
        str, typer.Option(help="Wire API: chat (OpenAI chat completions), completions "
                          "(token-id prompts: exact), anthropic (messages); aliases of "
                          "openai-chat, openai-completions, anthropic-messages.")
    ] = "chat",
    model: Annotated[
        str | None, typer.Option(help="Model name; default: the server's first /v1/models entry. "
                                 "With --forecast --gpu: the catalogue model the engine serves.")
    ] = None,
    api_key_env: Annotated[
        str | None,
        typer.Option(help="Environment variable holding the API key (default OPENAI_API_KEY, "
                     "or ANTHROPIC_API_KEY for --api anthropic)."),
    ] = None,
    header: Annotated[
        list[str] | None, typer.Option(help="Extra request header NAME:VALUE (repeatable).")
    ] = None,
    affinity_header: Annotated[
        str | None,
        typer.Option(help="Send the replayed session's id in this header so routers can pin "
                     "conversations."),
    ] = None,
    profile: Annotated[
        str, typer.Option(help="Simulated engine profile (h100, b200, instant).")
    ] = "h100",
    agents: Annotated[
        int | None,
        typer.Option(help="Measure this one level instead of searching. An agent is one "
                     "top-level session at a time; its sub-agents run concurrently inside it.",
                     min=1),
    ] = None,
    max_agents: Annotated[
        int, typer.Option(help="Largest level the search tries (concurrent top-level sessions).",
                          min=1)
    ] = 1024,
    slo: Annotated[
        list[str] | None,
        typer.Option(help="Tier FLOOR:TTFT (P25 tok/s : P95 seconds), repeatable; default "
                     "20:10, 60:5, 180:3."),
    ] = None,
    slo_preset: Annotated[
        str | None,
        typer.Option(help="Named tier table: aa-v4-pro (default), aa-v3.2, mlperf-interactive, "
                     "mlperf-server; 'list' (or 'replay presets') shows them with their sources."),
    ] = None,
    slo_stat: Annotated[
        str | None,
        typer.Option(help="Percentiles the tiers check, e.g. speed=p25,ttft=p95 (the default, "
                     "an approximation: AA does not publish its own); task=p95 for --task-slo."),
    ] = None,
    slo_limit: Annotated[
        list[str] | None,
        typer.Option(help="A further constraint on every tier, METRIC:pNN=BOUND with METRIC "
                     "speed, ttft, tpot (s per output token), e2e (request latency, s) or gap "
                     "(longest pause between tokens, s), e.g. e2e:p95=60 or gap:p99=0.5; "
                     "repeatable."),
    ] = None,
    task_slo: Annotated[
        str | None,
        typer.Option(help="Per-task constraint, e.g. 1.5x: each replayed session may take at "
                     "most 1.5 times its recorded time (P95 over sessions; waits count on both "
                     "sides)."),
    ] = None,
    resolution: Annotated[
        str | None,
        typer.Option(help="Stop bisecting at this resolution: 10% or a number of agents "
                     "(default 10%, quick mode 25%)."),
    ] = None,
    quick: Annotated[
        bool | None,
        typer.Option("--quick/--full", help="Short windows (default without --endpoint) or "
                     "full AA-style windows (default with --endpoint)."),
    ] = None,
    duration: Annotated[float | None, typer.Option(help="Steady window, seconds.")] = None,
    warmup: Annotated[
        float | None, typer.Option(help="Least warm-up after the ramp, seconds.")
    ] = None,
    warmup_max: Annotated[
        float | None, typer.Option(help="Longest warm-up before measuring anyway, seconds.")
    ] = None,
    min_requests: Annotated[
        int | None, typer.Option(help="Least completed requests per window (extends it).")
    ] = None,
    wait: Annotated[
        str,
        typer.Option(help="Wait before each turn: recorded, scale:X, cap:S, fixed:S, none, or "
                     "aa (simulated tool delays, log-normal 0.1–5 s, median 1 s)."),
    ] = "recorded",
    max_wait: Annotated[
        float,
        typer.Option(help="Clip every wait at this many seconds (0: no limit). Recorded human "
                     "think times run to hours; an agent idle longer than a level adds no load "
                     "but still counts as an agent."),
    ] = 300.0,
    seed: Annotated[int, typer.Option(help="Seed for the deal, waits and prompts.")] = 0,
    run_tag: Annotated[
        str | None,
        typer.Option(help="Mixed into every prompt block so runs can't hit each other's "
                     "prefix cache (default: random)."),
    ] = None,
    tokenizer: Annotated[
        str, typer.Option(help="Tokenizer the prompt text is built for.")
    ] = "cl100k_base",
    ignore_eos: Annotated[
        bool,
        typer.Option(help="Send ignore_eos/min_tokens so the server generates the recorded "
                     "output length (dropped automatically if the server rejects them)."),
    ] = True,
    power: Annotated[
        str | None,
        typer.Option(help="Power source: nvml, amdsmi, dcgm:URL, prometheus:URL[#metric], "
                     "cmd:'…', sim, none (default: sim when simulated, else none)."),
    ] = None,
    power_interval: Annotated[float, typer.Option(help="Power poll interval, seconds.")] = 0.5,
    metrics_url: Annotated[
        str | None,
        typer.Option(help="Prometheus URL with vLLM prefix-cache counters (default: the "
                     "server's /metrics; 'none' to skip)."),
    ] = None,
    max_error_rate: Annotated[
        float, typer.Option(help="A level whose error share exceeds this fails every tier.")
    ] = 0.05,
    timeout: Annotated[float, typer.Option(help="Per-request timeout, seconds.")] = 600.0,
    workers: Annotated[
        int, typer.Option(help="Worker processes the agents are sharded over.", min=1)
    ] = 1,
    ray: Annotated[
        str | None,
        typer.Option("--ray", metavar="ADDRESS",
                     help="Run the agents as Ray actors spread over a Ray cluster's nodes "
                     "('auto', or bare --ray: the cluster this machine joined with 'ray start'; "
                     "else HOST:PORT or ray://HOST:PORT); --workers is then shards per node. "
                     "Needs agentload[ray] here and on every node."),
    ] = None,
    time_scale: Annotated[
        float | None,
        typer.Option(help="Simulated engine only: run its model this many times real time "
                     "(0.1 = ten times faster) and report in modelled seconds (default 0.1 "
                     "in quick mode, else 1)."),
    ] = None,
    forecast_: Annotated[
        bool,
        typer.Option("--forecast", help="Run against the modelled engine (--profile, or --gpu "
                     "and --model) in virtual time instead of an endpoint: no sockets, no "
                     "waiting."),
    ] = False,
    replicas: Annotated[
        int, typer.Option(help="Forecast: identical engines behind --router.", min=1)
    ] = 1,
    router: Annotated[
        str, typer.Option(help="Forecast: round-robin, least-loaded, affinity (one engine per "
                          "conversation) or prefix (longest cached prefix).")
    ] = "round-robin",
    prefill_replicas: Annotated[
        int, typer.Option(help="Forecast: disaggregated prefill engines (with "
                          "--decode-replicas).", min=0)
    ] = 0,
    decode_replicas: Annotated[
        int, typer.Option(help="Forecast: disaggregated decode engines (with "
                          "--prefill-replicas).", min=0)
    ] = 0,
    kv_gbps: Annotated[
        float, typer.Option(help="Forecast: KV-transfer link between prefill and decode "
                            "engines, GB/s.")
    ] = 50.0,
    gpu: SetupOptions.Gpu = None,
    gpus: SetupOptions.Gpus = 1,
    tp: SetupOptions.Tp = None,
    ep: SetupOptions.Ep = 1,
    precision: SetupOptions.Precision = "fp8",
    arrivals: Annotated[
        str | None,
        typer.Option(help="Open population instead of N agents: recorded[:SCALE] (sessions at "
                     "their recorded start times, SCALE× compressed) or poisson:RATE (sessions "
                     "per second); each session replays once. Reports SLO attainment and "
                     "agents in flight over time."),
    ] = None,
    repeats: Annotated[
        int,
        typer.Option(help="Measure the levels either side of each tier's boundary this many "
                     "times and report the answer with an interval (a level passes only if it "
                     "passed every time).", min=1),
    ] = 1,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write every level's raw figures here.")
    ] = None,
    html: Annotated[
        Path | None, typer.Option(help="Write an offline HTML report (charts per level) here.")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace the --json and --html files if they exist.")
    ] = False,
    progress: Annotated[bool, typer.Option(help="Show live progress.")] = True,
    allow_damaged: Annotated[
        bool, typer.Option("--allow-damaged", help="Replay the intact frames of a damaged corpus.")
    ] = False,
) -> None:
    """Replay CORPUS against an endpoint and find the most agents each SLO tier allows.

    An agent is one top-level session at a time; its sub-agents run inside it, concurrently.

    Also: [bold]replay serve[/] (the simulated engine as an HTTP server; replay serve --help),
    [bold]replay presets[/] (named SLO tiers), [bold]replay report RUN.json[/] and
    [bold]replay compare A.json B.json[/] (saved runs).
    """
    endpoint = endpoints[0] if endpoints else None
    try:
        if api not in APIS and api not in (apis.BY_NAME[a].alias for a in APIS):
            raise ConfigError(f"--api {api!r}: expected one of {API_CHOICES}")
        api = resolve_api(api)
        if dialect not in DIALECT_CHOICES:
            raise ConfigError(f"--dialect {dialect!r}: expected one of "
                              f"{', '.join(DIALECT_CHOICES)}")
        if reset_cache and endpoint is None:
            raise ConfigError("--reset-cache needs --endpoint (the simulated engine starts "
                              "cold for every run)")
        if slo_preset == "list":
            for line in describe_presets():
                console.print(line, highlight=False, soft_wrap=True)
            raise typer.Exit(0)
        choice = choose_slo(preset=slo_preset, slo_specs=slo or [], stat=slo_stat,
                            limits=slo_limit or [], task=task_slo)
        tiers: list[Tier] = choice.tiers
        parse_wait(wait, limit=max_wait or None)
        is_quick = endpoint is None if quick is None else quick
        if time_scale is not None and endpoint is not None and time_scale != 1.0:
            raise ConfigError("--time-scale applies to the simulated engine only (no --endpoint)")
        if time_scale is not None and not 0 < time_scale <= 1:
            raise ConfigError(f"--time-scale {time_scale:g}: expected a value in (0, 1]")
        scale = time_scale if time_scale is not None else (
            QUICK_TIME_SCALE if is_quick and endpoint is None else 1.0)
        timing: Timing = (QUICK if is_quick else FULL).scaled(1 / scale)
        if duration is not None:
            timing = dataclasses.replace(timing, duration=duration,
                                         max_window=max(timing.max_window, 3 * duration))
        if warmup is not None:
            timing = dataclasses.replace(timing, warmup_min=warmup,
                                         warmup_max=max(timing.warmup_max, warmup))
        if warmup_max is not None:
            timing = dataclasses.replace(timing, warmup_max=warmup_max,
                                         warmup_min=min(timing.warmup_min, warmup_max))
        if min_requests is not None:
            timing = dataclasses.replace(timing, min_requests=min_requests)
        # stability compares two spans: both must fit in the longest warm-up
        timing = dataclasses.replace(
            timing, stable_span=min(timing.stable_span, timing.warmup_max / 2))
        res_spec = resolution or ("25%" if is_quick else "10%")
        plan = Plan(tiers=tiers, timing=timing, max_agents=max_agents,
                    resolution=parse_resolution(res_spec), agents=agents,
                    max_error_rate=max_error_rate, repeats=repeats)
        anthropic = api == apis.ANTHROPIC
        key_env = api_key_env or ("ANTHROPIC_API_KEY" if anthropic else "OPENAI_API_KEY")
        api_key = os.environ.get(key_env)
        if api_key_env and api_key is None:
            raise ConfigError(f"--api-key-env {api_key_env}: that variable is not set")
        extra_headers = _headers(header or [])
        topology = None
        engine = None
        if forecast_:
            if endpoint is not None:
                raise ConfigError("--forecast models the engine (--profile); drop --endpoint")
            if workers != 1 or ray is not None:
                raise ConfigError("--forecast runs in one process on virtual time; drop "
                                  f"{'--ray' if ray is not None else '--workers'}")
            if power not in (None, "sim"):
                raise ConfigError("--forecast takes power from the modelled engines; drop --power")
            if time_scale is not None:
                raise ConfigError("--forecast runs in virtual time; drop --time-scale")
            # in a forecast --model names the catalogue model the --gpu engine serves
            engine = setup_profile(gpu, model if gpu is not None else None, gpus=gpus, tp=tp,
                                   ep=ep, precision=precision)
            if engine is None:
                resolve_profile(profile)
            topology = Topology(replicas=replicas, router=router, prefill=prefill_replicas,
                                decode=decode_replicas, kv_gbps=kv_gbps)
        elif (replicas, router, prefill_replicas, decode_replicas, gpu) != (
                1, "round-robin", 0, 0, None):
            raise ConfigError("--replicas, --router, --prefill-replicas, --decode-replicas and "
                              "--gpu describe a modelled cluster: add --forecast")
        open_population = None
        if arrivals is not None:
            open_population = parse_arrivals(arrivals)
            if agents is not None:
                raise ConfigError("--arrivals sets the population; drop --agents")
            if workers != 1 or ray is not None:
                raise ConfigError("--arrivals runs in one worker process; drop "
                                  f"{'--ray' if ray is not None else '--workers'}")
        if power is not None:
            validate_power(power, simulated=endpoint is None)
        for flag, path in (("--json", json_out), ("--html", html)):
            if path is not None:
                try:
                    outfile.check(path, force=force)
                except CorpusError as exc:
                    raise ConfigError(f"{flag} {exc}") from None
        workload = Workload.load(corpus, allow_damaged=allow_damaged)
    except (ReplayError, CorpusError, CatalogError, ValueError) as exc:
        raise _fail(flagged(exc)) from None
    if workload.damage:
        err_console.print(f"[yellow]warning:[/] {escape(workload.damage)}", highlight=False,
                          soft_wrap=True)
    tag = run_tag if run_tag is not None else (
        f"forecast-{seed}" if forecast_ else secrets.token_hex(4))
    config = RunConfig(
        plan=plan, endpoints=tuple(endpoints or ()), profile=profile, api=api, model=model,
        api_key=api_key, headers=extra_headers, affinity_header=affinity_header,
        extras=ignore_eos, request_timeout=timeout, dialect=dialect, reset_cache=reset_cache,
        tag=tag, tokenizer=tokenizer, wait=wait, max_wait=max_wait or None, seed=seed,
        power=power, power_interval=power_interval, metrics_url=metrics_url, workers=workers,
        ray=ray, time_scale=1.0 if forecast_ else scale, quick=is_quick, resolution=res_spec,
        slo_notes=tuple(choice.notes), slo_settings=dict(choice.settings), topology=topology,
        engine=engine, arrivals=arrivals, open_population=open_population,
    )
    label = (f"forecast {engine.name if engine else profile}" if forecast_
             else f"simulated {profile}" if endpoint is None else endpoint)
    kept: list[res.Run] = []
    # SIGTERM stops a run like Ctrl-C: results so far are kept and the engine is shut down.
    # Outside the event loop it raises KeyboardInterrupt; inside, `_on_sigterm` turns it into a
    # cancellation of the run, so every level's cleanup runs (see `_on_sigterm`).
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with View(console, label=label, enabled=progress, simulated=endpoint is None,
                  stats=(tiers[0].speed_pct, tiers[0].ttft_pct)) as view:
            launch.run(config, workload, view, kept.append, wrap=_on_sigterm)
    except (KeyboardInterrupt, asyncio.CancelledError):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one stop is enough: finish saving
        if kept:
            kept[0].interrupted = True
            _report(kept[0], json_out, html)
        err_console.print("[yellow]interrupted[/]")
        raise typer.Exit(130) from None
    except ReplayError as exc:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if kept and kept[0].levels:
            _report(kept[0], json_out, html)
        raise _fail(flagged(exc)) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    _report(kept[0], json_out, html)
    cause = unusable(kept[0], max_error_rate)
    if cause:
        raise _fail(cause)


async def _on_sigterm(work: Coroutine[Any, Any, res.Run]) -> res.Run:
    """Run `work` with SIGTERM cancelling it (as asyncio does for Ctrl-C), so the runner keeps
    the partial level and every resource is closed before the CLI reports."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    stopping: list[bool] = []

    def stop() -> None:
        if not stopping:  # a second SIGTERM must not cut the cleanup of the first
            stopping.append(True)
            task.cancel()

    loop.add_signal_handler(signal.SIGTERM, stop)
    try:
        return await work
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
        signal.signal(signal.SIGTERM, signal.default_int_handler)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry: `replay serve …` runs the simulated engine, anything else replays."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "presets":
        for line in describe_presets():
            console.print(line, highlight=False, soft_wrap=True)
        return
    if args and args[0] in ("report", "compare"):
        from replay.report_cli import compare_app, report_app

        sub = report_app if args[0] == "report" else compare_app
        sub(args=args[1:], prog_name=f"replay {args[0]}")
        return
    if args and args[0] == "serve":
        try:
            from replay.engine.cli import app as engine_app
        except ImportError as exc:
            err_console.print(
                "[red]error:[/] the simulated engine (replay.engine) is not part of this build "
                f"({exc}); pass --endpoint URL to replay against a server"
            )
            raise SystemExit(1) from None
        engine_app(args=args[1:], prog_name="replay serve")
        return
    if args and args[0] == "engines":  # the engine model's catalogues and calibration
        from replay.engine.catalog_cli import app as engines_app

        engines_app(args=args[1:], prog_name="replay engines")
        return
    app(args=_bare_ray(args), prog_name="replay")


def _bare_ray(args: list[str]) -> list[str]:
    """`--ray` with no address (last, or followed by another option) means `--ray auto`."""
    out = list(args)
    for i, a in enumerate(out):
        if a == "--ray" and (i + 1 == len(out) or out[i + 1].startswith("-")):
            out.insert(i + 1, "auto")
            break
    return out
