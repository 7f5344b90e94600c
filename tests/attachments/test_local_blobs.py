"""The local blob store: whole blobs or nothing, ranges, deletion, and keys that cannot escape."""

from __future__ import annotations

import os

import pytest
import trio

from hub.attachments.blobstore import BlobMissing
from hub.attachments.localblobs import LocalBlobs

KEY = "0123456789abcdef0123456789abcdef"


async def parts(*chunks: bytes):
    for chunk in chunks:
        yield chunk


async def test_a_blob_is_stored_whole_and_read_by_range(tmp_path):
    store = await LocalBlobs.open(tmp_path / "blobs")
    data = os.urandom(200_000)
    assert await store.put(KEY, parts(data[:70_000], data[70_000:])) == len(data)
    assert await store.read(KEY, 0, len(data)) == data
    assert await store.read(KEY, 123, 1000) == data[123:1123]
    assert await store.read(KEY, len(data) - 10, 100) == data[-10:]
    assert [key async for key in store.keys()] == [KEY]
    assert (tmp_path / "blobs" / KEY[:2] / KEY).read_bytes() == data

    await store.delete(KEY)
    await store.delete(KEY)  # twice is fine
    with pytest.raises(BlobMissing):
        await store.read(KEY, 0, 1)
    assert [key async for key in store.keys()] == []


async def test_a_write_that_fails_midway_leaves_nothing(tmp_path):
    store = await LocalBlobs.open(tmp_path / "blobs")

    async def failing():
        yield b"x" * 1000
        raise OSError("the client went away")

    with pytest.raises(OSError, match="went away"):
        await store.put(KEY, failing())
    assert [key async for key in store.keys()] == []
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []


async def test_a_cancelled_write_leaves_nothing(tmp_path):
    store = await LocalBlobs.open(tmp_path / "blobs")
    started = trio.Event()

    async def slow():
        yield b"y" * 1000
        started.set()
        await trio.sleep_forever()
        yield b""  # never reached

    async with trio.open_nursery() as nursery:
        nursery.start_soon(store.put, KEY, slow())
        await started.wait()
        nursery.cancel_scope.cancel()
    assert [key async for key in store.keys()] == []
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []


async def test_what_a_crash_left_in_tmp_is_removed_when_the_store_opens(tmp_path):
    root = tmp_path / "blobs"
    (root / "tmp").mkdir(parents=True)
    (root / "tmp" / f"{KEY}.dead").write_bytes(b"half a file")
    store = await LocalBlobs.open(root)
    assert list((root / "tmp").iterdir()) == []
    assert [key async for key in store.keys()] == []


@pytest.mark.parametrize("key", ["../../etc/passwd", "ABCDEF0123456789abcdef0123456789", "tmp", ""])
async def test_keys_that_are_not_hex_ids_are_refused(tmp_path, key):
    store = await LocalBlobs.open(tmp_path / "blobs")
    with pytest.raises(ValueError, match="not a blob key"):
        await store.put(key, parts(b"x"))
    with pytest.raises(ValueError, match="not a blob key"):
        await store.read(key, 0, 1)
