"""The fast tokenizer (rs-bpe) against the reference (tiktoken): same ids, or not used at all."""

from __future__ import annotations

import importlib
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corpus import TokenCache, tokenizer

# Characters that exercise cl100k's pre-tokenizer: every kind of whitespace and line break,
# letters of several scripts and cases, combining marks, digits (ASCII and not), punctuation,
# contraction suffixes, emoji sequences and special-token text.
ALPHABET = [
    *" \t\n\r\x0b\x0c\u00a0\u2028\u2029\u3000\u200b\u200d\ufeff",
    *"aZéßΩжحא你好ア한",
    *"0123456789٣½Ⅻ²",
    *"'’\".,;:!?-_()[]{}<>/\\|@#$%^&*+=~`",
    "'s", "'ll", "'VE", "'D", "🎉", "👨\u200d👩\u200d👧", "\u0301", "<|endoftext|>", "\x00",
]
TEXT = st.lists(st.sampled_from(ALPHABET), max_size=80).map("".join)
# lines of such text: many places where `_cuts` may cut (after line breaks, and after letters
# followed by punctuation or spaces)
LINES = st.lists(
    st.tuples(st.sampled_from(["", " ", "    ", "\t", " \t "]), TEXT, st.sampled_from(
        ["\n", "\n\n", "\r\n", " \n", "\n \n", ";\n"])),
    max_size=30,
).map(lambda rows: "".join(a + b + c for a, b, c in rows))


@pytest.fixture
def fresh() -> Iterator[None]:
    """`tokenizer.fast` re-evaluated under the test's conditions, and afterwards."""
    tokenizer.fast.cache_clear()
    yield
    tokenizer.fast.cache_clear()


def test_fast_encoder_is_used_where_rs_bpe_has_a_wheel() -> None:
    if sys.version_info >= (3, 14):  # pragma: no cover - no rs-bpe dependency there
        pytest.skip("rs-bpe is a dependency for Python < 3.14 only")
    assert tokenizer.backend() == "rs-bpe"
    assert TokenCache().backend == "rs-bpe"
    assert TokenCache(fast=False).backend == "tiktoken"


@settings(max_examples=400, deadline=None)
@given(TEXT)
def test_fast_ids_equal_tiktoken_ids(text: str) -> None:
    encode = tokenizer.fast()
    assert encode is not None
    assert encode(text) == tokenizer.encode(text)


@settings(max_examples=200, deadline=None)
@given(LINES, st.integers(min_value=1, max_value=40))
def test_cutting_where_the_pretokenizer_cuts_keeps_the_ids(text: str, size: int) -> None:
    """The cut rule against the reference itself: tiktoken's ids of the parts, one after the
    other, are its ids of the whole text."""
    parts = tokenizer._cuts(text, size)
    assert "".join(parts) == text
    assert [i for part in parts for i in tokenizer.encode(part)] == tokenizer.encode(text)


def _installed_text() -> Iterator[str]:
    """Real text of many kinds: every 40th source, data and doc file of installed packages."""
    site = Path(pytest.__file__).resolve().parents[1]
    files = sorted(p for ext in ("py", "json", "md", "txt", "html", "js", "toml", "rst", "pyi")
                   for p in site.glob(f"*/**/*.{ext}"))
    for path in files[::40]:
        try:
            yield path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue


def test_fast_ids_equal_tiktoken_ids_on_installed_files() -> None:
    encode = tokenizer.fast()
    assert encode is not None
    texts = list(_installed_text())
    assert len(texts) > 200
    long = "".join(texts)  # also one text far longer than a piece: encoded in parts
    assert len(long) > 100 * tokenizer.PIECE
    for text in [*texts, long]:
        assert encode(text) == tokenizer.encode(text)


