"""Agent-log importers (Claude Code transcripts) on files real clients wrote against the simulated
engine (see fixtures/agent-logs/README.md): calls, usage, prefix reuse, waits, no content."""

from __future__ import annotations

import json
import shutil
import statistics
import uuid
from pathlib import Path

import zstandard

from corpus import Reader, Session, importers

LOGS = Path(__file__).parent / "fixtures" / "agent-logs"
CLAUDE = LOGS / "claude-code"


def load(tmp_path: Path, fmt: str, *sources: Path) -> tuple[list[Session], importers.Report]:
    out = tmp_path / f"{fmt}.zst"
    report = importers.run(fmt, list(sources), out, keys=False)
    return sorted(Reader(out).sessions(), key=lambda s: s.id), report


def transcript_calls(root: Path) -> dict[str, dict]:
    """message id -> last usage, over every transcript under `root` (what the importer must
    find, counted independently of it)."""
    calls: dict[str, dict] = {}
    for path in root.rglob("*.jsonl"):
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            msg = rec.get("message") or {}
            if rec.get("type") == "assistant" and msg.get("model") != "<synthetic>":
                calls[msg["id"]] = msg["usage"]
    return calls


def common(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def test_claude_code_one_turn_per_response_with_the_provider_counts(tmp_path: Path) -> None:
    sessions, report = load(tmp_path, "claude-code", CLAUDE)
    calls = transcript_calls(CLAUDE)
    turns = [t for s in sessions for t in s.turns]
    assert len(turns) == len(calls) == 16
    assert not report.skipped
    totals = sorted(
        u["input_tokens"] + u["cache_creation_input_tokens"] + u["cache_read_input_tokens"]
        for u in calls.values()
    )
    assert sorted(t.usage_input for t in turns) == totals
    assert sorted(t.input for t in turns) == totals  # stand-ins fill exactly what is missing
    assert sorted(t.output for t in turns) == sorted(u["output_tokens"] for u in calls.values())
    assert {s.agent for s in sessions} == {"claude-code"}
    assert {s.api for s in sessions} == {"anthropic-messages"}


def test_claude_code_sub_agents_are_sessions_of_their_main_agent(tmp_path: Path) -> None:
    sessions, _ = load(tmp_path, "claude-code", CLAUDE)
    mains = [s for s in sessions if s.parent is None]
    subs = [s for s in sessions if s.parent is not None]
    assert len(mains) == 2
    assert len(subs) == 4
    by_id = {s.id: s for s in sessions}
    for sub in subs:
        parent = by_id[sub.parent]  # type: ignore[index]
        assert parent.parent is None
        assert parent.start <= sub.start
        assert sub.turns[0].tool_calls == ("Glob", "Bash")  # parallel calls of one response
        assert sub.turns[1].after == "tool"
    assert [t.after for t in mains[0].turns] == ["start", "tool", "user", "tool", "user", "tool"]


def test_claude_code_prefix_reuse_follows_the_provider_cache_reads(tmp_path: Path) -> None:
    """Each turn shares with the previous turn of its session what the provider read from
    cache (when the read fits in that turn); a session's first turn shares with earlier
    sessions what its first call read (the system prompt and tool schemas the transcripts lack,
    shared by sessions of the same client); no turn shares more than the provider read."""
    sessions, _ = load(tmp_path, "claude-code", CLAUDE)
    sessions.sort(key=lambda s: s.start)
    seen: list[list[int]] = []
    for s in sessions:
        prefixes = s.prefixes()
        for k, turn in enumerate(s.turns):
            cached = turn.usage_cached or 0
            best = max((common(prefixes[k], p) for p in seen), default=0) * 64
            assert best < cached + 2 * 64, (s.id, k)
            if k == 0:
                assert abs(best - cached) < 2 * 64, s.id
            elif cached <= s.turns[k - 1].input:
                reuse = common(prefixes[k], prefixes[k - 1]) * 64
                assert abs(reuse - cached) < 2 * 64, (s.id, k)
            seen.append(prefixes[k])


def test_claude_code_waits_agree_with_a_capture_of_the_same_run(tmp_path: Path) -> None:
    """The fixture run also went through `capture`: transcript waits are the gaps the server saw,
    less the client's own preparation time (which the transcript doesn't record)."""
    sessions, _ = load(tmp_path, "claude-code", CLAUDE)
    captured = Reader(LOGS / "claude-code-captured.zst").sessions()
    seen = {(t.usage_input, t.output, t.after): t.wait for s in captured for t in s.turns}
    gaps = [
        seen[(t.usage_input, t.output, t.after)] - t.wait
        for s in sessions
        for t in s.turns
        if t.after == "tool"
    ]
    assert len(gaps) == 8
    assert all(0 <= g < 0.075 for g in gaps), gaps
    assert statistics.median(gaps) < 0.05


def test_claude_code_compaction_starts_the_context_afresh(tmp_path: Path) -> None:
    sessions, _ = load(tmp_path, "claude-code", CLAUDE)
    main = sessions[0]
    before, after = main.turns[3], main.turns[4]
    assert after.after == "user"
    assert after.input < before.input
    # ... and the turn after it still reuses its own prefix as the provider did
    reuse = common(main.prefixes()[5], main.prefixes()[4]) * 64
    assert abs(reuse - (main.turns[5].usage_cached or 0)) < 128


def test_claude_code_lines_that_are_not_json_are_listed(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(CLAUDE, src)
    path = next(p for p in src.rglob("*.jsonl") if p.parent.name != "subagents")
    with open(path, "a") as f:
        f.write("{not json\n")
    _, report = load(tmp_path, "claude-code", src)
    assert len(report.skipped) == 1
    assert report.skipped[0].startswith(f"{path}:")


def test_claude_code_no_transcript_text_reaches_the_file(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(CLAUDE, src)
    canaries = [uuid.uuid4().hex for _ in range(4)]
    for path in src.rglob("*.jsonl"):
        text = path.read_text()
        text = text.replace("List the files in the current folder", canaries[0])
        text = text.replace("echo synthetic", f"echo {canaries[1]}")
        text = text.replace('"name":"Glob"', f'"name":"mcp__{canaries[2]}"')
        text = text.replace("look around this folder", canaries[3])
        path.write_text(text)
    sessions, _ = load(tmp_path, "claude-code", src)
    body = b""
    with open(tmp_path / "claude-code.zst", "rb") as f:
        for frame in zstandard.ZstdDecompressor().read_to_iter(f):
            body += frame
    for secret in [*canaries, "sessionId", "imp-", "cc-fixture", "toolu_", "msg_0"]:
        assert secret.encode() not in body
    assert any(n.startswith("tool-") for s in sessions for t in s.turns for n in t.tool_calls)


# -- codex ------------------------------------------------------------------------------------

CODEX = LOGS / "codex"


def rollout_usage(root: Path) -> list[dict]:
    """Per-response usage over every rollout under `root` (token_usage_record lines), counted
    independently of the importer."""
    out = []
    for path in sorted(root.rglob("rollout-*")):
        data = path.read_bytes()
        if path.suffix == ".zst":
            data = zstandard.ZstdDecompressor().stream_reader(data).read()
        for line in data.splitlines():
            rec = json.loads(line)
            if rec["type"] == "token_usage_record":
                out.append(rec["payload"]["usage"])
    return out


def test_codex_one_turn_per_response_with_the_provider_counts(tmp_path: Path) -> None:
    sessions, report = load(tmp_path, "codex", CODEX)
    usage = rollout_usage(CODEX)
    turns = [t for s in sessions for t in s.turns]
    assert len(turns) == len(usage) == 6
    assert not report.skipped
    assert [t.usage_input for t in turns] == [u["input_tokens"] for u in usage]
    assert [t.input for t in turns] == [u["input_tokens"] for u in usage]
    assert [t.output for t in turns] == [u["output_tokens"] for u in usage]
    assert [t.usage_cached for t in turns] == [u["cached_input_tokens"] for u in usage]
    assert [t.after for t in sessions[0].turns] == ["start", "tool", "user", "tool"]
    assert {s.agent for s in sessions} == {"codex"}
    assert sessions[0].model == "gpt-5-codex"


def test_codex_waits_and_reuse_agree_with_a_capture_of_the_same_run(tmp_path: Path) -> None:
    sessions, _ = load(tmp_path, "codex", CODEX)
    captured = [t for s in Reader(LOGS / "codex-captured.zst").sessions() for t in s.turns]
    mine = [t for s in sessions for t in s.turns]
    assert [t.usage_input for t in mine] == [t.usage_input for t in captured]
    gaps = [c.wait - t.wait for t, c in zip(mine, captured, strict=True) if t.after == "tool"]
    assert len(gaps) == 3
    assert all(0 <= g < 0.075 for g in gaps), gaps
    seen: list[list[int]] = []
    for s in sorted(sessions, key=lambda s: s.start):
        prefixes = s.prefixes()
        for k, turn in enumerate(s.turns):
            best = max((common(prefixes[k], p) for p in seen), default=0) * 64
            assert abs(best - (turn.usage_cached or 0)) < 2 * 64, (s.id, k)
            seen.append(prefixes[k])


def test_codex_duplicate_and_stale_token_counts_do_not_make_calls(tmp_path: Path) -> None:
    """Rollouts without token_usage_record lines: calls come from token_count events whose
    total moved; a repeat is skipped and a stale last_token_usage is corrected by the total."""
    src = tmp_path / "src"
    shutil.copytree(CODEX, src)
    usage = rollout_usage(CODEX)
    for path in src.rglob("rollout-*"):
        data = path.read_bytes()
        if path.suffix == ".zst":
            data = zstandard.ZstdDecompressor().stream_reader(data).read()
            path.unlink()
            path = path.with_suffix("")
        lines = [ln for ln in data.splitlines() if b'"token_usage_record"' not in ln]
        counts = [ln for ln in lines if b'"token_count"' in ln]
        lines.append(counts[-1])  # a duplicate of the last count
        path.write_bytes(b"\n".join(lines) + b"\n")
    sessions, _ = load(tmp_path, "codex", src)
    turns = [t for s in sessions for t in s.turns]
    assert [t.input for t in turns] == [u["input_tokens"] for u in usage]
    assert [t.output for t in turns] == [u["output_tokens"] for u in usage]


def reasoning_rollout(path: Path) -> tuple[list[int], int]:
    """A hand-made rollout with encrypted reasoning: two calls in one user turn, then a new user
    message. Usage follows the provider's rule (reasoning counts until the next user message)
    over a 2,000-token hidden head; returns each call's input and the tokens before the first
    reasoning item."""
    from corpus import tokenizer
    from corpus.wire import linearize

    def size(item: dict) -> int:
        segs = linearize.segments("openai-responses", {"input": [item]})
        return sum(tokenizer.count(s) for s in segs)

    system = {"type": "message", "role": "system", "content": "You are a test agent. " * 50}
    items = [
        (
            "in",
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "first question " * 40}],
            },
        ),
        ("out", {"type": "reasoning", "summary": [], "encrypted_content": "gAAAA" * 80}),
        (
            "out",
            {
                "type": "function_call",
                "name": "shell",
                "call_id": "c1",
                "arguments": '{"command": ["ls"]}',
            },
        ),
        ("in", {"type": "function_call_output", "call_id": "c1", "output": "a.txt b.txt"}),
        ("out", {"type": "reasoning", "summary": [], "encrypted_content": "gAAAB" * 80}),
        (
            "out",
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "two files " * 30}],
            },
        ),
        (
            "in",
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "second question " * 20}],
            },
        ),
        (
            "out",
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "done"}],
            },
        ),
    ]
    head = 2000 + size(system)
    reasoning = [300, 500]
    lines = [
        {
            "timestamp": "2026-01-01T00:00:00.000Z",
            "type": "session_meta",
            "payload": {
                "id": "t1",
                "cli_version": "0.0.1",
                "base_instructions": {"text": system["content"]},
            },
        },
        {
            "timestamp": "2026-01-01T00:00:00.000Z",
            "type": "turn_context",
            "payload": {"model": "gpt-test"},
        },
    ]
    inputs: list[int] = []
    context: list[tuple[str, int]] = []  # (kind, tokens) of each item so far
    calls = [(1, 3, 0), (4, 6, 1), (7, 8, None)]  # (first output, end, its reasoning)
    pos = 0
    for first, end, r in calls:
        for _kind, item in items[pos:first]:
            context.append((item["type"], size(item)))
            lines.append(
                {"timestamp": "2026-01-01T00:00:01.000Z", "type": "response_item", "payload": item}
            )
        last_user = max(i for i, (k, _) in enumerate(context) if k == "message")
        total = head + sum(
            n for i, (k, n) in enumerate(context) if k != "reasoning" or i > last_user
        )
        inputs.append(total)
        for _, item in items[first:end]:
            lines.append(
                {"timestamp": "2026-01-01T00:00:02.000Z", "type": "response_item", "payload": item}
            )
            n = reasoning[r] if item["type"] == "reasoning" and r is not None else size(item)
            context.append((item["type"], n))
        lines.append(
            {
                "timestamp": "2026-01-01T00:00:02.000Z",
                "type": "token_usage_record",
                "payload": {
                    "usage": {
                        "input_tokens": total,
                        "cached_input_tokens": 0,
                        "output_tokens": 10,
                        "reasoning_output_tokens": reasoning[r] if r is not None else 0,
                    }
                },
            }
        )
        pos = end
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return inputs, head + size(items[0][1])


