"""Incremental parsing of LLM request bodies (sans-I/O).

An agent's next request re-sends its previous one with a few messages appended, so parsing
every body from scratch costs O(context) per turn. `parse(raw, key, memo)` compares `raw` with
an earlier parse (`memo`) byte-wise (memcmp speed): the bytes before the conversation array
(`messages`/`input`), its leading elements and the bytes after it are taken over when equal,
and only the new elements are decoded. Callers keep per-element results (`notes`, e.g.
linearized segments and their digests) the same way. Any mismatch the fast path can't explain
falls back to a full parse, so the result never depends on the memo.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import msgspec

_DICT_RAW = msgspec.json.Decoder(dict[str, msgspec.Raw])
_LIST_RAW = msgspec.json.Decoder(list[msgspec.Raw])
_ANY = msgspec.json.Decoder()
_WS = b" \t\r\n"
_SEP = re.compile(rb"[ \t\r\n]*,?[ \t\r\n]*")  # between array elements


class BodyError(ValueError):
    """A request body that is not a JSON object."""


@dataclass(slots=True, eq=False)
class Parsed:
    """One parsed body. `items` is the conversation array (empty when `key` is missing or not
    an array: then `array` is False and `fields` holds everything); elements taken over from
    the memo are None there, except the last one (nothing but the new elements and the last
    need decoding, and a memo holding no decoded history stays small). `notes` and `digests`
    belong to the caller (per-element results, e.g. a linearized segment and its digest): they
    start as the memo's for the elements taken over, and the caller appends its own for
    `items[len(notes):]`."""

    raw: bytes
    key: str
    array: bool
    head: dict[str, Any]  # top-level fields before the array
    tail: dict[str, Any]  # top-level fields after it
    items: list[Any]
    ends: list[int]  # byte offset just past each element
    open: int  # byte offset just past the array's "["
    close: int  # byte offset of its "]"
    reused: int = 0
    fields_same: bool = False  # every byte outside the array equals the memo's
    notes: list[Any] = field(default_factory=list)
    digests: list[Any] = field(default_factory=list)
    cache: dict[str, Any] = field(default_factory=dict)  # caller data derived from the fields

    @property
    def fields(self) -> dict[str, Any]:
        """Top-level fields other than the conversation array."""
        return {**self.head, **self.tail} if self.tail else self.head


def parse(raw: bytes, key: str, memo: Parsed | None = None, common: int | None = None) -> Parsed:
    """Parse `raw`, reusing what it shares with `memo` (a parse of an earlier body); `common`
    may pass `shared(raw, memo)` when the caller has it already."""
    if memo is not None and memo.array and memo.key == key:
        found = _incremental(raw, memo, shared(raw, memo) if common is None else common)
        if found is not None:
            return found
    return _full(raw, key, memo)


def shared(raw: bytes, memo: Parsed) -> int:
    """How many leading array elements `raw` byte-for-byte shares with `memo` (-1: not even
    the bytes before the array). Cheap: a few memcmp calls."""
    if not memo.array:
        return -1
    view = memoryview(memo.raw)
    if not raw.startswith(view[: memo.open]):
        return -1
    ends = memo.ends
    if ends and raw.startswith(view[: ends[-1]]):
        return len(ends)
    lo, hi = 0, len(ends)
    while lo < hi:  # largest k whose prefix through element k-1 matches
        mid = (lo + hi + 1) // 2
        if raw.startswith(view[: ends[mid - 1]]):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _incremental(raw: bytes, memo: Parsed, k: int) -> Parsed | None:
    if k < 0:
        return None
    if len(memo.notes) < k or len(memo.digests) < k:  # the caller never annotated the memo
        return _full(raw, memo.key, memo, k)
    view = memoryview(memo.raw)
    pos = memo.ends[k - 1] if k else memo.open
    tail = view[memo.close :]
    close = len(raw) - len(tail)
    if close >= pos and raw.endswith(tail):  # everything after the array is unchanged
        got = _elements(raw, pos, close, k, memo)
        if got is None:
            return None
        return Parsed(
            raw=raw, key=memo.key, array=True, head=memo.head, tail=memo.tail,
            items=got[0], ends=got[1], open=memo.open, close=close, reused=k,
            fields_same=True, notes=memo.notes[:k], digests=memo.digests[:k], cache=memo.cache,
        )
    # Fields after the array changed (Claude Code puts a per-request nonce in `system` after
    # `messages`): find the array's end by what followed it last time, and accept a split
    # only if both sides parse, the new elements as a list and the rest as an object, which
    # holds only where the "]" really closes the array.
    hint = bytes(view[memo.close : memo.close + 24])
    cand = raw.find(hint, pos)
    for _ in range(4):
        if cand < 0:
            break
        got = _elements(raw, pos, cand, k, memo)
        rest = raw[cand + 1 :].lstrip(_WS)
        if got is not None and rest[:1] in (b",", b"}"):
            try:
                fields = _ANY.decode(b"{" + rest[1:]) if rest[:1] == b"," else {}
            except msgspec.DecodeError:
                fields = None
            if isinstance(fields, dict):
                return Parsed(
                    raw=raw, key=memo.key, array=True, head=memo.head, tail=fields,
                    items=got[0], ends=got[1], open=memo.open, close=cand, reused=k,
                    notes=memo.notes[:k], digests=memo.digests[:k],
                )
        cand = raw.find(hint, cand + 1)
    return _full(raw, memo.key, memo, k)


def _elements(
    raw: bytes, pos: int, close: int, k: int, memo: Parsed
) -> tuple[list[Any], list[int]] | None:
    """Items and end offsets: `k` taken over from `memo`, then those in `raw[pos:close]`."""
    region = raw[pos:close].strip(_WS)
    if k and region:
        if region[:1] != b",":
            return None
        region = region[1:]
    whole = b"[" + region + b"]"
    try:
        elems = _LIST_RAW.decode(whole)  # each element's bytes, to find where it ends
        values = _ANY.decode(whole)
    except msgspec.DecodeError:
        return None
    items: list[Any] = [None] * k
    if k:
        items[-1] = memo.items[k - 1]
    items += values
    ends = memo.ends[:k]
    cursor = pos
    for elem in elems:
        cursor = _end(raw, elem, cursor)
        ends.append(cursor)
    return items, ends


def _end(raw: bytes, elem: msgspec.Raw, cursor: int) -> int:
    """Byte offset just past `elem`, the next array element of `raw` at or after `cursor`.
    Elements are separated by whitespace and one comma, so it starts right after those (a
    memcmp); `find` is the general fallback (the same answer: a JSON value can't start with
    whitespace or a comma, so its first occurrence from `cursor` is the element itself)."""
    at = _SEP.match(raw, cursor).end()  # type: ignore[union-attr]  # always matches
    if not raw.startswith(elem, at):  # any buffer
        at = raw.find(elem, cursor)
    return at + len(elem)


def _locate(raw: bytes, key: str, value: bytes) -> int:
    """Byte offset of the top-level `key`'s value: the first `"key":` followed by exactly
    those bytes (a nested key of the same name can't be followed by the whole array)."""
    for match in re.finditer(rb'"' + re.escape(key.encode()) + rb'"\s*:\s*', raw):
        if raw.startswith(value, match.end()):
            return match.end()
    raise BodyError(f"cannot locate the {key!r} array in the body")


def _full(raw: bytes, key: str, memo: Parsed | None, reuse: int = 0) -> Parsed:
    try:
        top = _DICT_RAW.decode(raw)
    except msgspec.DecodeError as exc:
        raise BodyError(f"request body is not a JSON object ({exc})") from exc
    arr = top.get(key)
    value = bytes(arr) if arr is not None else b""
    if not value.startswith(b"["):
        fields = {k: _ANY.decode(v) for k, v in top.items()}
        return Parsed(raw, key, False, fields, {}, [], [], -1, -1)
    head: dict[str, Any] = {}
    tail: dict[str, Any] = {}
    side = head
    for name, raw_value in top.items():
        if name == key:
            side = tail
        else:
            side[name] = _ANY.decode(raw_value)
    start = _locate(raw, key, value)
    try:
        elems = _LIST_RAW.decode(value)
    except msgspec.DecodeError as exc:  # pragma: no cover - the whole body decoded above
        raise BodyError(f"the {key!r} array does not decode ({exc})") from exc
    items: list[Any] = []
    ends: list[int] = []
    cursor = start + 1
    last = len(elems) - 1
    kept = min(reuse, len(memo.notes), len(memo.digests)) if memo is not None else 0
    for i, elem in enumerate(elems):
        cursor = _end(raw, elem, cursor)
        ends.append(cursor)
        items.append(None if i < kept and i != last else _ANY.decode(elem))
    close = start + len(value) - 1
    return Parsed(
        raw=raw,
        key=key,
        array=True,
        head=head,
        tail=tail,
        items=items,
        ends=ends,
        open=start + 1,
        close=close,
        reused=kept,
        notes=memo.notes[:kept] if memo is not None else [],
        digests=memo.digests[:kept] if memo is not None else [],
    )
