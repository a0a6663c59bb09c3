"""Output files that a long job checks before it starts and replaces only when complete.

`check` refuses what would fail or overwrite silently (an existing file without `force`, a
missing directory, a directory in the way); `write` writes beside the target and renames, so a
failure never leaves a half-written file, and its error names the target, not the temporary.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from corpus.errors import CorpusError


def check(
    out: str | os.PathLike[str], *, force: bool = False, inputs: Iterable[os.PathLike[str]] = ()
) -> Path:
    """`out` as a Path, once it is known to be writable: refuses an existing file unless
    `force`, a directory, a missing or read-only parent, and any of `inputs`."""
    target = Path(out)
    if target.is_dir():
        raise CorpusError(f"{target}: is a directory; give a file name")
    if target.exists():
        for src in inputs:
            if Path(src).exists() and os.path.samefile(target, src):
                raise CorpusError(f"{target}: is also an input; write the output elsewhere")
        if not force:
            raise CorpusError(f"{target}: already exists; pass --force to replace it")
    parent = target.parent
    if not parent.is_dir():
        raise CorpusError(f"{parent}: no such directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise CorpusError(f"{parent}: not writable")
    return target


def temporary(target: Path) -> Path:
    """The temporary path beside `target` that `write` and `ops.replacing` fill first."""
    return target.with_name(f".{target.stem}.tmp{os.getpid()}{target.suffix}")


def write(out: str | os.PathLike[str], data: bytes) -> Path:
    """Write `data` to `out` through a temporary file beside it and a rename."""
    target = Path(out)
    tmp = temporary(target)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CorpusError(f"{target}: cannot write ({exc.strerror or exc})") from exc
    return target
