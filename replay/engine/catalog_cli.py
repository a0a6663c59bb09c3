"""`replay engines`: what the engine model can stand for, how far off it is, and one setup's view.

    replay engines                          GPUs, models and the calibration's error band
    replay engines --backtest [--json]      refit with each point left out; every point's error
    replay engines --backtest --save        …and store the fit in catalog/calibration.json
    replay engines --backtest --markdown    …as the README's table
    replay engines --gpu h200 --model deepseek-v3 --gpus 8 …   one modelled setup's figures
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import msgspec
import typer
from rich.console import Console
from rich.table import Table

from replay.engine import calibration
from replay.engine.catalog import PRECISIONS, load_gpus, load_models
from replay.engine.errors import CatalogError
from replay.engine.profiles import Profile
from replay.engine.setup_options import SetupOptions, setup_profile
from replay.engine.setups import CALIBRATION_FILE, accuracy

app = typer.Typer(add_completion=False, help="What the modelled engines can stand for, and "
                  "their published error.")
console = Console()
err_console = Console(stderr=True)


def _echo_json(data: Any) -> None:
    print(msgspec.json.format(msgspec.json.encode(data), indent=2).decode())


def _billions(v: float) -> str:
    return f"{v:.0f}B" if v >= 10 else f"{v:.1f}B"


def _value(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def _num(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:g}"


def _catalog_json() -> dict[str, Any]:
    gpus = {k: {"name": g.name, "vendor": g.vendor, "tflops": g.flops, "hbm_gb": g.hbm_gb,
                "hbm_tbps": g.hbm_tbps, "link_gbps": g.link_gbps, "scale_up": g.scale_up,
                "tdp_w": g.tdp_w, "idle_w": g.idle_w,
                "estimated": sorted(f for f, s in g.sources.items() if s.estimated)}
            for k, g in load_gpus().items()}
    models = {k: {"name": m.name, "attention": m.attention, "layers": m.layers,
                  "params_total_b": m.params_total_b, "params_active_b": m.params_active_b,
                  "experts": m.experts, "experts_active": m.experts_active,
                  "max_context": m.max_context,
                  "kv_bytes_per_token": {p: m.kv_bytes_per_token(p) for p in PRECISIONS},
                  "assumed": sorted(f for f, s in m.sources.items() if s.estimated)}
              for k, m in load_models().items()}
    return {"gpus": gpus, "models": models, "error_band": msgspec.to_builtins(accuracy())}


def _print_catalog() -> None:
    t = Table(title="GPUs: dense TFLOP/s per GPU (* = estimate)", box=None)
    for col in ("gpu", "bf16", "fp8", "fp4", "HBM GB", "TB/s", "link GB/s", "TDP W", "idle W"):
        t.add_column(col, justify="left" if col == "gpu" else "right", no_wrap=True)
    for k, g in load_gpus().items():
        idle = _num(g.idle_w) + ("*" if g.sources["idle_w"].estimated else "")
        t.add_row(k, _num(g.flops["bf16"]), _num(g.flops["fp8"]),
                  _num(g.flops["fp4"]) if "fp4" in g.flops else "-", _num(g.hbm_gb),
                  f"{g.hbm_tbps:g}", _num(g.link_gbps), _num(g.tdp_w), idle)
    console.print(t)
    t = Table(title="Models: L layers, KV kB/token in fp8 and bf16 (* = some figures assumed)",
              box=None, padding=(0, 1), pad_edge=False)
    for col in ("model", "attention", "L", "params", "active", "experts", "KV8", "KV16", "ctx"):
        t.add_column(col, justify="left" if col in ("model", "attention") else "right",
                     no_wrap=True)
    for k, m in load_models().items():
        star = "*" if any(s.estimated for s in m.sources.values()) else ""
        experts = f"{m.experts_active}/{m.experts}" if m.moe else "dense"
        ctx = m.max_context
        context = f"{ctx // 1048576}M" if ctx % 1048576 == 0 else f"{ctx // 1024}K"
        t.add_row(k + star, m.attention, str(m.layers), _billions(m.params_total_b),
                  _billions(m.params_active_b), experts,
                  f"{m.kv_bytes_per_token('fp8') / 1000:.0f}",
                  f"{m.kv_bytes_per_token('bf16') / 1000:.0f}", context)
    console.print(t)
    a = accuracy()
    console.print(f"error band: median {a.median:.0%}, max {a.max:.0%} over {a.points} public "
                  f"measurements ({a.gpus} GPU kinds, {a.models} models), {a.method}",
                  highlight=False)
    console.print("model a setup: replay serve --gpu GPU --model MODEL --gpus N [--tp --ep "
                  "--dp-attention --precision --kv-precision --spec-decode]", highlight=False)


_METRIC_LABELS = {"output_per_gpu": "out/GPU", "total_per_gpu": "all/GPU",
                  "interactivity": "tok/s/u"}


def _short_source(point_id: str) -> str:
    """`mlperf-5.1-0069-b200-…` -> `MLPerf 5.1-0069`; `inferencex-…-c64-…` -> `InferenceX c64`."""
    parts = point_id.split("-")
    if parts[0] == "mlperf":
        return f"MLPerf {parts[1]}-{parts[2]}"
    if parts[0] == "trtllm":
        return f"TRT-LLM {parts[-2]}/{parts[-1]}"
    conc = next((p for p in parts if p[:1] == "c" and p[1:].isdigit()), "")
    return f"InferenceX {conc}".strip()


def _markdown(result: calibration.Backtest) -> str:
    """The backtest as the README's Markdown table."""
    labels = {"output_per_gpu": "output tok/s/GPU", "total_per_gpu": "total tok/s/GPU",
              "interactivity": "tok/s/user"}
    rows = ["| source | GPU | model | metric | measured | modelled | error |",
            "|---|---|---|---|---:|---:|---:|"]
    for r in result.points:
        rows.append(f"| [{_short_source(r.id)}]({r.source}) | {r.gpu} | {r.model} | "
                    f"{labels[r.metric]} | {_value(r.measured)} | {_value(r.predicted)} | "
                    f"{r.error:+.0%} |")
    rows.append("")
    rows.append(f"Leave-one-out over {len(result.points)} points, {len(result.gpus)} GPU kinds, "
                f"{len(result.models)} models: median {result.median_abs_error:.1%}, "
                f"max {result.max_abs_error:.1%}.")
    return "\n".join(rows)


