"""Prompt synthesis: corpus block ids -> fixed token content, so the server sees the recorded
prefix structure without any recorded text.

Block content is a pure function of (run tag, block id) for blocks that several sessions share,
and of (run tag, block id, scope) for a session's private blocks, where the scope names one
replay of that session (level and deal cycle): shared system prompts stay byte-identical across
agents and turns, while a session replayed twice never hits the first replay's cache. Another
run tag changes every block, so runs can't hit each other's cache.

Tokens are drawn from a vocabulary of lowercase words that are single tokens *with* their
leading space (" the", " model", …) and have ids below `ID_LIMIT`. The tokenizer splits text
before every space-letter run, so any concatenation of such words re-tokenizes to exactly the
ids it was built from: chat prompts keep the recorded token count exactly under the target
tokenizer, and `/v1/completions` gets the same content as token ids.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from itertools import compress
from operator import not_
from typing import Literal

import numpy as np

from corpus import CorpusError
from corpus import tokenizer as bpe
from replay.errors import ConfigError

ID_LIMIT = 32_000
"""Only token ids below this are used, so id prompts stay valid on servers with small
vocabularies (32K-token models and up)."""

Form = Literal["text", "ids", "blocks"]
"""What an endpoint takes: prompt `text`, token `ids`, or only the full blocks' seeds
(`blocks`: a modelled engine needs the prefix structure, not the tokens)."""

USER_MARKER = "<|user|>"
"""How `corpus.wire.linearize` renders a user message's role; a single-message chat request costs
this many tokens beyond its text in the recorded counts (5 with cl100k_base)."""

_WORD = re.compile(rb"^ [a-z]{2,}$")
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLD = np.uint64(0x9E3779B97F4A7C15)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer over a uint64 array (wrapping arithmetic, no warnings)."""
    x = x ^ (x >> _S30)
    x = x * _M1
    x = x ^ (x >> _S27)
    x = x * _M2
    return x ^ (x >> _S31)


_MASK = (1 << 64) - 1
_GOLD_INT = 0x9E3779B97F4A7C15


def _mix_int(x: int) -> int:
    """`_mix` on one Python int in [0, 2**64)."""
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & _MASK
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def tag_key(tag: str) -> int:
    """A run tag as a 63-bit integer (stable across processes, unlike `hash(str)`)."""
    acc = np.array([len(tag)], dtype=np.uint64)
    for byte in tag.encode():
        acc = _mix(acc ^ np.array([byte], dtype=np.uint64) ^ _GOLD)
    return int(acc[0] >> np.uint64(1))


@dataclass(frozen=True)
class Vocabulary:
    """Token ids whose text is `" " + lowercase word` and that re-tokenize alone and in any
    concatenation to themselves; `words[i]` is the text of `ids[i]`."""

    tokenizer: str
    ids: np.ndarray
    words: np.ndarray


@functools.cache
def vocabulary(tokenizer: str = bpe.DEFAULT) -> Vocabulary:
    """The synthesis vocabulary of `tokenizer` (about 8,600 words for cl100k_base)."""
    try:
        enc = bpe.encoding(tokenizer)
    except CorpusError as exc:
        raise ConfigError(str(exc)) from exc
    ids: list[int] = []
    words: list[str] = []
    for i in range(min(ID_LIMIT, enc.n_vocab)):
        try:
            raw = enc.decode_single_token_bytes(i)
        except KeyError:
            continue
        if _WORD.match(raw):
            word = raw.decode()
            if enc.encode(word, disallowed_special=()) == [i]:
                ids.append(i)
                words.append(word)
    if len(ids) < 256:
        raise ConfigError(f"tokenizer {tokenizer!r} has too few single-token words to synthesize")
    return Vocabulary(tokenizer, np.array(ids, dtype=np.int64), np.array(words, dtype=object))


@dataclass(slots=True)
class Prompt:
    """One synthesized request prompt. `text`, `ids` or `blocks` is set, as the endpoint asked
    (`blocks`: one seed per full block, equal seeds exactly where the content is equal);
    `ideal_cached` is how many leading tokens an infinite prefix cache would already hold."""

    tokens: int
    ideal_cached: int
    text: str | None = None
    ids: list[int] | None = None
    blocks: list[int] | None = None


