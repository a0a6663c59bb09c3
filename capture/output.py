"""Opening the output corpus: a new file, or an existing one appended to with its keys sidecar
(so block ids and session start times stay consistent across restarts).

A capture killed while writing can leave a torn last frame; appending after it would hide
every later frame from readers. The torn bytes are moved aside to `<file>.torn-<offset>` (for
`corpus salvage`) and the file is cut back to its intact frames before appending.
"""

from __future__ import annotations

import os
from pathlib import Path

from corpus import Header, TruncatedError, Writer


def open_corpus(
    path: str | os.PathLike[str], *, domain: str, flush_every: float = 1.0
) -> tuple[Writer, list[str]]:
    """A writer for `path` and notes for the user (what was repaired)."""
    path = Path(path)
    notes: list[str] = []
    header = Header(domain=domain, source="capture")
    exists = path.exists() and path.stat().st_size > 0
    if not exists:
        return Writer.create(path, header, flush_every=flush_every), notes
    try:
        writer = Writer.append(path, block_size=header.block_size, flush_every=flush_every)
    except TruncatedError as exc:
        aside = path.with_name(f"{path.name}.torn-{exc.offset}")
        with open(path, "r+b") as f:
            f.seek(exc.offset)
            torn = f.read()
            aside.write_bytes(torn)
            f.truncate(exc.offset)
        notes.append(
            f"{path}: the last frame was torn by a killed capture; moved its {len(torn)} bytes "
            f"to {aside} and appending after the {exc.intact_frames} intact frames"
        )
        writer = Writer.append(path, block_size=header.block_size, flush_every=flush_every)
    if writer.header.domain != domain and domain != "unknown":
        notes.append(
            f"{path}: appending to a '{writer.header.domain}' corpus; --domain {domain} ignored"
        )
    notes.append(f"{path}: appending (session ids continue after the existing ones)")
    return writer, notes