def _print_backtest(result: calibration.Backtest) -> None:
    t = Table(title="Leave-one-out backtest: each point predicted by a fit without it",
              box=None, padding=(0, 1), pad_edge=False)
    for col, side in (("source", "left"), ("gpu", "left"), ("model", "left"),
                      ("metric", "left"), ("measured", "right"), ("modelled", "right"),
                      ("error", "right")):
        t.add_column(col, justify=side, no_wrap=True)  # type: ignore[arg-type]
    for r in result.points:
        t.add_row(_short_source(r.id), r.gpu, r.model, _METRIC_LABELS[r.metric],
                  _value(r.measured), _value(r.predicted), f"{r.error:+.0%}")
    console.print(t)
    f = result.factors
    console.print(
        f"{len(result.points)} points, {len(result.gpus)} GPU kinds, {len(result.models)} models: "
        f"median |error| {result.median_abs_error:.1%}, max {result.max_abs_error:.1%}",
        highlight=False)
    console.print(
        f"factors (all points): compute {f.compute:.2f}, memory {f.memory:.2f}, "
        f"layer {f.layer_s * 1e6:.0f} µs, fp4 {f.fp4:.2f}, moe {f.moe:.2f}, amd {f.amd:.2f}",
        highlight=False)


def _setup_view(p: Profile) -> dict[str, Any]:
    speeds = {}
    for streams in (1, 16, 64, 256):
        if streams > p.max_batch:
            break
        t = p.step_time(0, streams, streams * 8192)
        speeds[str(streams)] = 1 / t if t > 0 else math.inf
    return {"profile": p.name, "description": p.description, "gpus": p.gpus,
            "kv_capacity_tokens": p.kv_capacity_tokens, "max_batch": p.max_batch,
            "max_context": p.max_context, "idle_power_w": p.idle_power_w,
            "max_power_w": p.max_power_w, "prefill_tok_s": 8192 / p.step_time(8192, 0, 0),
            "decode_tok_s_per_stream_at_8k_context": speeds, "error_band": p.error_band}


@app.command()
def engines(
    backtest: Annotated[
        bool, typer.Option(help="Refit with each calibration point left out and report every "
                           "point's error (takes some seconds).")
    ] = False,
    save: Annotated[
        bool, typer.Option(help=f"With --backtest: store the fit and its errors in "
                           f"{CALIBRATION_FILE.name} (what modelled engines use).")
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    markdown: Annotated[
        bool, typer.Option(help="With --backtest: the Markdown table the README shows.")
    ] = False,
    gpu: SetupOptions.Gpu = None,
    model: SetupOptions.Model = None,
    gpus: SetupOptions.Gpus = 1,
    tp: SetupOptions.Tp = None,
    ep: SetupOptions.Ep = 1,
    dp_attention: SetupOptions.DpAttention = False,
    precision: SetupOptions.Precision = "fp8",
    kv_precision: SetupOptions.KvPrecision = "fp8",
    spec_decode: SetupOptions.SpecDecode = None,
    max_batch: SetupOptions.MaxBatch = None,
) -> None:
    """List the GPUs and models the engine can model, with the calibration's error band."""
    try:
        if save and not backtest:
            raise CatalogError("--save stores a backtest: add --backtest")
        chosen = setup_profile(gpu, model, gpus=gpus, tp=tp, ep=ep, dp_attention=dp_attention,
                               precision=precision, kv_precision=kv_precision,
                               spec_decode=spec_decode, max_batch=max_batch)
        if chosen is not None:
            view = _setup_view(chosen)
            if json_out:
                _echo_json(view)
            else:
                for key, value in view.items():
                    console.print(f"{key}: {value}", highlight=False)
            return
        if backtest:
            result = calibration.backtest()
            if save:
                CALIBRATION_FILE.write_bytes(calibration.stored_text(result))
            if json_out:
                _echo_json(msgspec.to_builtins(result))
            elif markdown:
                print(_markdown(result))
            else:
                _print_backtest(result)
                if save:
                    console.print(f"wrote {CALIBRATION_FILE}", highlight=False)
            return
        if json_out:
            _echo_json(_catalog_json())
        else:
            _print_catalog()
    except (CatalogError, OSError) as exc:
        err_console.print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
