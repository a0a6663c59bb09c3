"""Small synthetic corpora for the corpus tests: known content, so block ids can be checked.

A session's prompt is a list of block labels (the first ones shared by every session, like a
system prompt); a block's digest is the keyed hash of the label chain up to it, as the
anonymizer chains token blocks. `Built.chains` maps each session's turns to those chains, so a
test can check that equal ids mean equal prefixes in any file derived from it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from corpus import Header, Keys, Reader, Turn, Writer

SHARED = ("system", "tools")


@dataclass
class Built:
    path: Path
    sessions: list[dict] = field(default_factory=list)  # open_session kwargs, by session id
    turns: list[list[Turn]] = field(default_factory=list)  # turns as written, by session id
    blocks: list[list[list[int]]] = field(default_factory=list)  # full block lists per turn
    chains: list[list[list[str]]] = field(default_factory=list)  # label chain of every block


def build(
    path: Path,
    *,
    sessions: int = 12,
    seed: int = 0,
    block_size: int = 16,
    keys: bool | Keys = True,
    domain: str = "coding",
    tag: str = "",
    models: tuple[str, ...] = ("model-a", "model-b"),
    max_turns: int = 6,
    close: bool = True,
) -> Built:
    """Write a corpus of `sessions` sessions (about a quarter of them sub-agents of earlier
    ones), interleaving turns of two sessions at a time. `tag` makes content unique to this
    corpus (sessions of corpora built with different tags share only `SHARED`)."""
    rng = random.Random(seed)
    built = Built(path)
    header = Header(domain=domain, block_size=block_size, source="test", license="CC0-1.0")
    with Writer(path, header, keys=keys, max_turns=7) as w:
        open_now: list[int] = []
        labels: dict[int, list[str]] = {}
        for i in range(sessions):
            parent = rng.randrange(i) if i and rng.random() < 0.25 else None
            meta = {
                "start": round(i * 1.5 + rng.random(), 6),
                "model": rng.choice(models),
                "api": rng.choice(("openai-chat", "anthropic-messages")),
                "agent": rng.choice(("claude-code", "codex", "")),
                "parent": parent,
            }
            sid = w.open_session(**meta)
            assert sid == i
            built.sessions.append(meta)
            built.turns.append([])
            built.blocks.append([])
            built.chains.append([])
            labels[sid] = list(SHARED)
            open_now.append(sid)
            for _ in range(rng.randint(1, max_turns)):
                target = rng.choice(open_now)
                _turn(w, built, rng, target, labels[target], tag, block_size)
            if len(open_now) > 1 or i == sessions - 1:
                done = open_now.pop(0)
                if close:
                    w.close_session(done)
        if close:
            for sid in open_now:
                w.close_session(sid)
    return built


def _turn(
    w: Writer, built: Built, rng: random.Random, sid: int, labels: list[str], tag: str, bs: int
) -> None:
    k = len(built.turns[sid])
    labels.extend(f"{tag}s{sid}t{k}b{j}" for j in range(rng.randint(0, 3)))
    chains = ["/".join(labels[: j + 1]) for j in range(len(labels))]
    full = [w.keys.id(w.keys.mac(c.encode())) for c in chains]
    tokens = (len(full) - 1) * bs + rng.randint(1, bs) if full else 0
    turn = Turn(
        t=round(k * 2.0 + rng.random(), 6),
        input=tokens,
        output=rng.randint(1, 500),
        wait=round(rng.random(), 6),
        after="start" if k == 0 else rng.choice(("tool", "user")),
        tool_calls=tuple(rng.sample(("Bash", "Read", "Edit"), rng.randint(0, 2))),
        ttft=rng.choice((None, round(rng.random(), 6))),
        stop=rng.choice((None, "end_turn", "tool_use")),
        status=200,
    )
    w.add_turn(sid, turn, full)
    built.turns[sid].append(turn)
    built.blocks[sid].append(full)
    built.chains[sid].append(chains)


def chains_by_id(path: Path, chains_of: dict[int, list[list[str]]]) -> dict[int, set[str]]:
    """Block id -> label chains it stands for, over the sessions of `path` whose expected
    chains are given (by output session id). A consistent file maps every id to one chain."""
    seen: dict[int, set[str]] = {}
    for session in Reader(path, strict=True).sessions():
        expected = chains_of.get(session.id)
        if expected is None:
            continue
        for ids, chains in zip(session.prefixes(), expected, strict=True):
            for i, c in zip(ids, chains, strict=True):
                seen.setdefault(i, set()).add(c)
    return seen