def test_codex_reasoning_is_dropped_at_a_new_user_message(tmp_path: Path) -> None:
    src = tmp_path / "rollout-2026-01-01T00-00-00-t1.jsonl"
    inputs, kept = reasoning_rollout(src)
    (session,) = load(tmp_path, "codex", src)[0]
    assert [t.input for t in session.turns] == inputs
    one, two, three = session.prefixes()
    # within the user turn the context only grows (the partial last block of one is extended)
    assert common(two, one) == len(one) - 1
    # the new user message drops the reasoning: the prefix breaks at the first reasoning item
    # (head, system prompt and first question stay)
    assert common(three, two) == kept // 64
    assert inputs[2] < inputs[1]


def test_codex_no_rollout_text_reaches_the_file(tmp_path: Path) -> None:
    src = tmp_path / "rollout-2026-01-01T00-00-00-t1.jsonl"
    reasoning_rollout(src)
    text = src.read_text()
    canaries = {
        old: uuid.uuid4().hex
        for old in ("first question", "You are a test agent.", "a.txt b.txt", "gAAAB", "shell")
    }
    for old, new in canaries.items():
        text = text.replace(old, new)
    src.write_text(text)
    (session,) = load(tmp_path, "codex", src)[0]
    body = b""
    with open(tmp_path / "codex.zst", "rb") as f:
        for frame in zstandard.ZstdDecompressor().read_to_iter(f):
            body += frame
    for secret in canaries.values():
        assert secret.encode() not in body
    assert session.turns[0].tool_calls[0].startswith("tool-")