class Synth:
    """Block content for one run. `shared` holds the block ids that occur in more than one
    session (their content ignores the scope); None treats every block as shared."""

    def __init__(
        self,
        *,
        block_size: int,
        tag: str,
        tokenizer: str = bpe.DEFAULT,
        shared: Collection[int] | None = None,
        template: int | None = None,
        cache_block: int | None = None,
    ) -> None:
        """`template`: tokens the server's chat template adds to a one-message request, when
        measured (default: the corpus's role marker). `cache_block`: the server's KV block
        size, when it differs from the corpus's (the cache ideal counts whole server blocks)."""
        if block_size < 1:
            raise ConfigError(f"block size must be at least 1 token, got {block_size}")
        self.block_size = block_size
        self.tag = tag
        self.vocab = vocabulary(tokenizer)
        self._tag = np.uint64(tag_key(tag))
        self._shared: frozenset[int] | None = None if shared is None else frozenset(shared)
        self._pos = np.arange(block_size, dtype=np.uint64) * _GOLD
        self.template = (
            len(bpe.encoding(tokenizer).encode(USER_MARKER, disallowed_special=()))
            if template is None else template
        )
        self.cache_block = cache_block if cache_block and cache_block != block_size else None
        self._cache: dict[int, tuple[np.ndarray, str | None]] = {}
        self._tag_int = tag_key(tag)
        self._words: list[str] = self.vocab.words.tolist()
        self.seen_shared: set[int] = set()

    @property
    def shared(self) -> frozenset[int] | None:
        """Block ids shared between sessions (None: every block counts as shared)."""
        return self._shared

    def is_shared(self, block: int) -> bool:
        return self._shared is None or block in self._shared

    def seeds(self, blocks: Sequence[int], scope: int) -> list[int]:
        """One 64-bit seed per block: (tag, id) for shared blocks, (tag, id, scope) otherwise.
        Plain integer arithmetic for the few blocks a turn adds (numpy's per-call cost would
        dominate), numpy for long runs."""
        tag = self._tag_int
        salt = _mix_int((scope + 1) & _MASK)
        shared = self._shared
        if len(blocks) >= 64:  # a session's first turn: the same arithmetic, vectorized
            try:  # ids in int64's range (any real corpus): b & _MASK is their two's complement
                ids = np.array(blocks, dtype=np.int64).view(np.uint64)
            except OverflowError:
                ids = np.array([b & _MASK for b in blocks], dtype=np.uint64)
            if shared is None:
                salts = np.zeros(len(blocks), dtype=np.uint64)
            else:
                common = np.fromiter(map(shared.__contains__, blocks), dtype=bool,
                                     count=len(blocks))
                salts = np.where(common, np.uint64(0), np.uint64(salt))
            mixed: list[int] = (_mix(_mix(ids * _GOLD + salts) ^ np.uint64(tag))).tolist()
            return mixed
        out: list[int] = []
        for b in blocks:
            s = 0 if shared is None or b in shared else salt
            out.append(_mix_int(_mix_int(((b & _MASK) * _GOLD_INT + s) & _MASK) ^ tag))
        return out

    def positions(self, seeds: Sequence[int]) -> np.ndarray:
        """Vocabulary positions, shape (len(seeds), block_size), of the blocks' tokens."""
        arr = np.array(seeds, dtype=np.uint64)
        idx = _mix(arr[:, None] + self._pos[None, :]) % np.uint64(len(self.vocab.ids))
        return idx.astype(np.int64)

    def tokens(self, seeds: Sequence[int]) -> np.ndarray:
        """Token ids, shape (len(seeds), block_size), of the blocks with these seeds."""
        out: np.ndarray = self.vocab.ids[self.positions(seeds)]
        return out

    def text(self, ids: np.ndarray) -> str:
        """Text of vocabulary token ids (the inverse of the tokenizer on them)."""
        pos = np.searchsorted(self.vocab.ids, ids)
        return "".join(map(self._words.__getitem__, pos.tolist()))

    def contents(
        self, seeds: Sequence[int], shared: Sequence[bool], text: bool
    ) -> list[tuple[np.ndarray, str | None]]:
        """(token ids, text or None) of each block, computed in one batch; shared blocks are
        cached for the whole run."""
        out: list[tuple[np.ndarray, str | None] | None] = [None] * len(seeds)
        todo: list[int] = []
        for i, (seed, sh) in enumerate(zip(seeds, shared, strict=True)):
            hit = self._cache.get(seed) if sh else None
            if hit is not None and (hit[1] is not None or not text):
                out[i] = hit
            else:
                todo.append(i)
        if todo:
            pos = self.positions([seeds[i] for i in todo])
            ids = self.vocab.ids[pos]
            words = self._words
            for row, i in enumerate(todo):
                t = "".join(map(words.__getitem__, pos[row].tolist())) if text else None
                pair = (ids[row], t)
                out[i] = pair
                if shared[i] and len(self._cache) < 200_000:
                    self._cache[seeds[i]] = pair
        return [p for p in out if p is not None]


