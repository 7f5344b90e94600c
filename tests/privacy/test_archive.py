"""The streaming zip writer: a large entry leaves it in pieces as it is written (never held
whole), and what comes out is a valid archive."""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import AsyncIterator

from hub.privacy.archive import ZipStream

CHUNK = 64 * 1024


async def chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), CHUNK):
        yield data[start : start + CHUNK]


async def test_a_large_entry_leaves_in_pieces_no_larger_than_what_went_in():
    data = os.urandom(4 * 1024 * 1024)
    stream = ZipStream()
    pieces = [p async for p in stream.add("big.bin", chunks(data), compress=False)]
    pieces += [p async for p in stream.add_bytes("small.json", b'{"a": 1}')]
    pieces.append(stream.finish())

    assert len(pieces) > 60
    assert max(len(p) for p in pieces) <= CHUNK + 1024  # one chunk and a header at most
    zipped = zipfile.ZipFile(io.BytesIO(b"".join(pieces)))
    assert zipped.testzip() is None
    assert zipped.read("big.bin") == data
    assert zipped.getinfo("small.json").compress_type == zipfile.ZIP_DEFLATED
