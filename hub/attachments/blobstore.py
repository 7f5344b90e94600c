"""What every blob store offers: sealed attachment contents by key, written whole or not at all.

Two stores implement it: a local directory (`localblobs`, the embedded default) and an
S3-compatible object store for several nodes, which cannot share a directory. Keys are chosen
by the hub (an attachment's id in hex), never taken from a filename.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, AsyncIterator
from typing import Protocol

from hub.errors import HubError

_KEY = re.compile(r"[0-9a-f]{32}")


class BlobMissing(HubError):
    """A blob the database names is not in the store (or was deleted meanwhile)."""

    code = "internal"


class BlobStoreFailed(HubError):
    """The store could not write, read or list (a full disk, a bucket that stopped answering);
    a request meets it as 503 `storage_unavailable`: nothing was stored."""

    code = "storage_unavailable"


def check_key(key: str) -> str:
    """Blob keys are 32 lowercase hex digits (a UUID's hex): nothing a path could escape with."""
    if not _KEY.fullmatch(key):
        raise ValueError(f"not a blob key: {key!r}")
    return key


class BlobStore(Protocol):
    name: str

    async def put(self, key: str, parts: AsyncIterable[bytes]) -> int:
        """Store the concatenated parts under `key`; returns the bytes written. Visible to
        `read` only once complete: a failure or cancellation midway leaves nothing."""
        ...

    async def read(self, key: str, offset: int, length: int) -> bytes:
        """`length` bytes from `offset` (fewer only at the end); BlobMissing when absent."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the blob; deleting an absent one is not an error."""
        ...

    def keys(self) -> AsyncIterator[str]:
        """Every complete blob's key (for collecting blobs no row names)."""
        ...