def test_claude_code_sidechains_in_the_main_transcript_are_sub_agents(tmp_path: Path) -> None:
    """Older Claude Code versions wrote a sub-agent's records into the main transcript as a
    sidechain (isSidechain, its first record without a parentUuid)."""
    src = next(p for p in CLAUDE.rglob("*.jsonl") if p.parent.name != "subagents")
    sub = next((src.parent / src.stem / "subagents").glob("agent-*.jsonl"))
    main_lines = src.read_text().splitlines()
    side_lines = sub.read_text().splitlines()
    first_call = next(i for i, ln in enumerate(main_lines) if '"type":"assistant"' in ln)
    merged = main_lines[: first_call + 1] + side_lines + main_lines[first_call + 1 :]
    old = tmp_path / "old" / src.name
    old.parent.mkdir()
    old.write_text("\n".join(merged) + "\n")
    sessions, _ = load(tmp_path, "claude-code", old)
    main, side = sessions
    assert side.parent == main.id
    assert len(side.turns) == 2
    assert len(main.turns) == len([ln for ln in main_lines if '"model":"claude' in ln])
    assert side.turns[0].tool_calls == ("Glob", "Bash")


def test_claude_code_calls_repeated_by_a_resumed_session_count_once(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(CLAUDE, src)
    main = next(p for p in src.rglob("*.jsonl") if p.parent.name != "subagents")
    lines = main.read_text().splitlines()
    last = json.loads(next(ln for ln in reversed(lines) if '"type":"assistant"' in ln))
    last["message"]["id"] = "msg_new_call"
    last["timestamp"] = "2026-12-06T13:00:00.000Z"
    fork = main.with_name("0000-forked.jsonl")
    fork.write_text("\n".join([*lines, json.dumps(last)]) + "\n")
    sessions, report = load(tmp_path, "claude-code", src)
    assert sum(len(s.turns) for s in sessions) == 16 + 1
    forked = [s for s in sessions if len(s.turns) == 1 and s.parent is None]
    assert forked[0].turns[0].after == "start"
    assert any("counted once" in w for w in report.warnings)
