"""A file's contents sealed with AES-256-GCM in chunks, without I/O (the caller streams).

A sealed blob is a header, then chunks. The header names the format, the key version and the
chunk size. Chunk k holds plaintext bytes [k * CHUNK, (k + 1) * CHUNK): a nonce of its own, then
the ciphertext with its tag. Each chunk's associated data is the header, the attachment's id,
its index and whether it is the last. Chunks moved to another attachment, swapped, dropped from
the end or cut short all fail to authenticate. Fixed-size chunks put chunk k at a known offset,
so a byte range is served by opening only the chunks it touches (`chunk_span`).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hub.crypto import NONCE_SIZE, DecryptionFailed, KeyRing

CHUNK = 64 * 1024
TAG_SIZE = 16
MAGIC = b"VCHA1"
_HEADER = struct.Struct(">5sII")  # magic, key version, chunk size
HEADER_SIZE = _HEADER.size
OVERHEAD = NONCE_SIZE + TAG_SIZE  # per chunk


def chunk_count(size: int) -> int:
    """How many chunks a file of `size` bytes seals into: at least one (an empty file is one
    empty, final chunk), so the end of every file is authenticated."""
    return max(1, -(-size // CHUNK))


def sealed_size(size: int) -> int:
    return HEADER_SIZE + size + chunk_count(size) * OVERHEAD


def chunk_span(size: int, index: int) -> tuple[int, int]:
    """Where sealed chunk `index` of a file of `size` bytes lies in its blob: (offset, length)."""
    count = chunk_count(size)
    if not 0 <= index < count:
        raise IndexError(f"chunk {index} of {count}")
    plain = CHUNK if index < count - 1 else size - (count - 1) * CHUNK
    return HEADER_SIZE + index * (CHUNK + OVERHEAD), plain + OVERHEAD


def chunks_for_range(size: int, start: int, end: int) -> range:
    """The chunk indexes holding plaintext bytes start..end (inclusive, as in HTTP ranges)."""
    if not 0 <= start <= end < size:
        raise ValueError(f"bytes {start}-{end} are not within a file of {size} bytes")
    return range(start // CHUNK, end // CHUNK + 1)


def _aad(header: bytes, attachment_id: UUID, index: int, final: bool) -> bytes:
    return b"vch:attachment:" + header + attachment_id.bytes + struct.pack(">Q?", index, final)


class Sealer:
    """Seals one file fed in pieces of any size: `header()`, then what `feed` and `finish`
    return, in order, is the blob. Holds at most one chunk of plaintext."""

    def __init__(self, ring: KeyRing, attachment_id: UUID) -> None:
        self._aead: AESGCM = ring.aead(ring.active_version)
        self._id = attachment_id
        self._header = _HEADER.pack(MAGIC, ring.active_version, CHUNK)
        self._buffer = bytearray()
        self._index = 0
        self.size = 0
        self._finished = False

    def header(self) -> bytes:
        return self._header

    def feed(self, data: bytes) -> Iterator[bytes]:
        """Sealed chunks that `data` completes. A full chunk is kept back until more comes:
        only `finish` knows which chunk is the last."""
        if self._finished:
            raise RuntimeError("feed after finish")
        self.size += len(data)
        self._buffer += data
        while len(self._buffer) > CHUNK:
            yield self._seal(bytes(self._buffer[:CHUNK]), final=False)
            del self._buffer[:CHUNK]

    def finish(self) -> bytes:
        """The last chunk (empty only for an empty file)."""
        if self._finished:
            raise RuntimeError("finish twice")
        self._finished = True
        last = self._seal(bytes(self._buffer), final=True)
        self._buffer.clear()
        return last

    def _seal(self, plaintext: bytes, *, final: bool) -> bytes:
        nonce = os.urandom(NONCE_SIZE)
        aad = _aad(self._header, self._id, self._index, final)
        self._index += 1
        return nonce + self._aead.encrypt(nonce, plaintext, aad)


class Opener:
    """Opens the chunks of one sealed file of a known plaintext `size` (stored beside it), in
    any order: each chunk is checked against its index and whether it must be the last."""

    def __init__(self, ring: KeyRing, attachment_id: UUID, header: bytes, size: int) -> None:
        try:
            magic, version, chunk = _HEADER.unpack(header)
        except struct.error:
            raise DecryptionFailed("attachment header is malformed") from None
        if magic != MAGIC or chunk != CHUNK:
            raise DecryptionFailed("not a sealed attachment of this format")
        if not ring.has_version(version):
            raise DecryptionFailed(f"no data key with version {version}")
        self._aead = ring.aead(version)
        self._header = header
        self._id = attachment_id
        self._count = chunk_count(size)
        self._size = size

    def open(self, index: int, sealed: bytes) -> bytes:
        _, length = chunk_span(self._size, index)
        if len(sealed) != length:
            raise DecryptionFailed(f"chunk {index} is {len(sealed)} bytes, not {length}")
        aad = _aad(self._header, self._id, index, index == self._count - 1)
        try:
            return self._aead.decrypt(sealed[:NONCE_SIZE], sealed[NONCE_SIZE:], aad)
        except InvalidTag:
            raise DecryptionFailed(f"chunk {index} failed authentication") from None