def test_long_texts_go_to_the_fast_encoder_in_pieces(
    fresh: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rs-bpe holds the GIL while it encodes: no call may take a whole long text when it has
    places to cut at, and other threads get the GIL between calls."""
    real = importlib.import_module("rs_bpe.bpe").openai.cl100k_base()
    sizes: list[int] = []

    def native(text: str) -> list[int]:
        sizes.append(len(text))
        return real.encode(text)  # type: ignore[no-any-return]

    _fake_rs_bpe(monkeypatch, native)
    encode = tokenizer.fast()
    assert encode is not None
    yields: list[float] = []
    monkeypatch.setattr(tokenizer.time, "sleep", yields.append)
    lines = "".join(f"line {i}: value = {i * 7} # é\n" for i in range(20_000))
    minified = json.dumps([{"id": i, "name": f"item{i}", "tags": ["a", "b"]} for i in range(9000)],
                          separators=(",", ":"))
    for text in (lines, minified):
        for run in (encode, encode.array):
            sizes.clear()
            yields.clear()
            assert list(run(text)) == tokenizer.encode(text)
            assert len(sizes) > 20
            assert max(sizes) < tokenizer.PIECE + 100
            assert yields == [0] * len(sizes)  # the GIL offered to other threads after each


def _fake_rs_bpe(monkeypatch: pytest.MonkeyPatch, encode: Any) -> None:
    """`rs_bpe.bpe` as `tokenizer.fast` imports it, with `encode` as cl100k's encoder; None:
    the import fails, as where rs-bpe is not installed."""
    real_import = importlib.import_module

    def fake_import(name: str, *args: Any) -> Any:
        if name == "rs_bpe.bpe":
            if encode is None:
                raise ImportError("No module named 'rs_bpe'")
            tok = SimpleNamespace(encode=encode)
            return SimpleNamespace(openai=SimpleNamespace(cl100k_base=lambda: tok))
        return real_import(name, *args)

    monkeypatch.setattr(tokenizer.importlib, "import_module", fake_import)


def test_a_fast_encoder_that_disagrees_is_not_used(
    fresh: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = importlib.import_module("rs_bpe.bpe").openai.cl100k_base()

    def off_by_one(text: str) -> list[int]:
        ids: list[int] = real.encode(text)
        return ids[:-1] if "Ⅻ" in text else ids

    _fake_rs_bpe(monkeypatch, off_by_one)
    with caplog.at_level(logging.WARNING, logger="corpus.tokenizer"):
        assert tokenizer.fast() is None
    assert "disagrees with tiktoken" in caplog.text
    cache = TokenCache(compact=True)
    assert cache.backend == "tiktoken"
    assert cache.array("Ⅻ and more").tolist() == tokenizer.encode("Ⅻ and more")


def test_missing_rs_bpe_falls_back_to_tiktoken(
    fresh: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_rs_bpe(monkeypatch, None)
    assert tokenizer.fast() is None
    assert tokenizer.backend() == "tiktoken"
    assert TokenCache().tokens("hello world") == tokenizer.encode("hello world")


def test_environment_can_insist_on_tiktoken(fresh: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(tokenizer.BACKEND_ENV, "tiktoken")
    assert tokenizer.fast() is None
    assert TokenCache().backend == "tiktoken"


def test_probe_fingerprint_is_tiktokens() -> None:
    """The load-time check's expected ids are tiktoken's (kept as a digest, so the check
    needs no tiktoken load)."""
    ids = tokenizer.encode(tokenizer._PROBE)
    assert tokenizer._fingerprint(ids) == tokenizer._PROBE_IDS
    assert len(tokenizer._cuts(tokenizer._PROBE, tokenizer.PIECE)) > 1


def test_lone_surrogates_go_to_tiktoken() -> None:
    cache = TokenCache(compact=True)
    assert cache.backend == "rs-bpe"
    text = "lone \ud800 surrogate " * 2000  # long, so the fast path would cut it
    assert cache.array(text).tolist() == tokenizer.encode(text)