def _first_difference(a: list[int], b: list[int], n: int) -> int:
    """The first i < n with a[i] != b[i] (there is one): chunks compared in C, then one by
    one inside the first chunk that differs."""
    step = 64
    i = 0
    while a[i : i + step] == b[i : i + step]:
        i += step
    return next(j for j in range(i, min(i + step, n)) if a[j] != b[j])


class Context:
    """One agent's prompt state within a session: the blocks sent so far and their content, so
    each turn costs O(new blocks) and the next prompt extends the previous one exactly.

    Text prompts are `template` tokens shorter than recorded: the recorded count covers the
    linearized request including its role marker, and the server counts its chat template's
    tokens on top of the text, so the server-side count lands on the recorded one."""

    def __init__(self, synth: Synth, form: Form, *, template: int | None = None) -> None:
        self.synth = synth
        self.form = form
        self.template = (synth.template if template is None else template) if form == "text" else 0
        self.reset()

    def reset(self) -> None:
        """Forget the session (a new session starts from an empty context)."""
        self._blocks: list[int] = []
        self._scope: int | None = None
        self._seeds: list[int] = []
        self._ids: list[np.ndarray] = []
        self._texts: list[str | None] = []
        self._seen: set[int] = set()
        self._marked = 0
        """Leading seeds already in the seen sets (they only grow), so a turn costs O(new)."""

    def build(self, blocks: Sequence[int], tokens: int, scope: int) -> Prompt:
        """The prompt of a turn with full block-id list `blocks` and `tokens` input tokens.

        Full blocks are whole block contents; a partial last block is the first k tokens of
        its block's content; tokens the block list does not cover (inconsistent corpora) are
        filled with private content that depends on the position.
        """
        synth = self.synth
        bs = synth.block_size
        tokens = max(1, tokens - self.template) if tokens > 0 else 0
        nblocks = min(len(blocks), -(-tokens // bs))
        used = list(blocks[:nblocks])
        if scope != self._scope:
            self.reset()
            self._scope = scope
        same = min(len(self._blocks), len(used))
        if self._blocks[:same] != used[:same]:  # a rewritten context: find where
            same = _first_difference(self._blocks, used, same)
        blocks_only = self.form == "blocks"  # no content: a modelled engine needs the seeds
        del self._blocks[same:], self._seeds[same:]
        if not blocks_only:
            del self._ids[same:], self._texts[same:]
        self._marked = min(self._marked, same)
        new = used[same:]
        if new:
            seeds = synth.seeds(new, scope)
            self._seeds.extend(seeds)
            if not blocks_only:
                shared = [synth.is_shared(b) for b in new]
                for ids, text in synth.contents(seeds, shared, self.form == "text"):
                    self._ids.append(ids)
                    self._texts.append(text)
            self._blocks.extend(new)
        full = min(nblocks, tokens // bs)
        seen, seen_shared = self._seen, synth.seen_shared
        ideal = min(self._marked, full)
        while ideal < full and (self._seeds[ideal] in seen or self._seeds[ideal] in seen_shared):
            ideal += 1
        if self._marked < full:  # file the new full blocks' seeds, C-level
            fresh = self._seeds[self._marked : full]
            if synth.shared is None:
                seen_shared.update(fresh)
            else:
                flags = list(map(synth.shared.__contains__, used[self._marked : full]))
                seen_shared.update(compress(fresh, flags))
                seen.update(compress(fresh, map(not_, flags)))
        self._marked = max(self._marked, full)
        if blocks_only:
            return Prompt(tokens=tokens, ideal_cached=ideal * bs, blocks=self._seeds[:full])
        tail_len = tokens - full * bs
        tail: np.ndarray | None = None
        if tail_len:
            if full < nblocks:
                tail = self._ids[full][:tail_len]
            else:  # the block list is shorter than the token count: pad privately
                pad = synth.tokens(synth.seeds([-1 - nblocks], scope ^ 0x5A5A))[0]
                tail = np.resize(pad, tail_len)
        cached = ideal * bs
        if synth.cache_block:
            cached -= cached % synth.cache_block
        prompt = Prompt(tokens=tokens, ideal_cached=cached)
        if self.form == "text":
            body = "".join(t or "" for t in self._texts[:full])
            prompt.text = body + synth.text(tail) if tail is not None else body
        else:
            parts = self._ids[:full] + ([tail] if tail is not None else [])
            prompt.ids = np.concatenate(parts).tolist() if parts else []
        return prompt
