"""Blobs in a local directory (HUB_BLOB_URL's default, `var/blobs`): one hub process, or nodes
sharing a file system.

A blob is written to `tmp/` first, flushed to disk and renamed into place (`ab/abcdef…`): a
rename is atomic, so a reader sees either no blob or the whole of it, and a crash mid-write
leaves only a stray in `tmp/`, removed the next time the store opens. File calls run in worker
threads: a slow disk never stalls the Trio thread.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path

import trio

from hub.attachments.blobstore import BlobMissing, BlobStoreFailed, check_key

log = logging.getLogger(__name__)


class LocalBlobs:
    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = root
        self._tmp = root / "tmp"

    @classmethod
    async def open(cls, root: Path) -> LocalBlobs:
        """The store at `root`, created if needed, with what an interrupted write left removed."""
        store = cls(root)
        await trio.to_thread.run_sync(store._prepare)
        return store

    @classmethod
    def prepared(cls, root: Path) -> LocalBlobs:
        """`open` for a caller outside Trio or at startup (a directory made, a few strays
        removed: brief, blocking)."""
        store = cls(root)
        store._prepare()
        return store

    def _prepare(self) -> None:
        self._tmp.mkdir(parents=True, exist_ok=True)
        for stray in self._tmp.iterdir():
            stray.unlink(missing_ok=True)

    def _path(self, key: str) -> Path:
        check_key(key)
        return self.root / key[:2] / key

    async def put(self, key: str, parts: AsyncIterable[bytes]) -> int:
        final = self._path(key)
        temporary = self._tmp / f"{key}.{secrets.token_hex(4)}"
        handle = await _disk(temporary.open, "wb")
        written = 0
        try:
            async for part in parts:
                await _disk(handle.write, part)
                written += len(part)
            await _disk(_flush_and_close, handle)
            await _disk(_move_into_place, temporary, final)
        except BaseException:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(_discard, handle, temporary)
            raise
        return written

    async def read(self, key: str, offset: int, length: int) -> bytes:
        path = self._path(key)
        try:
            return await trio.to_thread.run_sync(_read_range, path, offset, length)
        except FileNotFoundError:
            raise BlobMissing(f"blob {key} is not in the store") from None

    async def delete(self, key: str) -> None:
        path = self._path(key)
        await trio.to_thread.run_sync(lambda: path.unlink(missing_ok=True))

    async def keys(self) -> AsyncIterator[str]:
        names = await trio.to_thread.run_sync(self._list)
        for name in names:
            yield name

    def _list(self) -> list[str]:
        found = []
        for folder in self.root.iterdir():
            if folder.is_dir() and len(folder.name) == 2:
                found.extend(p.name for p in folder.iterdir() if p.name.startswith(folder.name))
        return sorted(found)


async def _disk(call, *args):  # type: ignore[no-untyped-def]
    """A file call in a worker thread; the disk's refusal (full, read-only) as BlobStoreFailed."""
    try:
        return await trio.to_thread.run_sync(call, *args)
    except OSError as exc:
        log.warning("attachments: the blob directory refused a write: %s", exc)
        raise BlobStoreFailed(
            f"the attachment store could not store the file ({exc.strerror or exc})"
        ) from None


def _flush_and_close(handle) -> None:  # type: ignore[no-untyped-def]
    handle.flush()
    os.fsync(handle.fileno())
    handle.close()


def _move_into_place(temporary: Path, final: Path) -> None:
    final.parent.mkdir(exist_ok=True)
    os.replace(temporary, final)
    # The rename is durable once the directory entry is on disk.
    directory = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _discard(handle, temporary: Path) -> None:  # type: ignore[no-untyped-def]
    handle.close()
    temporary.unlink(missing_ok=True)


def _read_range(path: Path, offset: int, length: int) -> bytes:
    with path.open("rb") as handle:
        handle.seek(offset)
        return handle.read(length)
