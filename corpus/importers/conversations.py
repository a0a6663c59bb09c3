"""Import plain conversations: JSONL, one session per line, OpenAI-style message lists.

A record (one line of a `.jsonl` file; a `.json` file may hold one record or a list of them):

    {"messages": [...],          # required: the whole conversation, OpenAI Chat style
     "tools": [...],             # optional: tool definitions sent with every request
     "model": "gpt-4o",          # optional
     "api": "openai-chat",       # optional: openai-chat (default) or anthropic-messages
     "system": "...",            # optional: the system prompt (openai-chat: a leading
                                 #   system message, as if it were messages[0])
     "agent": "my-agent",        # optional: client family
     "start": 0.0,               # optional: seconds since the corpus's first session
     "timings": [{"t": 0.0, "wait": 0.0, "ttft": 0.4, "duration": 2.1}, ...],
     "usage": [{"input": 1234, "output": 56, "cached": 1024, "reasoning": 0}, ...],
     "stop": ["tool_calls", "stop", ...],   # optional: each call's stop reason
     "id": "main-1",             # optional: names the record, so a sub-agent can say
     "parent": "main-1",         #   whose it is (an earlier record's id)
     "metadata": {...}}          # optional: anything; ignored

A record with any other field is refused with its file and line (an agentperf-local row or a
mini-swe-agent trajectory is not a conversation: the message names the importer to use).

Every assistant message is one model call whose request is all messages before it (plus tools
and system). `timings`, `usage` and `stop`, when given, hold one entry (or null) per assistant
message, in order; every field is optional. Output tokens are `usage.output`, else the local
count of the assistant message. Without timings every `t` and `wait` is 0 (nothing is
invented; choose a replay wait policy instead); with only some fields, `t` accumulates the
previous turn's `t`, `duration` and this turn's `wait`, and a missing `wait` is the idle gap
before `t`. `after` is `tool` when the previous assistant message called tools, else `user`.

Also read: the τ-bench trajectory files (`historical_trajectories/<model>-<domain>.json`, a list
of `{task_id, reward, info, traj, trial}`): one session per item, `traj` as its messages, model
from the file name, agent `tau-bench`; `info` and `reward` are ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import msgspec

from corpus.anonymizer import Anonymizer
from corpus.errors import SourceError
from corpus.importers.base import (
    Conversation,
    Imported,
    Report,
    count,
    expand,
    seconds,
    tool_names,
    where,
)
from corpus.records import After, Turn
from corpus.wire import apis

DOMAIN = "unknown"
NOTES = "conversations: one session per record; t and wait are 0 where no timings were given"
APIS = (apis.OPENAI_CHAT, apis.ANTHROPIC)
FIELDS = frozenset(
    "messages tools model api system agent start timings usage stop id parent metadata".split()
)
# Fields that say which importer a record belongs to instead.
_OTHER = {
    "conversation_id": "agentperf-local",
    "conversation_idx": "agentperf-local",
    "turn_id": "agentperf-local",
    "trajectory_format": "mini-swe-agent",
    "info": "mini-swe-agent",
}
_TAU_NAME = re.compile(r"^(?P<model>.+)-(?P<domain>airline|retail)$")


def native_block_size(sources: list[Path]) -> int | None:
    return None


def files(sources: list[Path]) -> list[Path]:
    return expand(sources, ("*.jsonl", "*.json"), "conversation files (*.jsonl, *.json)")


def _records(path: Path, report: Report) -> Iterator[tuple[str, Any]]:
    """(location, record) pairs of one file."""
    if path.suffix == ".jsonl":
        with open(path, "rb") as f:
            for n, raw in enumerate(f, 1):
                if not raw.strip():
                    continue
                try:
                    yield where(path, n), msgspec.json.decode(raw)
                except msgspec.DecodeError as exc:
                    report.skip(where(path, n), f"expected one JSON record per line ({exc})")
        return
    try:
        data = msgspec.json.decode(path.read_bytes())
    except msgspec.DecodeError as exc:
        raise SourceError(
            f"{path}: expected a JSON record, a list of records or a τ-bench trajectory file; "
            f"found invalid JSON ({exc})"
        ) from exc
    if isinstance(data, list):
        tau = _tau_model(path) if any(isinstance(x, dict) and "traj" in x for x in data) else None
        for i, item in enumerate(data):
            if tau is not None and isinstance(item, dict) and "traj" in item:
                item = {"messages": item["traj"], "model": tau, "agent": "tau-bench"}
            yield where(path, f"[{i}]"), item
    else:
        yield where(path, None), data


def _tau_model(path: Path) -> str:
    m = _TAU_NAME.match(path.stem)
    return m.group("model") if m else ""


def sessions(sources: list[Path], anon: Anonymizer, report: Report) -> Iterator[Imported]:
    untimed = False
    ids: set[str] = set()
    for path in files(sources):
        for at, rec in _records(path, report):
            try:
                sess = session(rec, anon)
                if sess is not None and sess.parent is not None and sess.parent not in ids:
                    raise ValueError(
                        f"'parent' {sess.parent!r} is not the id of an earlier record; put the "
                        "parent conversation first"
                    )
            except ValueError as exc:
                report.skip(at, f"{exc}; record left out")
                continue
            if sess is None:
                report.skip(at, "no assistant message, so no model call; record left out")
                continue
            untimed = untimed or not (isinstance(rec, dict) and rec.get("timings"))
            if sess.key is not None:
                ids.add(str(sess.key))
            yield sess
        report.bytes_read += path.stat().st_size
    if untimed:
        report.warn("some sessions carry no timings: their t and wait are 0")


def _list(value: Any, name: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"'{name}' should be a list, found {type(value).__name__}")
    return value


def session(rec: Any, anon: Anonymizer) -> Imported | None:
    """One record as a session (None when it holds no assistant message). ValueError on a
    record that does not follow the schema."""
    if not isinstance(rec, Mapping):
        raise ValueError(f"expected a JSON object, found {type(rec).__name__}")
    unknown = sorted(set(rec) - FIELDS)
    if unknown:
        other = next((_OTHER[k] for k in unknown if k in _OTHER), None)
        hint = (
            f"this looks like {other} data: import it with 'corpus import {other}'"
            if other
            else f"a conversation has only {', '.join(sorted(FIELDS))}"
        )
        raise ValueError(f"unknown field(s) {', '.join(map(repr, unknown))}; {hint}")
    messages = _list(rec.get("messages"), "messages")
    if not messages:
        raise ValueError("'messages' is missing or empty")
    api = rec.get("api") or apis.OPENAI_CHAT
    if api not in APIS:
        raise ValueError(f"'api' should be one of {', '.join(APIS)}, found {api!r}")
    for i, msg in enumerate(messages):
        if not isinstance(msg, Mapping) or not isinstance(msg.get("role"), str):
            raise ValueError(f"messages[{i}] should be an object with a 'role'")
    system = rec.get("system")
    if system and api == apis.OPENAI_CHAT:  # Chat Completions has no system field: a message
        messages = [{"role": "system", "content": system}, *messages]
        system = None
    calls = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    if not calls:
        return None
    timings = _list(rec.get("timings"), "timings")
    usage = _list(rec.get("usage"), "usage")
    stops = _list(rec.get("stop"), "stop")
    for name, lst in (("timings", timings), ("usage", usage), ("stop", stops)):
        if lst and len(lst) != len(calls):
            raise ValueError(
                f"'{name}' holds {len(lst)} entries for {len(calls)} assistant messages; "
                "give one per assistant message (null where unknown)"
            )
    conv = Conversation(api, tools=rec.get("tools"), system=system, messages=messages)
    start = seconds(rec.get("start"), "start") or 0.0
    for i, stop in enumerate(stops):
        if stop is not None and not isinstance(stop, str):
            raise ValueError(f"stop[{i}] should be a string or null, found {stop!r}")
    for name in ("id", "parent"):
        if rec.get(name) is not None and not isinstance(rec[name], str | int):
            raise ValueError(f"'{name}' should be a string, found {rec[name]!r}")
    out = Imported(
        start=start,
        model=str(rec.get("model") or ""),
        api=api,
        agent=str(rec.get("agent") or ""),
        key=None if rec.get("id") is None else str(rec["id"]),
        parent=None if rec.get("parent") is None else str(rec["parent"]),
    )
    prev: Turn | None = None
    for k, i in enumerate(calls):
        tim = timings[k] if timings else None
        use = usage[k] if usage else None
        prev_msg = messages[calls[k - 1]] if k else None
        turn, blocks = _turn(conv, messages[i], i, prev_msg, tim, use, prev, anon)
        if stops and stops[k] is not None:
            turn = msgspec.structs.replace(turn, stop=stops[k])
        out.turns.append((turn, blocks))
        prev = turn
    return out


def _turn(
    conv: Conversation,
    msg: Mapping[str, Any],
    i: int,
    prev_msg: Mapping[str, Any] | None,
    tim: Any,
    use: Any,
    prev: Turn | None,
    anon: Anonymizer,
) -> tuple[Turn, list[int]]:
    tim = tim or {}
    use = use or {}
    if not isinstance(tim, Mapping) or not isinstance(use, Mapping):
        raise ValueError("'timings' and 'usage' entries should be objects or null")
    prompt = anon.prompt(conv.segments(i))
    output = count(use.get("output"), "usage.output")
    if output is None:
        output = anon.count(conv.output_text(i))
    t = seconds(tim.get("t"), "timings.t")
    wait = seconds(tim.get("wait"), "timings.wait")
    duration = seconds(tim.get("duration"), "timings.duration")
    after: After
    if prev is None or prev_msg is None:
        after = "start"
        wait = 0.0 if wait is None else wait
        t = 0.0 if t is None else t
    else:
        after = "tool" if tool_names(prev_msg) else "user"
        ready = prev.t + (prev.duration or 0.0)
        if t is None:
            t = ready + (wait or 0.0)
        if wait is None:
            wait = max(0.0, t - ready)
    names = tool_names(msg)
    turn = Turn(
        t=t,
        input=prompt.tokens,
        output=output,
        reasoning=count(use.get("reasoning"), "usage.reasoning"),
        wait=wait,
        after=after,
        tool_calls=tuple(anon.tool(n) for n in names),
        ttft=seconds(tim.get("ttft"), "timings.ttft"),
        duration=duration,
        usage_input=count(use.get("input"), "usage.input"),
        usage_cached=count(use.get("cached"), "usage.cached"),
    )
    return turn, prompt.blocks
