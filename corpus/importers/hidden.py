"""Stand-ins for request content a log does not hold (system prompt, tool schemas, stripped
reasoning), sized from the provider's usage so a turn's `input` and block structure agree.

A stand-in is a run of single-token words drawn from a keyed stream named by a label: equal
labels give equal text, and `text(label, m)` is the first `m` tokens of `text(label, n)`, so a
stand-in that grows or shrinks keeps the blocks of its common part. Labels are keyed with the
corpus key before seeding, so nothing about the source can be read back from the blocks.

`Layout` places the stand-ins of one conversation: a head (the shared part first, then a part
private to the session) and, before the messages that follow each call, what that call's usage
counts beyond the head and the visible messages.
"""

from __future__ import annotations

import functools
import random
import re
from dataclasses import dataclass, field

from corpus import tokenizer
from corpus.keys import Keys

_WORD = re.compile(r"^ [a-z]{3,9}$")


@functools.cache
def _vocab(name: str) -> tuple[str, ...]:
    """Words that are one token each, with a leading space, and stay one token side by side."""
    enc = tokenizer.encoding(name)
    out: list[str] = []
    for i in range(1000, 60000):
        try:
            w = enc.decode([i])
        except Exception:  # noqa: BLE001 - ids that are not whole characters
            continue
        if _WORD.match(w) and enc.encode(w) == [i]:
            out.append(w)
        if len(out) == 1024:
            break
    return tuple(out)


class Hidden:
    """Keyed, prefix-stable filler text of an exact token count."""

    def __init__(self, keys: Keys, tokenizer_name: str = tokenizer.DEFAULT) -> None:
        self._keys = keys
        self._vocab = _vocab(tokenizer_name)
        self._words: dict[str, list[str]] = {}

    def text(self, label: str, tokens: int) -> str:
        """`tokens` tokens of the stream named `label` (the empty string for 0)."""
        if tokens <= 0:
            return ""
        words = self._words.get(label)
        if words is None:
            words = self._words[label] = []
        if len(words) < tokens:
            rng = random.Random(self._keys.mac(f"{label}\x00{len(words)}".encode()))
            vocab = self._vocab
            words.extend(rng.choice(vocab) for _ in range(tokens - len(words)))
        return "".join(words[:tokens])


@dataclass
class Layout:
    """Where one conversation's stand-ins go, call by call.

    `head` tokens come before every message: first the `shared` parts (label, tokens) in order,
    content other sessions hold too (tool schemas, a fixed system prompt), then a part from
    `private_label`. Each call may count `extra` tokens beyond the head and the visible
    messages (reasoning the log left out); they are placed after the message index given,
    earlier stand-ins are kept while they fit, and a shrinking `extra` (reasoning the provider
    dropped) cuts the latest ones first.
    """

    head: int
    shared: list[tuple[str, int]]
    private_label: str
    fills: list[tuple[int, int]] = field(default_factory=list)  # (after message i, tokens)

    def head_segments(self, hidden: Hidden) -> list[str]:
        out: list[str] = []
        left = self.head
        for label, n in self.shared:
            take = min(n, left)
            if take > 0:
                out.append(hidden.text(label, take))
            left -= take
        if left > 0:
            out.append(hidden.text(self.private_label, left))
        return out

    def place(self, extra: int, at: int) -> None:
        """Set the stand-ins of the next call: `extra` tokens in all, new ones after message
        index `at`."""
        kept: list[tuple[int, int]] = []
        total = 0
        for pos, n in self.fills:
            if total >= extra:
                break
            take = min(n, extra - total)
            kept.append((pos, take))
            total += take
        if total < extra:
            if kept and kept[-1][0] == at:
                kept[-1] = (at, kept[-1][1] + extra - total)
            else:
                kept.append((at, extra - total))
        self.fills = kept

    def segments(self, hidden: Hidden, messages: list[list[str]], base: int = 0) -> list[str]:
        """Head, then each message's segments (`messages[j]` is message `base + j`) with the
        stand-ins after their message."""
        out = self.head_segments(hidden)
        fills = dict(self.fills)
        if fills.get(base - 1):
            out.append(hidden.text(f"{self.private_label}\x00fill{base - 1}", fills[base - 1]))
        for i, segs in enumerate(messages, base):
            out += segs
            n = fills.get(i)
            if n:
                out.append(hidden.text(f"{self.private_label}\x00fill{i}", n))
        return out
