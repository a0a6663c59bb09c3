"""Result records: raw per-request samples, per-level summaries, the run, and their JSON.

Samples are the mergeable unit: shards (worker processes, later machines) concatenate their
samples and `summarize` recomputes every figure from them. JSON output is `Run` encoded by
msgspec; `samples` rows are arrays in `Sample`'s field order (`SAMPLE_FIELDS`).
"""

from __future__ import annotations

import msgspec

SCHEMA = 1


class Sample(msgspec.Struct, array_like=True, frozen=True):
    """One request. Times are seconds since the run's epoch (CLOCK_MONOTONIC); `first` is -1
    when no token arrived; `planned` is when the turn was due (its wait over). Server counts
    are -1 when not reported. `error` is "" for a success. `cut` marks a request still
    streaming when its level stopped: `end` is the cut-off and `output` the tokens so far, so
    its speed so far counts, and without a first token its TTFT is at least `end − start`."""

    agent: int
    session: int
    cycle: int
    turn: int
    planned: float
    start: float
    first: float
    end: float
    input: int
    asked: int
    output: int
    server_input: int
    server_cached: int
    ideal_cached: int
    status: int
    error: str
    cut: bool = False
    recorded: float = -1.0
    """The turn's recorded duration (seconds, from the corpus), -1 when unknown."""
    gap: float = -1.0
    """Longest pause between two token events (seconds), -1 when unknown."""


SAMPLE_FIELDS: tuple[str, ...] = Sample.__struct_fields__


class TierVerdict(msgspec.Struct, kw_only=True):
    """A level judged against one tier, plus the per-agent view."""

    floor: float
    ttft: float
    passed: bool
    reason: str = ""
    inconclusive: bool = False
    """The level could not judge the tier (`Level.problem` says why): neither a pass nor a
    failure; the search measures it again or leaves the tier unresolved."""
    agent_share: float | None = None
    """Share of the level's agents whose own window requests met the tier."""
    speed: float | None = None
    """Output speed at the tier's speed statistic (P25 unless --slo-stat says otherwise)."""
    ttft_at: float | None = None
    """TTFT at the tier's TTFT statistic (P95 unless --slo-stat says otherwise)."""
    limits: dict[str, float] = {}
    """Each further constraint's figure by its name (e.g. `P95 e2e ≤ 60 s`)."""
    attainment: float | None = None
    """SLO attainment: share of the window's requests that met the tier on their own (speed
    at least the floor, TTFT at most the ceiling; failed requests miss)."""


class Power(msgspec.Struct, kw_only=True):
    source: str
    mode: str
    mean_w: float | None
    energy_j: float | None = None
    coverage: float = 0.0
    readings: int = 0
    ok: bool = False
    problem: str = ""
    j_per_token: float | None = None
    """Joules per output token of the window's requests (mean W × window ÷ tokens)."""


class Fidelity(msgspec.Struct, kw_only=True):
    """How faithfully the window's requests reproduced the corpus turns they replayed."""

    input_checked: int = 0
    """Requests whose server reported prompt tokens."""
    input_ratio: float | None = None
    """Σ server prompt tokens ÷ Σ recorded input tokens (chat templates add a few tokens)."""
    input_max_dev: float | None = None
    """Largest per-request |server − recorded| ÷ recorded."""
    output_asked: int = 0
    output_received: int = 0
    output_ratio: float | None = None
    output_exact_share: float | None = None
    cache_server: float | None = None
    """Server-reported cached ÷ prompt tokens (usage fields)."""
    cache_counters: float | None = None
    """vLLM prefix-cache hits ÷ queries over the window (server /metrics), when exposed."""
    cache_ideal: float | None = None
    """What an infinite prefix cache would hit for the same requests (block structure)."""
    lag_p50: float | None = None
    lag_p95: float | None = None
    lag_max: float | None = None
    """Schedule lag: how late turns started after their wait was over (seconds)."""


