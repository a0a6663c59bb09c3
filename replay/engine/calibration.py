"""Calibration: fit the roofline's efficiency factors to public measurements, and backtest them.

The points live in `catalog/points.toml` (source URL, date, setup, workload, measured value).
`predict(point, factors)` runs the roofline at the point's steady state; `fit(points)` finds the
factors that minimise the squared log error (a small deterministic Nelder-Mead in numpy);
`backtest()` refits with each point left out and reports that point's error, so every figure is
an out-of-sample error. AA-AgentPerf's agents-per-MW results are a held-out validation set and
must never become points here.
"""

from __future__ import annotations

import functools
import math
import statistics
import tomllib
from collections.abc import Callable, Sequence

import msgspec
import numpy as np

from replay.engine.catalog import CATALOG_DIR
from replay.engine.catalog import gpu as catalog_gpu
from replay.engine.catalog import model as catalog_model
from replay.engine.errors import CatalogError
from replay.engine.roofline import Factors, Roofline, Setup, build, kv_capacity_tokens

OFFLINE_MAX_BATCH = 2048
"""Most sequences one attention rank runs at once in a throughput (MLPerf Offline) run."""
FITTED = ("compute", "memory", "layer_s", "fp4", "moe", "amd")
"""The factors the fit moves (in log space), in this order."""
START = Factors(compute=0.6, memory=0.7, layer_s=50e-6, fp4=0.65, moe=0.3, amd=0.6)


class Point(msgspec.Struct, frozen=True, kw_only=True):
    """One public measurement of one serving setup."""

    id: str
    source: str
    summary: str = ""
    published: str
    gpu: str
    model: str
    kind: str
    """offline (MLPerf Offline: batch limited by KV capacity) or concurrency (closed-loop users)."""
    metric: str
    """output_per_gpu, total_per_gpu (input + output tok/s per GPU) or interactivity
    (output tok/s per user)."""
    measured: float
    system_gpus: int
    engine_gpus: int
    tp: int
    ep: int = 1
    dp_attention: bool = False
    precision: str
    kv_precision: str = "fp8"
    isl: float
    osl: float
    concurrency: int = 0
    decode_only: bool = False
    approx: bool = False
    workload_note: str = ""
    software: str = ""
    note: str = ""

    def setup(self) -> Setup:
        return Setup(gpu=self.gpu, model=self.model, gpus=self.engine_gpus, tp=self.tp,
                     ep=self.ep, dp_attention=self.dp_attention, precision=self.precision,
                     kv_precision=self.kv_precision)


class Result(msgspec.Struct, frozen=True, kw_only=True):
    """One point's out-of-sample prediction in the backtest."""

    id: str
    gpu: str
    model: str
    metric: str
    measured: float
    predicted: float
    error: float
    """predicted / measured - 1 with this point left out of the fit."""
    source: str


class Backtest(msgspec.Struct, frozen=True, kw_only=True):
    """Leave-one-out errors of every calibration point, and the factors fitted on all of them."""

    points: list[Result]
    median_abs_error: float
    max_abs_error: float
    factors: Factors
    gpus: list[str]
    models: list[str]


_METRICS = ("output_per_gpu", "total_per_gpu", "interactivity")


@functools.cache
def load_points() -> tuple[Point, ...]:
    """Every calibration point in `catalog/points.toml`."""
    path = CATALOG_DIR / "points.toml"
    try:
        with path.open("rb") as fh:
            raw = tomllib.load(fh).get("point", [])
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CatalogError(f"{path}: cannot read the calibration points: {exc}") from None
    points = []
    for i, item in enumerate(raw):
        try:
            p = msgspec.convert(item, Point)
        except msgspec.ValidationError as exc:
            raise CatalogError(f"{path.name}: point {i + 1}: {exc}") from None
        if p.kind not in ("offline", "concurrency") or p.metric not in _METRICS:
            raise CatalogError(f"{path.name}: point {p.id}: kind {p.kind!r}/metric {p.metric!r} "
                               f"unknown (kinds offline, concurrency; metrics {_METRICS})")
        if not p.source.startswith("https://"):
            raise CatalogError(f"{path.name}: point {p.id}: source must be an https URL")
        points.append(p)
    ids = [p.id for p in points]
    if len(set(ids)) != len(ids):
        raise CatalogError(f"{path.name}: duplicate point ids")
    return tuple(points)


