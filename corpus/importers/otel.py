"""Import OpenTelemetry GenAI spans exported as OTLP JSON (`*.json`: one export request per file,
or `*.jsonl`: one per line, as the collector's file exporter writes them).

Written from the OpenTelemetry GenAI semantic conventions (gen-ai-spans, gen-ai-agent-spans):
a model call is a span whose `gen_ai.operation.name` is `chat`, `text_completion` or
`generate_content`; tools run in `execute_tool` spans; agents in `invoke_agent` spans.

Sessions: a call belongs to its nearest `invoke_agent` ancestor; a call without one to its
`gen_ai.conversation.id`, else to its trace. An agent nested in another agent is a sub-agent:
its session's `parent` is the outer agent's.

Counts: `input` = `gen_ai.usage.input_tokens`, which the conventions say includes cached tokens;
an instrumentation that reports it without them (its cache read plus creation exceed it) is
summed. `usage_cached` = `gen_ai.usage.cache_read.input_tokens`, `output` =
`gen_ai.usage.output_tokens`, `stop` = the first `gen_ai.response.finish_reasons`. No content is
read (spans may carry `gen_ai.input.messages`; it is ignored): blocks are made up per session
so that each call reuses as many of the previous call's blocks as its cache read covers, and
every other block is new (nothing is shared between sessions).

Time: `t` = span start, `duration` = its length, `ttft` = `gen_ai.response.time_to_first_chunk`
(seconds), `wait` = start minus the previous call's end. The `execute_tool` spans of the session
that start between two calls are the first call's `tool_calls` (`gen_ai.tool.name`) and make the
next one come `after` a tool, as does a `tool_calls`/`tool_use` finish reason.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from corpus.anonymizer import Anonymizer
from corpus.errors import SourceError
from corpus.importers.base import Imported, Report, cache_blocks, expand, json_lines, where
from corpus.records import After, Turn
from corpus.wire import apis

DOMAIN = "unknown"
NOTES = (
    "otel: GenAI spans; input from gen_ai.usage; blocks made up from cache reads within a "
    "session (no content); t, wait and duration from span times"
)
CALLS = frozenset({"chat", "text_completion", "generate_content"})
_TOOL_STOPS = frozenset({"tool_calls", "tool_use", "function_call"})
_APIS = {
    "anthropic": apis.ANTHROPIC,
    "openai": apis.OPENAI_CHAT,
    "azure.ai.openai": apis.OPENAI_CHAT,
}


def native_block_size(sources: list[Path]) -> int | None:
    return None


def files(sources: list[Path]) -> list[Path]:
    return expand(sources, ("*.json", "*.jsonl"), "OTLP JSON trace exports (*.json, *.jsonl)")


def _value(v: Any) -> Any:
    if not isinstance(v, Mapping):
        return None
    for k in ("stringValue", "boolValue", "doubleValue"):
        if k in v:
            return v[k]
    if "intValue" in v:  # OTLP JSON writes 64-bit ints as strings
        try:
            return int(v["intValue"])
        except (TypeError, ValueError):
            return None
    if "arrayValue" in v:
        return [_value(x) for x in (v["arrayValue"] or {}).get("values") or []]
    return None


def _attrs(items: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for a in items or ():
        if isinstance(a, Mapping) and isinstance(a.get("key"), str):
            out[a["key"]] = _value(a.get("value"))
    return out


@dataclass
class _Span:
    id: str
    parent: str
    trace: str
    start: float
    end: float
    attrs: dict[str, Any]
    service: str = ""

    @property
    def op(self) -> str:
        return str(self.attrs.get("gen_ai.operation.name") or "")


def _spans(request: Any) -> Iterator[_Span]:
    if not isinstance(request, Mapping) or not isinstance(request.get("resourceSpans"), list):
        raise ValueError("expected an OTLP JSON export (an object with 'resourceSpans')")
    for rs in request["resourceSpans"]:
        res = _attrs(((rs or {}).get("resource") or {}).get("attributes"))
        for ss in (rs or {}).get("scopeSpans") or []:
            for s in (ss or {}).get("spans") or []:
                try:
                    start = int(s["startTimeUnixNano"]) / 1e9
                    end = int(s.get("endTimeUnixNano") or s["startTimeUnixNano"]) / 1e9
                except (KeyError, TypeError, ValueError):
                    continue  # a span without times can't be placed
                yield _Span(
                    id=str(s.get("spanId") or ""),
                    parent=str(s.get("parentSpanId") or ""),
                    trace=str(s.get("traceId") or ""),
                    start=start,
                    end=max(start, end),
                    attrs=_attrs(s.get("attributes")),
                    service=str(res.get("service.name") or ""),
                )


def _load(path: Path, report: Report) -> list[_Span]:
    out: list[_Span] = []
    if path.suffix == ".jsonl":
        with open(path, "rb") as f:
            for n, obj in json_lines(f, path, report):
                try:
                    out.extend(_spans(obj))
                except ValueError as exc:
                    report.skip(where(path, n), f"{exc}; line left out")
        return out
    try:
        data = msgspec.json.decode(path.read_bytes())
    except msgspec.DecodeError as exc:
        raise SourceError(f"{path}: expected OTLP JSON, found invalid JSON ({exc})") from exc
    try:
        return list(_spans(data))
    except ValueError as exc:
        raise SourceError(f"{path}: {exc}; is this an OTLP JSON trace export?") from exc


def _int(attrs: Mapping[str, Any], *names: str) -> int | None:
    for name in names:
        v = attrs.get(name)
        if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
            return v
    return None


@dataclass
class _Group:
    key: str
    parent: str | None = None
    calls: list[_Span] = field(default_factory=list)
    tools: list[_Span] = field(default_factory=list)
    agent: str = ""


def _group(spans: list[_Span]) -> list[_Group]:
    by_id = {(s.trace, s.id): s for s in spans}

    def agent_of(s: _Span) -> _Span | None:
        seen = 0
        cur = by_id.get((s.trace, s.parent))
        while cur is not None and seen < 1000:
            if cur.op == "invoke_agent":
                return cur
            cur = by_id.get((cur.trace, cur.parent))
            seen += 1
        return None

    groups: dict[str, _Group] = {}

    def group_for(s: _Span) -> _Group:
        agent = agent_of(s)
        if agent is not None:
            key = f"agent\x00{agent.trace}\x00{agent.id}"
            outer = agent_of(agent)
            parent = None if outer is None else f"agent\x00{outer.trace}\x00{outer.id}"
            name = str(agent.attrs.get("gen_ai.agent.name") or "")
        else:
            conv = s.attrs.get("gen_ai.conversation.id")
            key = f"conversation\x00{conv}" if conv else f"trace\x00{s.trace}"
            parent, name = None, ""
        g = groups.get(key)
        if g is None:
            g = groups[key] = _Group(key=key, parent=parent, agent=name or s.service)
        return g

    for s in spans:
        if s.op in CALLS:
            group_for(s).calls.append(s)
        elif s.op == "execute_tool":
            group_for(s).tools.append(s)
    for g in groups.values():
        g.calls.sort(key=lambda s: s.start)
        g.tools.sort(key=lambda s: s.start)
    return [g for g in groups.values() if g.calls]


def sessions(sources: list[Path], anon: Anonymizer, report: Report) -> Iterator[Imported]:
    spans: list[_Span] = []
    for path in files(sources):
        spans.extend(_load(path, report))
        report.bytes_read += path.stat().st_size
    groups = _group(spans)
    if not groups:
        return
    origin = min(g.calls[0].start for g in groups)
    # a parent agent's session before its sub-agents': ancestors start no later, and ties
    # keep nesting order (fewer ancestors first)
    depth = {g.key: 0 for g in groups}
    keys = {g.key: g for g in groups}
    for g in groups:
        p, d = g.parent, 0
        while p is not None and p in keys and d < 100:
            p, d = keys[p].parent, d + 1
        depth[g.key] = d
    for g in sorted(groups, key=lambda g: (g.calls[0].start, depth[g.key])):
        yield _session(g, origin, anon, report, keys)


def _session(
    g: _Group, origin: float, anon: Anonymizer, report: Report, keys: Mapping[str, _Group]
) -> Imported:
    first = g.calls[0]
    system = str(first.attrs.get("gen_ai.provider.name") or first.attrs.get("gen_ai.system") or "")
    out = Imported(
        start=first.start - origin,
        model=str(
            first.attrs.get("gen_ai.response.model")
            or first.attrs.get("gen_ai.request.model")
            or ""
        ),
        api=_APIS.get(system, ""),
        agent=g.agent,
        key=g.key,
        parent=g.parent if g.parent in keys else None,
    )
    prev: _Span | None = None
    prev_blocks: list[int] = []
    prev_stop: str | None = None
    for k, s in enumerate(g.calls):
        a = s.attrs
        raw = _int(a, "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")
        if raw is None:
            report.skip(
                g.key.split("\x00")[-1], f"span {s.id}: no gen_ai.usage.input_tokens; call left out"
            )
            continue
        read = (
            _int(a, "gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens")
            or 0
        )
        made = (
            _int(
                a,
                "gen_ai.usage.cache_creation.input_tokens",
                "gen_ai.usage.cache_creation_input_tokens",
            )
            or 0
        )
        total = raw + read + made if read + made > raw else raw
        blocks = cache_blocks(anon, prev_blocks, read, total)
        reasons = a.get("gen_ai.response.finish_reasons")
        stop = str(reasons[0]) if isinstance(reasons, list) and reasons else None
        tools = [
            t
            for t in g.tools
            if s.end <= t.start and (k + 1 >= len(g.calls) or t.start < g.calls[k + 1].start)
        ]
        after: After
        if prev is None:
            after, wait = "start", 0.0
        else:
            ran = [t for t in g.tools if prev.end <= t.start < s.start]
            after = "tool" if ran or (prev_stop or "") in _TOOL_STOPS else "user"
            wait = max(0.0, s.start - prev.end)
        ttft = a.get("gen_ai.response.time_to_first_chunk")
        turn = Turn(
            t=s.start - first.start,
            input=total,
            output=_int(a, "gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens") or 0,
            reasoning=_int(a, "gen_ai.usage.reasoning.output_tokens"),
            wait=wait,
            after=after,
            tool_calls=tuple(anon.tool(str(t.attrs.get("gen_ai.tool.name") or "")) for t in tools),
            ttft=float(ttft)
            if isinstance(ttft, int | float) and not isinstance(ttft, bool)
            else None,
            duration=s.end - s.start,
            usage_input=total,
            usage_cached=read,
            stop=stop,
        )
        out.turns.append((turn, blocks))
        prev, prev_blocks, prev_stop = s, blocks, stop
    return out