class Load(msgspec.Struct, kw_only=True):
    """The server's own /metrics over a level's steady window: counter deltas, gauge means and
    peaks (polled about once a second), GPU telemetry where an exporter reports it. None
    where the server has no such metric."""

    source: str
    polls: int = 0
    prefix_queries: float | None = None
    prefix_hits: float | None = None
    cache_hit_ratio: float | None = None
    prompt_tokens: float | None = None
    generation_tokens: float | None = None
    prompt_tps: float | None = None
    generation_tps: float | None = None
    running_mean: float | None = None
    running_max: float | None = None
    waiting_mean: float | None = None
    waiting_max: float | None = None
    kv_usage_mean: float | None = None
    """KV-cache usage, 0–1."""
    kv_usage_max: float | None = None
    cache_hit_rate_mean: float | None = None
    """A server's own hit-rate gauge (SGLang), 0–1."""
    cache_hit_rate_max: float | None = None
    gpu_util_mean: float | None = None
    """GPU utilisation, percent (mean over GPUs)."""
    gpu_util_max: float | None = None
    gpu_mem_used_mib_mean: float | None = None
    gpu_mem_used_mib_max: float | None = None
    sm_clock_mhz_mean: float | None = None
    sm_clock_mhz_max: float | None = None


class Level(msgspec.Struct, kw_only=True):
    """One measured agent count: the window's figures, verdicts and raw samples."""

    agents: int
    index: int
    started: float
    window_start: float
    window_end: float
    warmup_s: float
    stable: bool
    short: bool = False
    """The window ended before it held `--min-requests` requests."""
    partial: bool = False
    """Interrupted (Ctrl-C) before the window was complete."""
    problem: str = ""
    """Why the level's figures cannot answer a tier (not stable, short window, no completed
    request, interrupted); "" when they can. A level failed for its error rate has none."""
    stopped: str = ""
    """Why the level stopped before its window's end (e.g. the error rate over the limit)."""
    requests: int = 0
    completed: int = 0
    cut: int = 0
    """Window requests still streaming when the drain ended (judged on what they delivered)."""
    errors: int = 0
    error_rate: float = 0.0
    errors_by_kind: dict[str, int] = {}
    output_tokens: int = 0
    p25_speed: float | None = None
    p50_speed: float | None = None
    p50_ttft: float | None = None
    p95_ttft: float | None = None
    agents_measured: int = 0
    verdicts: list[TierVerdict] = []
    power: Power | None = None
    fidelity: Fidelity = msgspec.field(default_factory=Fidelity)
    samples: list[Sample] = []
    arrivals: int = 0
    """Open population (`--arrivals`): sessions that arrived during the level; `agents` is
    then the mean number in flight over the window."""
    in_flight: list[tuple[float, int]] = []
    """Open population: (seconds since the run's epoch, agents in flight) through the level."""
    server: Load | None = None
    """The server's own figures over the window (its /metrics), when it has them."""
    bottleneck: str = ""
    """Why the level failed a tier, in one line from the figures (empty when all passed)."""


STATUSES = ("measured", "at limit", "unresolved", "not measured")
"""`TierResult.status`: bracketed to the resolution; passed at the largest level tried (the
capacity may be higher); a pass without a failure close enough above it; no level passed and
none failed at 1 agent (so there is no answer, not 0)."""


class TierResult(msgspec.Struct, kw_only=True):
    """The answer for one tier: the most agents that met it, and its cost in power. Only a
    level that could judge (stable, enough completed requests) answers a tier."""

    floor: float
    ttft: float
    speed_pct: float = 25.0
    """The percentile of per-request speeds checked against `floor` (`p25_speed` holds it)."""
    ttft_pct: float = 95.0
    """The percentile of TTFTs checked against `ttft` (`p95_ttft` holds it)."""
    limits: list[str] = []
    """Further constraints the tier carries (`P95 e2e ≤ 60 s`, `P95 task ≤ 1.5×`)."""
    agents: int | None
    """Most agents that met the tier; 0 when one agent failed it; None when not measured."""
    status: str = "measured"
    """One of `STATUSES`."""
    reason: str = ""
    """Why the status is not `measured` (e.g. the lowest level tried failed)."""
    capped: bool = False
    """Passed at --max-agents: the capacity may be higher."""
    resolved: bool = True
    interval: tuple[int, int | None] | None = None
    """The capacity lies in [low, high]: `agents`, and one below the lowest level that failed
    every time it was measured (None: no level failed)."""
    repeats: int = 0
    """How many times the level that gave `agents` was judged (see --repeats)."""
    level: int | None = None
    """Index into `levels` of the level that gave `agents`."""
    mean_w: float | None = None
    agents_per_mw: float | None = None
    j_per_token: float | None = None
    p25_speed: float | None = None
    p95_ttft: float | None = None
    cache_hit_ratio: float | None = None
    errors: int = 0
    agent_share: float | None = None
    attainment: float | None = None
    """Share of the level's window requests that met this tier on their own."""


