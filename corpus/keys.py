"""The private sidecar `<corpus>.keys`: the block-hash key, the time origin and the hash->id table.

Layout: a 64-byte header (magic, 32-byte random key, float64 epoch, reserved), then one 16-byte
digest per block id, in id order, append-only. Created with mode 0600. Keeping it lets a later
capture into the same corpus reuse ids and session start times; deleting it makes the corpus
unlinkable to any content. A torn final digest (a kill mid-write) is ignored on load.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import struct
from pathlib import Path

from corpus.errors import CorpusError

MAGIC = b"agentload-keys1\n"
HEADER = struct.Struct("<16s32sd8x")
DIGEST = 16


def sidecar(path: str | os.PathLike[str]) -> Path:
    """Where the keys of corpus `path` live."""
    return Path(f"{os.fspath(path)}.keys")


class Keys:
    """Key material and block table of one corpus. `id()` assigns ids in first-seen order."""

    def __init__(
        self,
        key: bytes,
        epoch: float | None,
        digests: list[bytes],
        path: Path | None,
        *,
        base: int = 0,
    ) -> None:
        self.key = key
        self.epoch = epoch
        self.path = path
        self.base = base  # first id this table assigns (ephemeral keys appending to a corpus)
        self._ids: dict[bytes, int] = {d: base + i for i, d in enumerate(digests)}
        self._saved = len(digests)
        self._new: list[bytes] = []
        self._epoch_saved = epoch

    @classmethod
    def ephemeral(cls, *, base: int = 0) -> Keys:
        """Keys that are never saved (the corpus can't be appended to with consistent ids).
        Ids start at `base`, so appending with them never reuses an id already in the file."""
        return cls(secrets.token_bytes(32), None, [], None, base=base)

    @classmethod
    def create(
        cls, corpus: str | os.PathLike[str], *, key: bytes | None = None, epoch: float | None = None
    ) -> Keys:
        """A new sidecar for `corpus` (mode 0600; fails if one exists), with a random key unless
        `key` is given (a copy of a corpus that keeps its id space)."""
        path = sidecar(corpus)
        keys = cls(key if key is not None else secrets.token_bytes(32), epoch, [], path)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(HEADER.pack(MAGIC, keys.key, float("nan") if epoch is None else epoch))
        return keys

    @classmethod
    def open(cls, corpus: str | os.PathLike[str], *, create: bool = True) -> Keys:
        """Load the sidecar of `corpus`, or create a fresh one (mode 0600) when allowed."""
        path = sidecar(corpus)
        if not path.exists():
            if not create:
                raise CorpusError(f"{path}: no keys sidecar; ids can't be kept consistent")
            return cls.create(corpus)
        data = path.read_bytes()
        if len(data) < HEADER.size or data[:16] != MAGIC:
            raise CorpusError(
                f"{path}: not an agentload keys file; move it away to start a new id space"
            )
        _, key, epoch = HEADER.unpack_from(data)
        body = memoryview(data)[HEADER.size :]
        whole = len(body) // DIGEST * DIGEST
        digests = [bytes(body[i : i + DIGEST]) for i in range(0, whole, DIGEST)]
        keys = cls(key, None if epoch != epoch else epoch, digests, path)
        if whole != len(body):  # torn tail from a kill: drop it so appends stay aligned
            with open(path, "r+b") as f:
                f.truncate(HEADER.size + whole)
        return keys

    def __len__(self) -> int:
        return len(self._ids)

    def digests(self) -> list[bytes]:
        """Every known digest, in id order (digest i has id `base + i`)."""
        return list(self._ids)

    def id(self, digest: bytes) -> int:
        """The corpus-wide id of a block digest, assigning the next id on first sight."""
        found = self._ids.get(digest)
        if found is None:
            found = self._ids[digest] = self.base + len(self._ids)
            self._new.append(digest)
        return found

    def ids(self, digests: list[bytes]) -> list[int]:
        """`id()` of each digest, in order (one call for all the blocks of a segment)."""
        table, new, base = self._ids, self._new, self.base
        out: list[int] = []
        for d in digests:
            found = table.get(d)
            if found is None:
                found = table[d] = base + len(table)
                new.append(d)
            out.append(found)
        return out

    def mac(self, data: bytes) -> bytes:
        """Keyed 16-byte digest of `data` (HMAC-free BLAKE2b keyed mode)."""
        return hashlib.blake2b(data, key=self.key, digest_size=DIGEST).digest()

    def tag(self, label: str) -> str:
        """Short keyed pseudonym of `label`: stable within the corpus, unlinkable without keys."""
        return hmac.new(self.key, label.encode(), "sha256").hexdigest()[:8]

    def set_epoch(self, epoch: float) -> None:
        if self.epoch is None:
            self.epoch = epoch

    def save(self) -> None:
        """Append ids assigned since the last save (and the epoch once set). Idempotent."""
        if self.path is None:
            self._new.clear()
            return
        if not self._new and self.epoch == self._epoch_saved:
            return
        with open(self.path, "r+b") as f:
            if self.epoch != self._epoch_saved:
                f.seek(0)
                f.write(HEADER.pack(MAGIC, self.key, self.epoch))
                self._epoch_saved = self.epoch
            f.seek(HEADER.size + self._saved * DIGEST)
            f.write(b"".join(self._new))
            f.flush()
        self._saved += len(self._new)
        self._new.clear()
