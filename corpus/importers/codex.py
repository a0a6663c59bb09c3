"""Import Codex CLI rollouts (`~/.codex/sessions/YYYY/MM/DD/rollout-*.jsonl`, also `.jsonl.zst`;
a folder is searched recursively, single files work too).

A rollout is one JSON record per line, `{"timestamp", "type", "payload"}`: `session_meta` (the
system prompt as `base_instructions`, client version, a sub-agent's parent thread),
`response_item` (the Responses API items of the conversation, in the order they were sent),
`turn_context` (the model), `compacted` (the history replaced by a summary), and `event_msg`
(UI events; their copies of messages are ignored). A call's usage is a `token_usage_record`
(one per response, in newer clients), else a `token_count` event whose `total_token_usage`
moved (a repeat is a duplicate): its usage is the change of the total (`last_token_usage` when
there is no total), which stays right where `last_token_usage` is stale. The call's output is
the output items (assistant messages, tool calls, reasoning) since the previous call; its
request is every item before them.

Counts: `input` = `input_tokens` (OpenAI's count includes the cached part, kept as
`usage_cached`), `output` = `output_tokens`, `reasoning` = `reasoning_output_tokens`. A
reasoning item is encrypted: it stands for as many tokens as its call reasoned, and only until
the next user message, when the provider drops earlier reasoning from the context (so the
context shrinks there and the prefix breaks at the first dropped item). The tool schemas a
rollout lacks become stand-in blocks (`corpus.importers.hidden`) as long as the session's
smallest gap between usage and what is visible, shared by sessions of the same client version
as far as their first calls' cache reads show; what a call counts beyond that goes after the
previous reply.

Time: a request is sent when its last input item was written (else when the previous response
ended); it ends with its last output item; `wait` is the gap between the two.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zstandard

from corpus.anonymizer import Anonymizer
from corpus.errors import SourceError
from corpus.importers.base import (
    Imported,
    Report,
    after,
    expand,
    iso_seconds,
    json_lines,
    sent_at,
    where,
)
from corpus.importers.hidden import Hidden, Layout
from corpus.records import After, Turn
from corpus.wire import apis, linearize

DOMAIN = "coding"
AGENT = "codex"
NOTES = (
    "codex: input from provider usage; tool schemas the rollouts lack are stand-in blocks; "
    "reasoning counts until the next user message; t and wait from item timestamps (ms)"
)
OUTPUTS = frozenset(
    "reasoning function_call custom_tool_call local_shell_call web_search_call "
    "image_generation_call computer_call tool_search_call".split()
)
ITEMS = OUTPUTS | {
    "message",
    "function_call_output",
    "custom_tool_call_output",
    "local_shell_call_output",
    "computer_call_output",
    "tool_search_output",
}
_USAGE = ("input_tokens", "cached_input_tokens", "output_tokens", "reasoning_output_tokens")


def native_block_size(sources: list[Path]) -> int | None:
    return None


def files(sources: list[Path]) -> list[Path]:
    return expand(sources, ("*.jsonl", "*.jsonl.zst"), "Codex rollouts (*.jsonl, *.jsonl.zst)")


def _lines(path: Path) -> list[bytes]:
    data = path.read_bytes()
    if path.suffix == ".zst":
        try:
            with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)) as r:
                data = r.read()
        except zstandard.ZstdError as exc:
            raise SourceError(f"{path}: not a zstd file ({exc}); is this a Codex rollout?") from exc
    return data.splitlines()


def _usage(u: Any) -> tuple[int, ...] | None:
    if not isinstance(u, Mapping):
        return None
    out = []
    for k in _USAGE:
        v = u.get(k) or 0
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"'{k}' should be a whole number ≥ 0, found {v!r}")
        out.append(v)
    return tuple(out)


def _is_output(item: Mapping[str, Any]) -> bool:
    kind = item.get("type")
    return kind in OUTPUTS or (kind == "message" and item.get("role") == "assistant")


def _is_prompt(item: Mapping[str, Any]) -> bool:
    """A message the user typed (not the environment context Codex adds as a user message)."""
    if item.get("type") != "message" or item.get("role") != "user":
        return False
    text = linearize.segments(apis.OPENAI_RESPONSES, {"input": [item]})
    return not (text and text[0].startswith("<|user|><environment_context>"))


@dataclass
class _Call:
    ctx: int  # items in the request
    t_req: float
    end: float
    usage: tuple[int, ...]
    after: After
    tools: list[str] = field(default_factory=list)
    base: int = 0
    reasoning: list[int] = field(default_factory=list)  # indexes of its reasoning items


@dataclass
class _Rollout:
    items: list[dict[str, Any]] = field(default_factory=list)
    calls: list[_Call] = field(default_factory=list)
    key: str = ""
    parent: str | None = None
    version: str = ""
    model: str = ""
    # reading state
    base: int = 0
    out_from: int | None = None  # first output item since the latest call
    last_in: float | None = None
    prompt: bool = False
    total: tuple[int, ...] | None = None
    records: bool = False  # the file has token_usage_record lines: they are the calls
    ts: float = 0.0


def _parent(source: Any) -> str | None:
    if isinstance(source, Mapping):
        for k, v in source.items():
            if k in ("parent_thread_id", "forked_from_id") and isinstance(v, str):
                return v
            found = _parent(v)
            if found:
                return found
    return None


def _read(path: Path, report: Report) -> _Rollout:
    r = _Rollout(key=str(path))
    lines = _lines(path)
    r.records = any(b'"token_usage_record"' in ln for ln in lines)
    for n, rec in json_lines(lines, path, report):
        ts = iso_seconds(rec.get("timestamp"))
        if ts is not None:
            r.ts = ts
        kind, payload = rec.get("type"), rec.get("payload")
        if payload is None and kind in ITEMS:  # early rollouts: bare items
            kind, payload = "response_item", rec
        if not isinstance(payload, Mapping):
            if "instructions" in rec and not r.items:  # early rollouts: a bare meta line
                _meta(r, rec)
            continue
        try:
            _record(r, str(kind), payload)
        except ValueError as exc:
            report.skip(where(path, n), f"{exc}; record left out")
    return r


def _meta(r: _Rollout, meta: Mapping[str, Any]) -> None:
    r.key = str(meta.get("id") or r.key)
    r.version = str(meta.get("cli_version") or "")
    r.parent = _parent(meta.get("source")) or _parent(meta)
    base = meta.get("base_instructions")
    text = base.get("text") if isinstance(base, Mapping) else meta.get("instructions") or base
    if isinstance(text, str) and text:
        r.items.insert(0, {"type": "message", "role": "system", "content": text})


def _record(r: _Rollout, kind: str, p: Mapping[str, Any]) -> None:
    if kind == "session_meta":
        _meta(r, p)
    elif kind == "turn_context":
        r.model = r.model or str(p.get("model") or "")
    elif kind == "compacted":
        r.base = len(r.items)
        history = p.get("replacement_history")
        if isinstance(history, list) and history:
            r.items += [dict(i) for i in history if isinstance(i, Mapping)]
        else:
            r.items.append({"type": "message", "role": "user", "content": str(p.get("message"))})
        r.prompt = True
    elif kind == "response_item":
        item = dict(p)
        if _is_output(item):
            if r.out_from is None:
                r.out_from = len(r.items)
        else:
            r.last_in = r.ts
            r.prompt = r.prompt or _is_prompt(item)
        r.items.append(item)
    elif kind == "token_usage_record" and r.records:
        use = _usage(p.get("usage"))
        if use is not None:
            _call(r, use)
    elif kind == "event_msg" and p.get("type") == "token_count" and not r.records:
        info = p.get("info")
        if not isinstance(info, Mapping):
            return
        total, last = _usage(info.get("total_token_usage")), _usage(info.get("last_token_usage"))
        if total is not None and total == r.total:
            return  # a repeat of the previous count
        use = last
        if total is not None and r.total is not None:
            delta = tuple(a - b for a, b in zip(total, r.total, strict=True))
            if min(delta) >= 0:
                use = delta
        elif total is not None and last is None:
            use = total
        r.total = total
        if use is not None:
            _call(r, use)


def _call(r: _Rollout, use: tuple[int, ...]) -> None:
    start = r.out_from if r.out_from is not None else len(r.items)
    prev = r.calls[-1] if r.calls else None
    outs = r.items[start:]
    t_req = sent_at(r.last_in, prev.end if prev else None, r.ts)
    prompted = after(prev is None, r.prompt, bool(prev and prev.tools))
    call = _Call(ctx=start, t_req=t_req, end=r.ts, usage=use, after=prompted, base=r.base)
    for i, item in enumerate(outs, start):
        kind = item.get("type")
        if kind == "reasoning":
            call.reasoning.append(i)
        elif kind != "message" and _is_output(item):
            call.tools.append(str(item.get("name") or kind))
    r.calls.append(call)
    r.out_from = None
    r.prompt = False


def _first_cached(path: Path) -> tuple[str, int, float | None]:
    """(client version, cache read of the first call, first time stamp) of a rollout, read only
    as far as its first usage."""
    version, first = "", None
    for _, rec in json_lines(_lines(path), path, Report("codex")):
        if first is None:
            first = iso_seconds(rec.get("timestamp"))
        p = rec.get("payload")
        if not isinstance(p, Mapping):
            continue
        version = version or str(p.get("cli_version") or "")
        use = None
        try:
            if rec.get("type") == "token_usage_record":
                use = _usage(p.get("usage"))
            elif p.get("type") == "token_count" and isinstance(p.get("info"), Mapping):
                use = _usage(p["info"].get("last_token_usage"))
        except ValueError:
            use = None
        if use is not None:
            return version, use[1], first
    return version, 0, first


def sessions(sources: list[Path], anon: Anonymizer, report: Report) -> Iterator[Imported]:
    paths = files(sources)
    scans = {p: _first_cached(p) for p in paths}
    shared: dict[str, int] = {}
    for version, cached, _ in scans.values():
        shared[version] = max(shared.get(version, 0), cached)
    stamps = [s[2] for s in scans.values() if s[2] is not None]
    origin = min(stamps) if stamps else 0.0
    hidden = Hidden(anon.keys)
    rollouts = []
    for path in sorted(paths, key=lambda p: (scans[p][2] or 0.0, p)):
        r = _read(path, report)
        report.bytes_read += path.stat().st_size
        if not r.calls:
            report.skip(where(path), "no model call (no token usage recorded); left out")
            continue
        rollouts.append(r)
    keys = {r.key for r in rollouts}
    for r in rollouts:  # a parent thread starts before its sub-agents: sorted by time already
        yield _session(r, anon, hidden, shared, origin, keys)


def _session(
    r: _Rollout,
    anon: Anonymizer,
    hidden: Hidden,
    shared: dict[str, int],
    origin: float,
    keys: set[str],
) -> Imported:
    rendered = [linearize.segments(apis.OPENAI_RESPONSES, {"input": [i]}) for i in r.items]
    for i, item in enumerate(r.items):
        if item.get("type") == "reasoning":
            rendered[i] = []  # encrypted: stands for its call's reasoning tokens (below)
    counts = [sum(len(anon.cache.array(s)) for s in segs) for segs in rendered]
    reasoned: dict[int, int] = {}
    for c in r.calls:
        for j, i in enumerate(c.reasoning):  # split a call's reasoning over its items
            reasoned[i] = c.usage[3] // len(c.reasoning) + (j < c.usage[3] % len(c.reasoning))
    system = 1 if r.items and r.items[0].get("role") == "system" else 0
    prompts = [_is_prompt(i) for i in r.items]
    views: list[list[int]] = []  # the items each request holds
    ends: list[int] = []  # each call's last output that stays in context
    for k, c in enumerate(r.calls):
        last_prompt = max((i for i in range(c.base, c.ctx) if prompts[i]), default=c.base)
        views.append(
            list(range(system))
            + [
                i
                for i in range(max(c.base, system), c.ctx)
                if r.items[i].get("type") != "reasoning" or i > last_prompt
            ]
        )
        stop = r.calls[k + 1].ctx if k + 1 < len(r.calls) else len(r.items)
        outs = [
            i
            for i in range(c.ctx, stop)
            if _is_output(r.items[i]) and r.items[i].get("type") != "reasoning"
        ]
        ends.append(outs[-1] if outs else c.ctx - 1)
    visible = [sum(counts[i] + reasoned.get(i, 0) for i in v) for v in views]
    gaps = [c.usage[0] - v for c, v in zip(r.calls, visible, strict=True)]
    head = max(0, min(gaps))
    label = f"codex\x00{r.version}"
    layout = Layout(
        head=head, shared=[(label, shared.get(r.version, 0))], private_label=f"{label}\x00{r.key}"
    )
    t0 = r.calls[0].t_req
    out = Imported(
        start=max(0.0, t0 - origin),
        model=r.model,
        api=apis.OPENAI_RESPONSES,
        agent=AGENT,
        key=r.key,
        parent=r.parent if r.parent in keys else None,
    )
    prev: _Call | None = None
    for k, (c, view, gap) in enumerate(zip(r.calls, views, gaps, strict=True)):
        layout.place(gap - head, ends[k - 1] if k else c.ctx - 1)
        msgs = [
            rendered[i]
            if i not in reasoned
            else [hidden.text(f"{label}\x00{r.key}\x00reasoning{i}", reasoned[i])]
            for i in view
        ]
        fills = dict(layout.fills)
        segs = layout.head_segments(hidden)
        for i, m in zip(view, msgs, strict=True):
            segs += m
            if fills.get(i):
                segs.append(hidden.text(f"{label}\x00{r.key}\x00fill{i}", fills[i]))
        prompt = anon.prompt([s for s in segs if s], conversation=r.key)
        turn = Turn(
            t=c.t_req - t0,
            input=prompt.tokens,
            output=c.usage[2],
            reasoning=c.usage[3] or None,
            wait=0.0 if prev is None else max(0.0, c.t_req - prev.end),
            after=c.after,
            tool_calls=tuple(anon.tool(n) for n in c.tools),
            duration=max(0.0, c.end - c.t_req),
            usage_input=c.usage[0],
            usage_cached=c.usage[1],
        )
        out.turns.append((turn, prompt.blocks))
        prev = c
    return out
