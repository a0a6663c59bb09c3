"""Export a corpus as Mooncake trace JSONL with the multi-turn extension AIPerf and Dynamo read.

One line per turn, grouped by session, sessions in order of their start:
`{"session_id", "timestamp" | "delay", "input_length", "output_length", "hash_ids"}`. The first
turn of a session carries `timestamp` (ms since the corpus's first session); later turns carry
`delay` (ms to wait after the previous turn of the session finished: the recorded `wait`) and
no timestamp, because AIPerf's fixed schedule lets a timestamp override a delay.

A session replayer (AIPerf's multi-turn Mooncake mode, Dynamo's) sends each row as a new user
message after the whole conversation so far, its own live responses included. So a session's
first row holds its whole input, and each later row only what the turn adds: `input_length` =
this turn's input − the previous turn's input − the previous turn's output − the framing the
server's chat template adds to the two messages the replayer sends for it (the previous reply
and this row; `framing` tokens each, default 5: ChatML, Llama 3 and `replay serve` all add 5),
at least 1 (a turn whose context shrank, a compaction, can't be expressed and is counted in a
warning), and `hash_ids` the ids of the last blocks of the turn, as many as the new tokens need
(AIPerf refuses more). `whole=True`
writes every turn's full input and block chain instead (for replayers that send each row on
its own, as Mooncake's own trace does).

Mooncake consumers assume 512-token blocks; `block_size` coarsens a corpus's blocks to any
multiple of its own size (block ids are chained, so a coarse block is named by its last fine
block), and any other size is reported in a warning. Sub-agent links, durations, tool calls and
`after` have no Mooncake field and are left out (`parent_session_id` names a sub-agent's parent,
an extension the Mooncake importer reads back).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from corpus.errors import CorpusError
from corpus.exporters.base import Report, in_order, ms, opens
from corpus.reader import Reader
from corpus.records import Turn

MOONCAKE_BLOCK_SIZE = 512
FRAMING = 5
"""Tokens a chat template adds around one message (ChatML, Llama 3 and `replay serve`: 5)."""


def coarsen(blocks: list[int], factor: int) -> list[int]:
    """Ids of `factor`-times larger blocks: each is named by the last fine block it holds."""
    if factor == 1:
        return blocks
    out = blocks[factor - 1 :: factor]
    if len(blocks) % factor:
        out.append(blocks[-1])
    return out


def _common(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def write(
    src: Path,
    out: Path,
    *,
    block_size: int | None = None,
    whole: bool = False,
    framing: int = FRAMING,
) -> Report:
    reader = Reader(src)
    bs = reader.header.block_size
    target = block_size or bs
    if target % bs:
        raise CorpusError(
            f"{src}: blocks of {bs} tokens can only be exported as multiples of {bs} "
            f"(e.g. {bs * max(1, round(target / bs))}), not {target}"
        )
    factor = target // bs
    report = Report(format="mooncake", out=out, files=1)
    if target != MOONCAKE_BLOCK_SIZE:
        msg = (
            f"hash_ids use {target}-token blocks, not Mooncake's {MOONCAKE_BLOCK_SIZE}: tell the "
            f"replayer (AIPerf: --isl-block-size {target})"
        )
        if block_size is None and MOONCAKE_BLOCK_SIZE % bs == 0:
            msg += f", or export with block size {MOONCAKE_BLOCK_SIZE}"
        report.warn(msg)
    order = [o.id for o in sorted(opens(reader), key=lambda o: (o.start, o.id))]
    enc = msgspec.json.Encoder()
    shrunk = 0
    with open(out, "wb") as f:
        for sess in in_order(reader, order):
            if not sess.turns:
                continue
            name = f"s{sess.id}"
            prev: tuple[Turn, list[int]] | None = None
            for k, (turn, blocks) in enumerate(zip(sess.turns, sess.prefixes(), strict=True)):
                row: dict[str, Any] = {"session_id": name}
                if k == 0:
                    row["timestamp"] = ms(sess.start + turn.t)
                    row["block_size"] = target
                    if sess.parent is not None:
                        row["parent_session_id"] = f"s{sess.parent}"
                else:
                    row["delay"] = ms(turn.wait)
                ids = coarsen(blocks, factor)
                if prev is None or whole:
                    row["input_length"] = turn.input
                    row["output_length"] = turn.output
                    row["hash_ids"] = ids
                else:
                    before, before_ids = prev
                    length = turn.input - before.input - before.output - 2 * framing
                    if length < 1:
                        shrunk += 1
                        length = 1
                    tail = len(ids) - -(-length // target)  # first of the turn's last blocks
                    keep = min(_common(ids, before_ids), tail)
                    row["input_length"] = length
                    row["output_length"] = turn.output
                    row["hash_ids"] = ids[tail:]
                    row["context_length"] = turn.input
                    row["prefix_blocks"] = keep
                    if keep < tail:
                        row["extra_hash_ids"] = ids[keep:tail]
                f.write(enc.encode(row))
                f.write(b"\n")
                prev = (turn, ids)
            report.sessions += 1
            report.turns += len(sess.turns)
    if shrunk:
        report.warn(
            f"{shrunk} turns hold less than the turn before them and its reply (compactions, "
            "dropped reasoning): a session replayer can't shrink a conversation, so they add "
            "1 token each"
        )
    if reader.damage is not None:
        report.warn(reader.damage.message(str(src)))
    return report
