"""Sealed files in a blob store: writing a stream into one, and reading plaintext back by range.

Writing holds at most one chunk of plaintext besides what the store buffers; reading opens only
the chunks a range touches, a few at a time. `SealedFile` is the same read as a seekable file
object, for a library that wants one (Pillow, in a worker thread).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from uuid import UUID

import trio

from hub.attachments.blobstore import BlobStore
from hub.attachments.chunks import (
    CHUNK,
    HEADER_SIZE,
    Opener,
    Sealer,
    chunk_span,
    chunks_for_range,
)
from hub.crypto import KeyRing

# Chunks fetched from the store per read while serving a range (1 MiB of plaintext).
READ_CHUNKS = 16


@dataclass(frozen=True, slots=True)
class Written:
    size: int
    sha256: str


async def write_sealed(
    store: BlobStore, ring: KeyRing, blob_id: UUID, source: AsyncIterable[bytes]
) -> Written:
    """Seal `source` into the blob `blob_id.hex`, bound to `blob_id`; its plaintext size and
    SHA-256. An exception from `source` (a limit broken midway) leaves no blob behind."""
    sealer = Sealer(ring, blob_id)
    digest = hashlib.sha256()

    async def parts() -> AsyncIterator[bytes]:
        yield sealer.header()
        async for data in source:
            digest.update(data)
            for sealed in sealer.feed(data):
                yield sealed
        yield sealer.finish()

    await store.put(blob_id.hex, parts())
    return Written(sealer.size, digest.hexdigest())


async def read_plain(
    store: BlobStore,
    ring: KeyRing,
    blob_id: UUID,
    size: int,
    start: int = 0,
    end: int | None = None,
) -> AsyncIterator[bytes]:
    """Plaintext bytes start..end (inclusive; the whole file by default) of the sealed blob, in
    pieces of at most READ_CHUNKS chunks. DecryptionFailed when any chunk was tampered with."""
    if size == 0:
        return
    end = size - 1 if end is None else end
    opener = Opener(ring, blob_id, await store.read(blob_id.hex, 0, HEADER_SIZE), size)
    indexes = chunks_for_range(size, start, end)
    for first in range(indexes.start, indexes.stop, READ_CHUNKS):
        last = min(first + READ_CHUNKS, indexes.stop) - 1
        offset, _ = chunk_span(size, first)
        last_offset, last_length = chunk_span(size, last)
        sealed = await store.read(blob_id.hex, offset, last_offset + last_length - offset)
        pieces = []
        at = 0
        for index in range(first, last + 1):
            _, length = chunk_span(size, index)
            pieces.append(opener.open(index, sealed[at : at + length]))
            at += length
        plain = b"".join(pieces)
        lo = max(start - first * CHUNK, 0)
        hi = min(end - first * CHUNK + 1, len(plain))
        yield plain[lo:hi]


class SealedFile(io.RawIOBase):
    """A sealed blob as a read-only, seekable file, for code in a worker thread started by
    `trio.to_thread.run_sync`: each read asks the Trio thread for the chunks it needs."""

    def __init__(self, store: BlobStore, ring: KeyRing, blob_id: UUID, size: int) -> None:
        self._store, self._ring, self._id, self._size = store, ring, blob_id, size
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def,override]
        want = min(len(buffer), self._size - self._position)
        if want <= 0:
            return 0
        data = trio.from_thread.run(self._read, self._position, self._position + want - 1)
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)

    async def _read(self, start: int, end: int) -> bytes:
        plain = read_plain(self._store, self._ring, self._id, self._size, start, end)
        return b"".join([piece async for piece in plain])
