"""The `--gpu/--model/--gpus/--tp/…` options that name a modelled serving setup, shared by
`replay serve` and `replay engines` (and any command that builds an engine from the catalogues).
"""

from __future__ import annotations

from typing import Annotated

import typer

from replay.engine.errors import CatalogError
from replay.engine.profiles import Profile
from replay.engine.setups import parse, profile


class SetupOptions:
    """typer option types (use as annotations: `gpu: SetupOptions.Gpu = None`)."""

    Gpu = Annotated[
        str | None,
        typer.Option(help="Model this catalogue GPU (h100, h200, b200, b300, gb200-nvl72, "
                     "gb300-nvl72, mi300x, mi325x, mi355x); needs --model. See 'replay engines'."),
    ]
    Model = Annotated[
        str | None,
        typer.Option(help="Catalogue model to serve (deepseek-v3, llama-3.1-70b, …); needs --gpu."),
    ]
    Gpus = Annotated[int, typer.Option(help="GPUs in one engine (a TP/EP group).", min=1)]
    Tp = Annotated[int | None, typer.Option(help="Tensor parallelism (default: --gpus).", min=1)]
    Ep = Annotated[int, typer.Option(help="Expert parallelism (MoE models).", min=1)]
    DpAttention = Annotated[
        bool, typer.Option(help="Attention data-parallel over the GPUs (each holds its own "
                           "sequences' KV), as SGLang/TRT-LLM DP attention.")
    ]
    Precision = Annotated[str, typer.Option(help="Weight precision: bf16, fp8, fp4.")]
    KvPrecision = Annotated[str, typer.Option(help="KV-cache precision: bf16, fp8, fp4.")]
    SpecDecode = Annotated[
        str | None,
        typer.Option(help="Speculative decoding METHOD:DRAFT:ACCEPTANCE, e.g. mtp:3:0.7."),
    ]
    MaxBatch = Annotated[
        int | None,
        typer.Option(help="Most sequences running at once (default 256 per attention rank).",
                     min=1),
    ]


def setup_profile(
    gpu: str | None, model: str | None, *, gpus: int = 1, tp: int | None = None, ep: int = 1,
    dp_attention: bool = False, precision: str = "fp8", kv_precision: str = "fp8",
    spec_decode: str | None = None, max_batch: int | None = None,
) -> Profile | None:
    """The modelled profile the options name, None when neither --gpu nor --model is given.

    Raises CatalogError (a ValueError) for half a setup or one the catalogues cannot model."""
    if gpu is None and model is None:
        return None
    if gpu is None or model is None:
        raise CatalogError("--gpu and --model go together: name both (see 'replay engines')")
    setup = parse(gpu, model, gpus=gpus, tp=tp, ep=ep, dp_attention=dp_attention,
                  precision=precision, kv_precision=kv_precision, spec_decode=spec_decode)
    return profile(setup, max_batch=max_batch)
