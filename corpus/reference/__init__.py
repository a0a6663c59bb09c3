"""The bundled reference corpora, built from public recordings by `corpus.reference.build`.

`path(name)` is the file of one of `NAMES`; `SOURCES.md` beside them says where each came from.
"""

from __future__ import annotations

from pathlib import Path

from corpus.errors import CorpusError

NAMES: tuple[str, ...] = (
    "agentperf-local",
    "claude-code",
    "coding",
    "example",
    "support",
    "swe-bench",
)
"""Build order: `coding` is fitted to `agentperf-local`."""
HERE = Path(__file__).resolve().parent


def path(name: str) -> Path:
    """The bundled corpus `name` (`claude-code` or `claude-code.zst`)."""
    stem = name.removesuffix(".zst")
    if stem not in NAMES:
        raise CorpusError(f"no reference corpus {name!r}; bundled: {', '.join(NAMES)}")
    found = HERE / f"{stem}.zst"
    if not found.exists():
        raise CorpusError(
            f"{found}: reference corpus missing from this installation; rebuild it with "
            "'python -m corpus.reference.build --data DATA --out corpus/reference'"
        )
    return found


__all__ = ["NAMES", "path"]