def _steady_inputs(batch: int, isl: float, osl: float,
                   decode_only: bool) -> tuple[int, int, int, float]:
    """(prefill tokens, decoding sequences, KV tokens, prefill pairs) of a mean steady step."""
    kv = int(batch * (isl + osl / 2))
    if decode_only:
        return 0, batch, kv, 0.0
    prefill = batch * isl / osl
    return int(round(prefill)), batch, kv, prefill * isl / 2


def steady_step(r: Roofline, batch: int, isl: float, osl: float, decode_only: bool) -> float:
    """Mean step time with `batch` sequences in flight, prompts prefilled in chunks alongside."""
    return r.step_time(*_steady_inputs(batch, isl, osl, decode_only))


def _batch(point: Point, setup: Setup) -> int:
    """Sequences in flight at the point's steady state (KV capacity caps it)."""
    cap = kv_capacity_tokens(setup)
    if point.kind == "offline":
        ranks = point.engine_gpus if point.dp_attention else 1
        batch = min(OFFLINE_MAX_BATCH * ranks, int(cap // (point.isl + point.osl)))
    else:
        batch = min(point.concurrency, int(cap // (point.isl + point.osl)))
    if batch < 1:
        raise CatalogError(f"point {point.id}: one sequence does not fit the KV cache")
    return batch


def _per_step(point: Point, batch: int) -> float:
    """The metric times the step time: what one step is worth in the point's unit."""
    if point.metric == "interactivity":
        return 1.0
    out = batch / point.engine_gpus
    if point.metric == "total_per_gpu":
        return out * (point.isl + point.osl) / point.osl
    return out


def predict(point: Point, factors: Factors) -> float:
    """What the roofline under `factors` says the point's metric is."""
    setup = point.setup()
    r = build(setup, factors)
    batch = _batch(point, setup)
    t = steady_step(r, batch, point.isl, point.osl, point.decode_only)
    return _per_step(point, batch) / t


class _Design:
    """The points' steady steps split into parts that scale with single factors, so one loss
    evaluation over all points is a few numpy operations (the fit runs it tens of thousands
    of times). `predict` is the reference; a test checks both agree."""

    def __init__(self, points: Sequence[Point]) -> None:
        unit = Factors(compute=1.0, memory=1.0, layer_s=0.0, fp4=1.0, moe=1.0, amd=1.0,
                       collective_s=START.collective_s)
        rows = []
        for p in points:
            setup = p.setup()
            r = build(setup, unit)
            batch = _batch(p, setup)
            prefill, seqs, kv, pairs = _steady_inputs(batch, p.isl, p.osl, p.decode_only)
            parts = r.parts(prefill + seqs, kv, seqs, pairs + kv)
            g = catalog_gpu(p.gpu)
            fp4 = p.precision == "fp4" and "fp4" in g.flops
            rows.append((*parts, r.layers, g.vendor == "amd", catalog_model(p.model).moe, fp4,
                         _per_step(p, batch), p.measured))
        a = np.array(rows, dtype=float).reshape(len(rows), 10)
        self.matmuls, self.attention, self.memory, self.comm, self.layers = a[:, :5].T
        self.amd, self.moe, self.fp4 = (a[:, 5:8] > 0).T
        self.per_step, self.measured = a[:, 8], a[:, 9]

    def loss(self, theta: np.ndarray, mask: np.ndarray) -> float:
        f = _factors(theta)
        boost = np.where(self.amd, f.amd, 1.0) * np.where(self.moe, f.moe, 1.0)
        eff_attention = np.minimum(1.0, f.compute * boost)
        eff_matmuls = eff_attention * np.where(self.fp4, f.fp4, 1.0)
        compute = self.matmuls / eff_matmuls + self.attention / eff_attention
        memory = self.memory / min(1.0, f.memory)
        step = self.layers * f.layer_s + np.maximum(compute, memory) + self.comm
        residual = np.log(self.per_step[mask] / step[mask] / self.measured[mask])
        return float(residual @ residual) + _penalty(f)


def _penalty(f: Factors) -> float:
    # Efficiencies above 1 are unphysical: penalise rather than clip, so the fit stays smooth.
    total = 0.0
    for eff in (f.compute, f.memory, f.fp4, f.moe, f.compute * f.amd):
        if eff > 1:
            total += 10 * math.log(eff) ** 2
    return total


def _factors(theta: np.ndarray) -> Factors:
    values = dict(zip(FITTED, np.exp(theta).tolist(), strict=True))
    return Factors(**values)


def _nelder_mead(fn: Callable[[np.ndarray], float], x0: np.ndarray, *, step: float = 0.4,
                 iterations: int = 400, tol: float = 1e-7) -> np.ndarray:
    """Deterministic Nelder-Mead minimisation (standard coefficients)."""
    n = len(x0)
    simplex = [x0] + [x0 + step * np.eye(n)[i] for i in range(n)]
    values = [fn(x) for x in simplex]
    for _ in range(iterations):
        order = np.argsort(values)
        simplex = [simplex[i] for i in order]
        values = [values[i] for i in order]
        if values[-1] - values[0] < tol:
            break
        centroid = np.mean(simplex[:-1], axis=0)
        worst = simplex[-1]
        reflected = centroid + (centroid - worst)
        fr = fn(reflected)
        if fr < values[0]:
            expanded = centroid + 2 * (centroid - worst)
            fe = fn(expanded)
            simplex[-1], values[-1] = (expanded, fe) if fe < fr else (reflected, fr)
        elif fr < values[-2]:
            simplex[-1], values[-1] = reflected, fr
        else:
            contracted = centroid + 0.5 * (worst - centroid)
            fc = fn(contracted)
            if fc < values[-1]:
                simplex[-1], values[-1] = contracted, fc
            else:
                best = simplex[0]
                simplex = [best] + [best + 0.5 * (x - best) for x in simplex[1:]]
                values = [values[0]] + [fn(x) for x in simplex[1:]]
    return simplex[int(np.argmin(values))]


def fit(points: Sequence[Point], *, _design: _Design | None = None,
        _mask: np.ndarray | None = None) -> Factors:
    """The factors that best explain `points` (least squares in log space)."""
    if not points:
        raise CatalogError("nothing to fit: no calibration points")
    design = _design if _design is not None else _Design(points)
    mask = _mask if _mask is not None else np.ones(len(points), dtype=bool)
    x0 = np.log(np.array([getattr(START, name) for name in FITTED]))

    def loss(theta: np.ndarray) -> float:
        return design.loss(theta, mask)

    best = _nelder_mead(loss, x0)
    best = _nelder_mead(loss, best, step=0.1)  # restart: Nelder-Mead stalls on ridges
    return _factors(best)


@functools.cache
def fitted() -> Factors:
    """The factors fitted on every calibration point (what modelled engines use)."""
    return fit(load_points())


@functools.cache
def backtest() -> Backtest:
    """Refit with each point left out; every error is out of sample."""
    points = load_points()
    design = _Design(points)
    results = []
    for i, p in enumerate(points):
        mask = np.ones(len(points), dtype=bool)
        mask[i] = False
        f = fit(points, _design=design, _mask=mask)
        pred = predict(p, f)
        results.append(Result(id=p.id, gpu=p.gpu, model=p.model, metric=p.metric,
                              measured=p.measured, predicted=pred,
                              error=pred / p.measured - 1, source=p.source))
    errors = [abs(r.error) for r in results]
    return Backtest(
        points=results, median_abs_error=statistics.median(errors),
        max_abs_error=max(errors), factors=fitted(),
        gpus=sorted({p.gpu for p in points}), models=sorted({p.model for p in points}),
    )


def stored_text(result: Backtest) -> bytes:
    """The `catalog/calibration.json` content for `result` (stable, human-diffable)."""
    from replay.engine.setups import Stored

    summary = Stored(factors=result.factors, median_abs_error=result.median_abs_error,
                     max_abs_error=result.max_abs_error, points=len(result.points),
                     gpus=result.gpus, models=result.models)
    return msgspec.json.format(msgspec.json.encode(summary), indent=2) + b"\n"