class Corpus(msgspec.Struct, kw_only=True):
    path: str
    domain: str
    sessions: int
    """Every session with turns, sub-agents included."""
    turns: int
    block_size: int
    tokenizer: str
    recorded_api: str
    ideal_cache_ratio: float
    sub_agents: int = 0
    """Sessions replayed inside their top-level session's agent (not dealt on their own)."""


class Node(msgspec.Struct, kw_only=True):
    """A Ray node that ran shards of the run (`--ray`)."""

    id: str
    address: str
    shards: int
    agents: list[int] = []
    """Agents it ran at each level, in `levels` order."""
    clock_offset_ms: float = 0.0
    """Its monotonic clock minus the driver's, taken off its samples' times."""
    clock_error_ms: float = 0.0
    """Bound on the offset's error: half the best probe's round trip."""


class Modelled(msgspec.Struct, kw_only=True):
    """What a forecast ran against: the engine model and the topology, and how long it took."""

    engine: str
    """Engine profile name."""
    engine_description: str
    gpus_per_engine: int
    topology: str
    """One line: engines, router, link, GPUs in all."""
    replicas: int
    router: str
    prefill_replicas: int = 0
    decode_replicas: int = 0
    kv_gbps: float | None = None
    gpus: int
    block_size: int
    """Prefix-cache block (tokens): the corpus's, so cache hits are whole corpus blocks."""
    modelled_s: float = 0.0
    """Virtual seconds the whole forecast covered."""
    wall_s: float = 0.0
    """Wall seconds it took (the one figure that varies between identical forecasts)."""


class Server(msgspec.Struct, kw_only=True):
    """What replay learned about the server at start (`replay.probe`) and what it did about it."""

    dialect: str
    detected: bool = True
    """Recognised from the server (`--dialect auto`), not named by the user."""
    sends: list[str] = []
    """Extension parameters sent with every request."""
    refused: list[str] = []
    """Extension parameters the server answered 400 to (not sent)."""
    lost: list[str] = []
    """The guarantees lost to refused parameters, one line each."""
    template: int | None = None
    """Tokens the server's chat template adds to a one-message request (text APIs)."""
    template_source: str = ""
    """How `template` was found: "tokenize" (the server's /tokenize), "usage" (a probe
    request's usage), or "" (not measured: the corpus's role marker is assumed)."""
    tokenizer_ratio: float | None = None
    """Server tokens ÷ corpus-tokenizer tokens of the same text (1.0: same tokenizer)."""
    block_size: int | None = None
    """The server's KV-cache block size, from its /metrics."""
    metrics: bool = False
    """The server publishes Prometheus load figures replay reads."""
    reset: str | None = None
    """The cold-cache path asked before each level (`--reset-cache`)."""
    endpoints: list[str] = []
    """Every replica's base URL (agents are spread over them, sticky per agent)."""


class Run(msgspec.Struct, kw_only=True):
    """Everything one `replay` run measured (the `--json` document)."""

    schema: int = SCHEMA
    simulated: bool
    profile: str | None = None
    endpoint: str
    api: str
    model: str
    corpus: Corpus
    run_tag: str
    seed: int
    settings: dict[str, object] = {}
    time_scale: float = 1.0
    """Wall seconds per reported second: below 1 when the simulated engine ran faster than
    modelled; every time, speed and energy is reported in modelled seconds."""
    short_windows: bool = False
    interrupted: bool = False
    power_source: str = "none"
    tiers: list[TierResult] = []
    levels: list[Level] = []
    notes: list[str] = []
    sample_fields: tuple[str, ...] = SAMPLE_FIELDS
    forecast: bool = False
    """True when the figures come from a modelled engine in virtual time (`--forecast`)."""
    modelled: Modelled | None = None
    arrivals: str | None = None
    """Open population (`--arrivals`): how sessions arrived; None for N closed-loop agents."""
    server: Server | None = None
    """What replay learned about a real server at start (None for the simulated engine)."""
    nodes: list[Node] = []
    """The Ray nodes the agents ran on (`--ray`); empty for a run on this machine."""


_json = msgspec.json.Encoder()


def dumps(run: Run) -> bytes:
    """`run` as indented JSON."""
    return msgspec.json.format(_json.encode(run), indent=1)


def loads(data: bytes) -> Run:
    return msgspec.json.decode(data, type=Run)
