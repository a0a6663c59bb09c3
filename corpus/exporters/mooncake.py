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
and `hash_ids` the ids of the last blocks of the turn, as many as the new tokens need (AIPerf
refuses more). A turn that is not the conversation so far plus new tokens (its context grew
less than that, or it no longer starts with the previous turn's full blocks: a compaction,
reasoning the provider dropped, edited history) can't be appended: it starts a new conversation
`sN.K` whose first row holds the turn's whole input and whole block chain (the same hash_ids
laid out alike give the same synthesized text: a server's prefix cache hits what the restart
shares with first rows), with a
`timestamp` at the turn's recorded time, `is_restart: true` (how AIPerf's own agentic-code
generator writes a restart continuation) and the extensions `continues` (the session it
continues) and `continue_delay` (its recorded wait); the session's later turns follow in that
conversation. A conversation's first row leaves out the framing of the one message the
replayer sends for it (the recorded input holds the original request's own). `separator`
(default 0) takes that many tokens per hash id off each row as well: AIPerf starts every block
it synthesizes with its tokenizer's BOS (else EOS) token, and a server that counts that token's
text (cl100k's `<|endoftext|>` is 7 tokens of text) sees 6 more per block (measured on AIPerf
0.13's own synthesis: 6.00 per block, 0.00 from BPE seams). Tokens come off a row's partial
last block only (AIPerf refuses an id at two sizes); what a row can't lose passes to the next
row of its conversation, since every later request re-sends it. `whole=True` writes every
turn's full input and block chain instead (for replayers that send each row on its own, as
Mooncake's own trace does).

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


def block_factor(src: Path, bs: int, block_size: int | None) -> int:
    """How many of the corpus's `bs`-token blocks make one exported block of `block_size`."""
    target = block_size or bs
    if target % bs:
        raise CorpusError(
            f"{src}: blocks of {bs} tokens can only be exported as multiples of {bs} "
            f"(e.g. {bs * max(1, round(target / bs))}), not {target}"
        )
    return target // bs


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
    separator: int = 0,
) -> Report:
    reader = Reader(src)
    bs = reader.header.block_size
    factor = block_factor(src, bs, block_size)
    target = bs * factor
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
    sizes = _Sizes(target, separator)
    restarts = 0
    with open(out, "wb") as f:
        for sess in in_order(reader, order):
            if not sess.turns:
                continue
            name = f"s{sess.id}"
            part = 0
            debt = 0  # tokens the conversation's rows so far could not take off
            prev: tuple[Turn, list[int]] | None = None
            for k, (turn, blocks) in enumerate(zip(sess.turns, sess.prefixes(), strict=True)):
                ids = coarsen(blocks, factor)
                length = 0
                if prev is not None and not whole:
                    before, before_ids = prev
                    length = turn.input - before.input - before.output - 2 * framing
                    if length < 1 or _common(ids, before_ids) < before.input // target:
                        length = 0  # not the conversation so far plus new tokens: restart
                        part += 1
                        restarts += 1
                row: dict[str, Any] = {"session_id": name if not part else f"{name}.{part}"}
                if k == 0 or (length < 1 and not whole):  # an AIPerf conversation's first row
                    row["timestamp"] = ms(sess.start + turn.t)
                    if k == 0:
                        row["block_size"] = target
                        if sess.parent is not None:
                            row["parent_session_id"] = f"s{sess.parent}"
                    else:
                        row["is_restart"] = True  # AIPerf's agentic-code generator's marker
                        row["continues"] = name
                        row["continue_delay"] = ms(turn.wait)
                    row["input_length"], row["output_length"] = turn.input, turn.output
                    row["hash_ids"] = ids
                    debt = 0 if whole else framing  # the replayer frames its one message
                elif whole:
                    row["delay"] = ms(turn.wait)
                    row["input_length"], row["output_length"] = turn.input, turn.output
                    row["hash_ids"] = ids
                else:
                    before_ids = prev[1] if prev is not None else []
                    row["delay"] = ms(turn.wait)
                    tail = len(ids) - -(-length // target)  # first of the turn's last blocks
                    keep = min(_common(ids, before_ids), tail)
                    row["input_length"] = length
                    row["output_length"] = turn.output
                    row["hash_ids"] = ids[tail:]
                    row["prefix_blocks"] = keep
                    if keep < tail:
                        row["extra_hash_ids"] = ids[keep:tail]
                want = debt + separator * len(row["hash_ids"])
                cut, row["hash_ids"], aliases = sizes.place(
                    row["input_length"], row["hash_ids"], turn.input % target, want
                )
                debt = want - cut
                if aliases:
                    row["hash_id_aliases"] = [[a, h] for a, h in aliases.items()]
                if cut or "prefix_blocks" in row:
                    row["input_length"] -= cut
                    row["context_length"] = turn.input
                f.write(enc.encode(row))
                f.write(b"\n")
                prev = (turn, ids)
            report.sessions += 1
            report.turns += len(sess.turns)
    if restarts:
        report.warn(
            f"{restarts} turns don't hold the turn before them, its reply and new tokens "
            "(compactions, dropped reasoning, edited history): a session replayer can only "
            "append, so each starts a new conversation (session_id NAME.N, `continues`) that "
            "sends its whole context with its whole block chain"
        )
    if reader.damage is not None:
        report.warn(reader.damage.message(str(src)))
    return report


ALIAS_BASE = 1 << 48
"""Hash ids the export makes up start here (corpus block ids are counted from 0)."""


class _Sizes:
    """The size the replayer gives each hash id, and how much a row can be shortened.

    AIPerf cuts a row's `input_length` tokens into its `hash_ids`' blocks (the last one partial)
    and refuses an id seen at two sizes. So a row is shortened only in its last block, by at
    most all but one of its tokens, and only when the turn's last block is partial (a whole
    block's id is shared at full size). What a row can't take off is carried to the
    conversation's next row (`write`'s `debt`): every later request re-sends the rows before
    it, so only the request it arose in stays long. An id a row would need at another size
    than it already has (a delta row sizes its last block by the new tokens, not by the block;
    a restart re-sends it whole) is replaced in that row by a made-up id (`aliases`: made-up id
    -> corpus id, written as the row's `hash_id_aliases` for the import)."""

    def __init__(self, target: int, separator: int) -> None:
        self.target, self.separator = target, separator
        self.size: dict[int, int] = {}
        self.made_up = 0

    def _own(self, h: int, tokens: int, aliases: dict[int, int]) -> int:
        """`h`, or a made-up id when `h` already has another size than `tokens`."""
        if self.size.setdefault(h, tokens) == tokens:
            return h
        alias = ALIAS_BASE + self.made_up
        self.made_up += 1
        self.size[alias] = tokens
        aliases[alias] = h
        return alias

    def place(
        self, length: int, ids: list[int], partial: int, want: int
    ) -> tuple[int, list[int], dict[int, int]]:
        """Tokens to take off a row of `length` tokens and `ids` (of a turn whose last block
        holds `partial` tokens, 0 when whole), at most `want`; the ids to write and the
        made-up ones among them."""
        aliases: dict[int, int] = {}
        if not ids:
            return 0, ids, aliases
        last = length - (len(ids) - 1) * self.target
        cut = max(0, min(want, last - 1)) if partial else 0
        known = self.size.get(ids[-1])
        if cut and known is not None and known != last - cut and known == last:
            cut = 0  # keep the id at the size it has rather than make one up
        out = [self._own(h, self.target, aliases) for h in ids[:-1]]
        out.append(self._own(ids[-1], last - cut, aliases))
        return cut, out, aliases
