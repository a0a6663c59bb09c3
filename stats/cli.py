"""`stats`: describe corpora and compare one with a reference workload (the only edge of this
package that prints or exits)."""

from __future__ import annotations

import importlib
import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from corpus import CorpusError, outfile
from stats import report_html, report_text
from stats.capacity import HALVES, Forecaster
from stats.checklist import Facility
from stats.comparison import MIN_SESSIONS, comparison, factor_for, finish
from stats.errors import StatsError
from stats.profiles import SCHEMA, Profile, description, profile
from stats.reference import resolve

app = typer.Typer(
    help="Statistics over agentload corpora: describe a workload, compare it with the "
    "AA-AgentPerf coding set.",
    no_args_is_help=True,
    add_completion=False,
)
out = Console()
err = Console(stderr=True)


def _clean(obj: Any) -> Any:
    """JSON-safe copy: NaN and infinities become null."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    return obj


def _json(doc: dict[str, Any]) -> None:
    out.out(json.dumps(_clean(doc), indent=2, ensure_ascii=False), highlight=False)


def _profile(
    path: str,
    *,
    name: str | None = None,
    quiet: bool = False,
    top_level: bool = False,
    allow_damaged: bool = False,
) -> Profile:
    if quiet:
        return profile(path, name=name, top_level=top_level, allow_damaged=allow_damaged)
    with err.status("") as status:
        return profile(
            path,
            name=name,
            progress=lambda msg: status.update(msg),
            top_level=top_level,
            allow_damaged=allow_damaged,
        )


AllowDamaged = Annotated[
    bool,
    typer.Option("--allow-damaged", help="Read the intact frames of a damaged corpus."),
]


def _check_html(path: Path | None, force: bool) -> None:
    """Refuse an --html path that would fail or overwrite silently, before any work."""
    if path is not None:
        try:
            outfile.check(path, force=force)
        except CorpusError as exc:
            raise StatsError(f"--html {exc}") from exc


def _write_html(path: Path, text: str) -> None:
    try:
        outfile.write(path, text.encode("utf-8"))
    except CorpusError as exc:
        raise StatsError(f"cannot write the HTML report: {exc}") from exc
    err.print(f"wrote {path}", highlight=False)


Force = Annotated[bool, typer.Option("--force", help="Replace the --html file if it exists.")]


def _forecaster(
    profile_name: str, *, replicas: int, gpu: str | None, model: str | None, gpus: int
) -> Forecaster:
    """replay's virtual-time forecast on `replicas` engines: the `profile_name` profile, or the
    catalogue `gpu` × `model` on `gpus` GPUs (stats.forecaster)."""
    try:
        mod = importlib.import_module("stats.forecaster")
    except ImportError as exc:
        raise StatsError(
            "the workload factor needs replay's virtual-time forecast (replay --forecast), "
            f"which this build lacks ({exc})"
        ) from exc
    engine: Forecaster = mod.Engine(
        mod.Setup(profile=profile_name, gpu=gpu, model=model, gpus=gpus, replicas=replicas)
    )
    return engine


def _fail(exc: StatsError) -> typer.Exit:
    err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
    return typer.Exit(1)


@app.command()
def describe(
    files: Annotated[
        list[str], typer.Argument(help="Corpus files (.zst); each is described on its own.")
    ],
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print the JSON document (schema agentload.stats.describe/1) instead of tables.",
        ),
    ] = False,
    html: Annotated[
        Path | None,
        typer.Option("--html", help="Also write an offline HTML report with charts here."),
    ] = None,
    cache_tokens: Annotated[
        int | None,
        typer.Option(
            "--cache-tokens",
            min=1,
            help="Report the hit ratio of an LRU prefix cache of this many tokens.",
        ),
    ] = None,
    top_level: Annotated[
        bool, typer.Option("--top-level", help="Leave sub-agent sessions out.")
    ] = False,
    force: Force = False,
    allow_damaged: AllowDamaged = False,
) -> None:
    """Describe workloads: tokens, reuse, waits, sessions, cache hit ratios, arrivals."""
    try:
        _check_html(html, force)
        items = []
        for f in files:
            p = _profile(f, quiet=as_json, top_level=top_level, allow_damaged=allow_damaged)
            items.append((p, description(p, cache_tokens=cache_tokens)))
        if as_json:
            _json({"schema": SCHEMA, "corpora": [d for _, d in items]})
        else:
            for i, (_, d) in enumerate(items):
                if i:
                    out.rule()
                out.print(report_text.describe(d))
        if html is not None:
            _write_html(html, report_html.describe(items))
    except StatsError as exc:
        raise _fail(exc) from exc


@app.command()
def compare(
    file: Annotated[str, typer.Argument(help="Your corpus file (.zst).")],
    reference: Annotated[
        str,
        typer.Option(
            "--reference",
            "-r",
            help="coding (AA-AgentPerf's published figures plus the bundled "
            "coding corpus synthesized from them), agentperf-published, claude-code, swe-bench, "
            "agentperf-local, support, example, or a corpus path.",
        ),
    ] = "coding",
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print the JSON document (schema agentload.stats.compare/1) instead of tables.",
        ),
    ] = False,
    html: Annotated[
        Path | None,
        typer.Option("--html", help="Also write an offline HTML report with charts here."),
    ] = None,
    top_level: Annotated[
        bool,
        typer.Option(
            "--top-level", help="Leave sub-agent sessions out (of yours and the reference)."
        ),
    ] = False,
    min_sessions: Annotated[
        int,
        typer.Option(
            "--min-sessions",
            min=1,
            help="Below this many sessions a verdict is 'too few sessions to judge'.",
        ),
    ] = MIN_SESSIONS,
    factor: Annotated[
        bool | None,
        typer.Option(
            "--factor/--no-factor",
            help="Lead with the workload factor: forecast both workloads on a modelled engine "
            "(seconds to a minute). Default: when this build has replay's forecast.",
        ),
    ] = None,
    engine_profile: Annotated[
        str,
        typer.Option(
            "--profile", help="Engine profile the factor is forecast on (replay's profiles)."
        ),
    ] = "h100",
    gpu: Annotated[
        str | None,
        typer.Option(
            "--gpu",
            help="Forecast on this catalogue GPU with the calibrated roofline (needs --model; "
            "see 'replay engines'); default: the --profile engine.",
        ),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="Catalogue model served (needs --gpu).")
    ] = None,
    gpus: Annotated[int, typer.Option("--gpus", min=1, help="GPUs in one engine (TP group).")] = 1,
    replicas: Annotated[
        int, typer.Option("--replicas", min=1, help="Engine replicas behind a router.")
    ] = 1,
    halves: Annotated[
        int,
        typer.Option(
            "--halves", min=0, help="Half-samples of sessions forecast for the factor's interval."
        ),
    ] = HALVES,
    why: Annotated[
        bool,
        typer.Option(
            "--why/--no-why",
            help="Forecast once per feature to rank what moves the factor.",
        ),
    ] = True,
    usd_per_gpu_hour: Annotated[
        float | None,
        typer.Option("--usd-per-gpu-hour", min=0, help="GPU price, for dollars per session."),
    ] = None,
    pue: Annotated[
        float, typer.Option("--pue", min=1.0, help="Facility PUE (facility agents/MW).")
    ] = Facility.pue,
    node_watts: Annotated[
        float,
        typer.Option(
            "--node-watts", min=0, help="CPU, memory, network and fan watts per GPU node."
        ),
    ] = Facility.node_watts,
    gpus_per_node: Annotated[
        int, typer.Option("--gpus-per-node", min=1, help="GPUs per node.")
    ] = Facility.gpus_per_node,
    force: Force = False,
    allow_damaged: AllowDamaged = False,
) -> None:
    """Compare a workload with a reference: the workload factor (agents per MW of yours ÷ the
    reference's, forecast on one modelled engine), why, the buyer's checklist, and verdicts
    per metric."""
    try:
        _check_html(html, force)
        ref = resolve(reference)
        mine = _profile(file, quiet=as_json, top_level=top_level, allow_damaged=allow_damaged)
        theirs = (
            _profile(ref.corpus, name=ref.name, quiet=as_json, top_level=top_level)
            if ref.corpus is not None
            else None
        )
        comp = comparison(mine, ref, theirs, min_sessions=min_sessions)
        answer = None
        engine = None
        if factor is None and ref.corpus is None:
            comp["notes"].append(
                f"no workload factor: reference '{ref.name}' has no corpus to forecast"
            )
        elif factor is not False:
            try:
                engine = _forecaster(
                    engine_profile, replicas=replicas, gpu=gpu, model=model, gpus=gpus
                )
            except StatsError as exc:
                if factor:  # asked for explicitly
                    raise
                comp["notes"].append(f"no workload factor: {exc}")
        if engine is not None:
            if as_json:
                answer = factor_for(file, ref, engine, halves=halves, why=why)
            else:
                with err.status("workload factor") as status:
                    answer = factor_for(
                        file,
                        ref,
                        engine,
                        halves=halves,
                        why=why,
                        progress=lambda msg: status.update(f"workload factor: {msg}"),
                    )
        if answer is not None and top_level:
            comp["notes"].append(
                "--top-level applies to the metrics; the workload factor forecasts whole session "
                "trees (sub-agents run inside their parent's agent, as replay does)"
            )
        comp = finish(
            comp,
            mine,
            answer,
            facility=Facility(pue=pue, node_watts=node_watts, gpus_per_node=gpus_per_node),
            usd_per_gpu_hour=usd_per_gpu_hour,
        )
        if as_json:
            _json(comp)
        else:
            out.print(report_text.compare(comp))
        if html is not None:
            _write_html(html, report_html.compare(comp, mine, theirs))
    except StatsError as exc:
        raise _fail(exc) from exc


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
