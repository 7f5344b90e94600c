"""A zip archive written as a stream of byte pieces, for answers too large to hold.

The standard library's `zipfile` writes to a file object that can neither seek nor tell: each
entry's sizes and CRC then follow its data in a data descriptor, and the central directory
comes last. `ZipStream` gives it a sink that only collects what it writes, and hands the
collected bytes on after every write, so what the archive holds at once is one piece of input
plus what deflate keeps (and the central directory's entries: a few dozen bytes a file).
Deflating runs in a worker thread, away from the Trio thread; files that are compressed already
(photos, PDFs, office documents) are stored as they are.
"""

from __future__ import annotations

import time
import zipfile
from collections.abc import AsyncIterable, AsyncIterator

import trio

# Pieces of input handed to deflate at once, and the least output worth yielding on its own.
PIECE_BYTES = 256 * 1024


class _Sink:
    """Where zipfile writes: it only collects, for `ZipStream` to take away."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


class ZipStream:
    """One archive being written: entries added one after another, each an async iterable of
    its bytes, each yielding the archive's bytes as they are made; `finish` yields the end
    (the central directory). Not for use by two tasks at once."""

    def __init__(self) -> None:
        self._sink = _Sink()
        self._zip = zipfile.ZipFile(self._sink, "w", allowZip64=True)
        self._moment = time.gmtime()[:6]

    async def add(
        self,
        name: str,
        data: AsyncIterable[bytes],
        *,
        compress: bool = True,
        size_hint: int = 0,
        large: bool = False,
    ) -> AsyncIterator[bytes]:
        """Add the entry `name` with the bytes of `data`; `compress` deflates it (in a worker
        thread), `size_hint` is its size when known (ZIP64 is used past 2 GiB), `large` asks
        for ZIP64 whatever the size (an entry whose size is not known beforehand)."""
        info = zipfile.ZipInfo(name, date_time=self._moment)  # type: ignore[arg-type]
        info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        info.file_size = size_hint
        info.external_attr = 0o644 << 16
        with self._zip.open(info, "w", force_zip64=large) as entry:
            async for piece in data:
                if not piece:
                    continue
                if compress:
                    await trio.to_thread.run_sync(entry.write, piece)
                else:
                    entry.write(piece)
                out = self._sink.take()
                if out:
                    yield out
        out = self._sink.take()
        if out:
            yield out

    async def add_bytes(
        self, name: str, data: bytes, *, compress: bool = True
    ) -> AsyncIterator[bytes]:
        """Add a small entry held in memory (a manifest, a profile)."""

        async def once() -> AsyncIterator[bytes]:
            yield data

        async for out in self.add(name, once(), compress=compress, size_hint=len(data)):
            yield out

    def finish(self) -> bytes:
        """The rest of the archive: its central directory and end record."""
        self._zip.close()
        return self._sink.take()


async def pieces(chunks: AsyncIterable[bytes], size: int = PIECE_BYTES) -> AsyncIterator[bytes]:
    """`chunks` gathered into pieces of at least `size` bytes (the last may be shorter), so
    small JSON rows cost one deflate call and one worker-thread hop per piece, not per row."""
    held: list[bytes] = []
    have = 0
    async for chunk in chunks:
        held.append(chunk)
        have += len(chunk)
        if have >= size:
            yield b"".join(held)
            held.clear()
            have = 0
    if held:
        yield b"".join(held)
