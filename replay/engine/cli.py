"""`replay serve`: run the simulated inference engine as an HTTP server.

The first stdout line is exactly `listening on http://HOST:PORT` (flushed), so a parent process
started with `--port 0` can read the chosen port.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Annotated

import typer
from rich.console import Console

from replay.engine.profiles import PROFILES, Profile
from replay.engine.server import resolve
from replay.engine.server import serve as serve_engine
from replay.engine.setup_options import SetupOptions, setup_profile

app = typer.Typer(
    add_completion=False,
    help="Run agentload's simulated OpenAI/Anthropic-compatible inference engine.",
)
_err = Console(stderr=True)


async def _run(
    host: str, port: int, profile: str | Profile, max_queue: int | None, seed: int,
    time_scale: float,
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with serve_engine(
        profile, host=host, port=port, max_queue=max_queue, seed=seed, time_scale=time_scale
    ) as running:
        print(f"listening on {running.url}", flush=True)
        p = running.engine.profile
        print(f"profile {p.name}: {p.description}", flush=True)
        print(f"model error: {p.error_band}", flush=True)
        print(
            f"simulated engine: OpenAI at {running.url}/v1, Anthropic at {running.url}, "
            f"metrics at {running.url}/metrics",
            flush=True,
        )
        await stop.wait()


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(help="TCP port; 0 picks a free one (printed on the first line).")
    ] = 8000,
    profile: Annotated[
        str, typer.Option(help=f"Engine profile: {', '.join(sorted(PROFILES))}, or a "
                          "profile .json file.")
    ] = "h100",
    max_queue: Annotated[
        int | None,
        typer.Option(
            help="Most requests waiting for room in the batch; more get 429 (default: none)."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for natural output lengths.")] = 0,
    time_scale: Annotated[
        float, typer.Option(help="Multiply every modelled duration (0.1 = ten times faster).")
    ] = 1.0,
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
    """Serve the simulated engine until interrupted (Ctrl-C or SIGTERM).

    With --gpu and --model it models that serving setup (a calibrated roofline; see
    `replay engines`); otherwise it runs the --profile shortcut."""
    try:
        chosen: str | Profile = profile
        modelled = setup_profile(gpu, model, gpus=gpus, tp=tp, ep=ep, dp_attention=dp_attention,
                                 precision=precision, kv_precision=kv_precision,
                                 spec_decode=spec_decode, max_batch=max_batch)
        if modelled is not None:
            chosen = modelled
        resolve(chosen)
        if max_queue is not None and max_queue < 0:
            raise ValueError(f"--max-queue must be >= 0, got {max_queue}")
        if time_scale < 0:
            raise ValueError(f"--time-scale must be >= 0, got {time_scale}")
        asyncio.run(_run(host, port, chosen, max_queue, seed, time_scale))
    except ValueError as exc:
        _err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    except OSError as exc:
        _err.print(f"[red]error:[/] cannot listen on {host}:{port}: {exc.strerror or exc}")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        pass
