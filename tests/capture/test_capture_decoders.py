"""Incremental content decoding: the same bytes whatever the chunking."""

from __future__ import annotations

import pytest
from capture_upstream import compress, compress_stream

from capture import decoders

BODY = b"".join(b"data: {\"n\": %d, \"text\": \"caf\xc3\xa9\"}\n\n" % i for i in range(40))
PARTS = [BODY[i : i + 37] for i in range(0, len(BODY), 37)]


@pytest.mark.parametrize("encoding", ["gzip", "br", "zstd", "deflate", "identity"])
def test_streamed_compression_decodes_at_every_split(encoding: str) -> None:
    if encoding == "deflate":
        import zlib

        data = zlib.compress(BODY)
    elif encoding == "identity":
        data = BODY
    else:
        data = b"".join(compress_stream(PARTS, encoding))
    for cut in range(0, len(data), 5):
        dec = decoders.make(encoding)
        out = dec.decode(data[:cut]) + dec.decode(data[cut:]) + dec.flush()
        assert out == BODY


@pytest.mark.parametrize("encoding", ["gzip", "br", "zstd"])
def test_each_flushed_chunk_decodes_before_the_stream_ends(encoding: str) -> None:
    dec = decoders.make(encoding)
    got = b""
    for part, chunk in zip(PARTS, compress_stream(PARTS, encoding), strict=True):
        got += dec.decode(chunk)
        assert got.endswith(part)


def test_stacked_encodings_and_errors() -> None:
    data = compress(compress(BODY, "gzip"), "br")
    assert decoders.decode_all([data[:10], data[10:]], "gzip, br") == BODY
    with pytest.raises(decoders.DecodeError):
        decoders.make("compress")
    with pytest.raises(decoders.DecodeError):
        decoders.decode_all([b"not gzip"], "gzip")
