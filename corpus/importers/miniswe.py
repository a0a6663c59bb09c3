"""Import mini-swe-agent trajectories (`*.traj.json`, files or folders searched recursively).

A trajectory holds `info` (with `config.model.model_name`) and `messages`, OpenAI Chat style;
each assistant message is one model call whose request is every message before it, and carries
the provider's response in `extra.response` (`created`, `usage`, `choices[0].finish_reason`).

Mapping: `output` = `usage.completion_tokens` (includes reasoning), `reasoning` =
`completion_tokens_details.reasoning_tokens`, `usage_input` = `prompt_tokens`, `usage_cached` =
`prompt_tokens_details.cached_tokens` (else the local count of the reply). `t` = `created` minus
the first call's `created` (1 s resolution); the trajectories record no end times, so `duration`
is unknown and `wait` is the gap between consecutive `created` stamps (an upper bound that
includes the previous call's generation). A reply with a ```bash block called the `bash` tool,
so the next turn comes `after` a tool. Session `start` is the first `created` relative to the
earliest one across all imported trajectories.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import msgspec

from corpus.anonymizer import Anonymizer
from corpus.errors import SourceError
from corpus.importers.base import Conversation, Imported, Report, count, expand, where
from corpus.records import After, Turn
from corpus.wire import apis

DOMAIN = "coding"
AGENT = "mini-swe-agent"
NOTES = (
    "mini-swe-agent: t from the provider's created stamps (1 s); no durations, so wait is the "
    "gap between calls; output from provider usage"
)
_ACTION = re.compile(r"```bash\s*\n")


def native_block_size(sources: list[Path]) -> int | None:
    return None


def files(sources: list[Path]) -> list[Path]:
    return expand(sources, ("*.traj.json",), "mini-swe-agent trajectories (*.traj.json)")


class _Stamp(msgspec.Struct):
    created: float | None = None


class _Extra(msgspec.Struct):
    response: _Stamp | None = None


class _Msg(msgspec.Struct):
    extra: _Extra | None = None


class _Stamps(msgspec.Struct):
    messages: list[_Msg] = []


def _first_created(data: bytes) -> float | None:
    try:
        traj = msgspec.json.decode(data, type=_Stamps)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    for m in traj.messages:
        if m.extra is not None and m.extra.response is not None:
            if m.extra.response.created is not None:
                return m.extra.response.created
    return None


def _load(path: Path) -> dict[str, Any]:
    try:
        data = msgspec.json.decode(path.read_bytes())
    except msgspec.DecodeError as exc:
        raise SourceError(
            f"{path}: expected a mini-swe-agent trajectory (JSON), found invalid JSON ({exc})"
        ) from exc
    if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
        raise SourceError(
            f"{path}: expected a mini-swe-agent trajectory (an object with 'messages'), found "
            f"{type(data).__name__ if not isinstance(data, dict) else 'an object without it'}; "
            "is this the right format?"
        )
    return data


def sessions(sources: list[Path], anon: Anonymizer, report: Report) -> Iterator[Imported]:
    paths = files(sources)
    # A cheap first pass for the time origin, so every session starts at ≥ 0.
    stamps = [s for p in paths if (s := _first_created(p.read_bytes())) is not None]
    origin = min(stamps) if stamps else 0.0
    for path in paths:
        sess = _session(path, _load(path), origin, anon, report)
        report.bytes_read += path.stat().st_size
        if sess is not None:
            yield sess


def _get(obj: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(k)
    return obj


def _session(
    path: Path, data: dict[str, Any], origin: float, anon: Anonymizer, report: Report
) -> Imported | None:
    messages = data["messages"]
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or not isinstance(m.get("role"), str):
            report.skip(
                where(path, f"messages[{i}]"),
                "expected a message with a 'role'; trajectory left out",
            )
            return None
    model = _get(data, "info", "config", "model", "model_name")
    conv = Conversation(apis.OPENAI_CHAT, messages=messages)
    out = Imported(api=apis.OPENAI_CHAT, agent=AGENT, model=str(model or ""))
    first: float | None = None
    prev: Turn | None = None
    prev_created: float | None = None
    acted = False
    for i, msg in enumerate(messages):
        if msg["role"] != "assistant":
            continue
        resp = _get(msg, "extra", "response")
        usage = _get(resp, "usage") or {}
        created = _get(resp, "created")
        if isinstance(created, bool) or not isinstance(created, int | float):
            created = None
        if first is None and created is not None:
            first = float(created)
        if not out.model and isinstance(_get(resp, "model"), str):
            out.model = resp["model"]
        try:
            output = count(_get(usage, "completion_tokens"), "usage.completion_tokens")
            reasoning = count(
                _get(usage, "completion_tokens_details", "reasoning_tokens"),
                "usage.completion_tokens_details.reasoning_tokens",
            )
            usage_input = count(_get(usage, "prompt_tokens"), "usage.prompt_tokens")
            cached = count(
                _get(usage, "prompt_tokens_details", "cached_tokens"),
                "usage.prompt_tokens_details.cached_tokens",
            )
        except ValueError as exc:
            report.skip(where(path, f"messages[{i}]"), f"{exc}; call left out")
            continue
        if output is None:
            output = anon.count(conv.output_text(i))
        prompt = anon.prompt(conv.segments(i))
        after: After
        if prev is None:
            t, wait, after = 0.0, 0.0, "start"
        else:
            after = "tool" if acted else "user"
            if created is not None and first is not None:
                t = max(prev.t, created - first)
                wait = t - prev.t if prev_created is not None else 0.0
            else:
                t, wait = prev.t, 0.0
        if created is not None:
            prev_created = created
        content = msg.get("content")
        acted = isinstance(content, str) and _ACTION.search(content) is not None
        finish = _get(resp, "choices")
        stop = None
        if isinstance(finish, list) and finish and isinstance(finish[0], Mapping):
            reason = finish[0].get("finish_reason")
            stop = str(reason).lower() if reason else None
        turn = Turn(
            t=t,
            input=prompt.tokens,
            output=output,
            reasoning=reasoning,
            wait=wait,
            after=after,
            tool_calls=(anon.tool("bash"),) if acted else (),
            usage_input=usage_input,
            usage_cached=cached,
            stop=stop,
        )
        out.turns.append((turn, prompt.blocks))
        prev = turn
    if first is not None:
        out.start = max(0.0, first - origin)
    if not out.turns:
        report.skip(where(path), "no assistant message, so no model call; trajectory left out")
        return None
    return out
