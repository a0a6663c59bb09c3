"""Content-keyed tokenization cache: each distinct segment is tokenized once.

Agents re-send the same tools, system prompt and earlier messages on every call; keying token
lists by a digest of the segment text makes a request cost O(new text), not O(context). New
text goes to `corpus.tokenizer.fast` (rs-bpe) where it is available and checked, else to
tiktoken: the ids are the same either way.
"""

from __future__ import annotations

import hashlib
from array import array
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from corpus import tokenizer


def digest(text: str) -> bytes:
    """16-byte content key of a segment (unkeyed: it never leaves the process)."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def _buffer_encoder(enc: Any) -> Callable[[str], array[int]] | None:
    """tiktoken's encoder straight into a `uint32` buffer (no Python int per token), wrapped to
    give an `array('I')`; None where this tiktoken has no such entry point."""
    native = getattr(getattr(enc, "_core_bpe", None), "encode_to_tiktoken_buffer", None)
    if native is None or array("I").itemsize != 4:
        return None
    none: set[str] = set()

    def encode(text: str) -> array[int]:
        out = array("I")
        # cast("B"): the buffer's declared shape has varied across tiktoken versions; its bytes
        # are the native-order uint32 ids either way.
        out.frombytes(memoryview(native(text, none)).cast("B"))
        return out

    return encode


class TokenCache:
    """LRU map from segment text to its token ids, bounded by the total tokens it holds.

    `compact=True` holds the ids as 4-byte arrays: a seventh of the memory of int lists, and
    nothing for the garbage collector to walk (the anonymizer's cache holds millions of ids).
    `array()` returns them as they are held; `tokens()` then returns a fresh list.
    `fast=False` tokenizes with tiktoken even where rs-bpe is available (to compare the two).
    """

    def __init__(
        self,
        name: str = tokenizer.DEFAULT,
        *,
        max_tokens: int = 20_000_000,
        compact: bool = False,
        fast: bool = True,
    ) -> None:
        self._fast = tokenizer.fast(name) if fast else None
        # tiktoken, the fallback, is loaded now even with `_fast`: loading takes ~0.2 s of
        # GIL, which must not fall on a running proxy the first time a text needs it
        self._enc = tokenizer.encoding(name)  # (also rejects a name with no offline tokenizer)
        self._buffer = _buffer_encoder(self._enc) if compact else None
        self._max = max_tokens
        self._compact = compact
        self._held = 0
        self._map: OrderedDict[bytes, list[int] | array[int]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    @property
    def backend(self) -> str:
        """What tokenizes new text: "rs-bpe" or "tiktoken" (see `corpus.tokenizer.fast`)."""
        return "tiktoken" if self._fast is None else "rs-bpe"

    def _encode(self, text: str) -> list[int] | array[int]:
        """Token ids of `text` as this cache holds them (special tokens encoded as text)."""
        if self._fast is not None:
            try:
                return self._fast.array(text) if self._compact else self._fast(text)
            except UnicodeEncodeError:  # lone surrogates: tiktoken's own fallback below
                pass
        if self._buffer is not None:
            try:
                return self._buffer(text)
            except UnicodeEncodeError:
                pass
        ids = self._enc.encode(text, disallowed_special=())
        return array("I", ids) if self._compact else ids

    def _get(self, text: str, key: bytes | None) -> list[int] | array[int]:
        if key is None:
            key = digest(text)
        found = self._map.get(key)
        if found is not None:
            self._map.move_to_end(key)
            self.hits += 1
            return found
        self.misses += 1
        toks = self._encode(text)
        self._map[key] = toks
        self._held += len(toks)
        while self._held > self._max and len(self._map) > 1:
            _, old = self._map.popitem(last=False)
            self._held -= len(old)
        return toks

    def tokens(self, text: str, key: bytes | None = None) -> list[int]:
        """Token ids of `text`; `key` may pass a precomputed `digest(text)`. Do not mutate."""
        found = self._get(text, key)
        return found.tolist() if isinstance(found, array) else found

    def array(self, text: str, key: bytes | None = None) -> array[int]:
        """Token ids of `text` as an `array('I')` (no copy when compact). Do not mutate."""
        found = self._get(text, key)
        return found if isinstance(found, array) else array("I", found)

    def count(self, segments: list[str]) -> int:
        """Total tokens over `segments`."""
        return sum(len(self.tokens(s)) for s in segments)
