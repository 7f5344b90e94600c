"""Sealing a file in chunks: every size round-trips, and a blob whose chunks were moved, swapped,
dropped or cut short never opens."""

from __future__ import annotations

import os
import uuid

import pytest

from hub.attachments.chunks import (
    CHUNK,
    HEADER_SIZE,
    Opener,
    Sealer,
    chunk_count,
    chunk_span,
    chunks_for_range,
    sealed_size,
)
from hub.crypto import DecryptionFailed, KeyRing, new_data_key

RING = KeyRing({1: new_data_key()}, active_version=1)


def seal(data: bytes, attachment_id: uuid.UUID, ring: KeyRing = RING, piece: int = 10_000) -> bytes:
    sealer = Sealer(ring, attachment_id)
    out = [sealer.header()]
    for start in range(0, len(data), piece):
        out.extend(sealer.feed(data[start : start + piece]))
    out.append(sealer.finish())
    return b"".join(out)


def open_all(blob: bytes, attachment_id: uuid.UUID, size: int, ring: KeyRing = RING) -> bytes:
    opener = Opener(ring, attachment_id, blob[:HEADER_SIZE], size)
    parts = []
    for index in range(chunk_count(size)):
        offset, length = chunk_span(size, index)
        parts.append(opener.open(index, blob[offset : offset + length]))
    return b"".join(parts)


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 5])
@pytest.mark.parametrize("piece", [1_000, CHUNK, 5 * CHUNK])
def test_every_size_round_trips_whatever_the_pieces_it_came_in(size, piece):
    data = os.urandom(size)
    attachment_id = uuid.uuid4()
    blob = seal(data, attachment_id, piece=piece)
    assert len(blob) == sealed_size(size)
    assert open_all(blob, attachment_id, size) == data


def test_the_plaintext_is_not_in_the_blob():
    data = b"Bride's phone: +44 7700 900123. " * 5000
    blob = seal(data, uuid.uuid4())
    assert b"7700 900123" not in blob and b"Bride" not in blob


def test_a_blob_moved_to_another_attachment_does_not_open():
    data = os.urandom(2 * CHUNK + 7)
    blob = seal(data, uuid.uuid4())
    with pytest.raises(DecryptionFailed, match="chunk 0 failed authentication"):
        open_all(blob, uuid.uuid4(), len(data))


def test_swapped_chunks_do_not_open():
    attachment_id = uuid.uuid4()
    data = os.urandom(3 * CHUNK)
    blob = bytearray(seal(data, attachment_id))
    (a, length), (b, _) = chunk_span(len(data), 0), chunk_span(len(data), 1)
    blob[a : a + length], blob[b : b + length] = blob[b : b + length], blob[a : a + length]
    with pytest.raises(DecryptionFailed, match="chunk 0 failed authentication"):
        open_all(bytes(blob), attachment_id, len(data))


def test_a_blob_cut_at_a_chunk_boundary_does_not_pass_for_a_shorter_file():
    # Dropping the last chunk and claiming the shorter size: the new last chunk was sealed as
    # "not the last", so it fails.
    attachment_id = uuid.uuid4()
    data = os.urandom(3 * CHUNK)
    blob = seal(data, attachment_id)
    shorter = 2 * CHUNK
    cut = blob[: sealed_size(shorter)]
    with pytest.raises(DecryptionFailed, match="chunk 1 failed authentication"):
        open_all(cut, attachment_id, shorter)


def test_a_flipped_bit_or_a_short_chunk_is_refused():
    attachment_id = uuid.uuid4()
    data = os.urandom(CHUNK + 10)
    blob = bytearray(seal(data, attachment_id))
    blob[-1] ^= 1
    with pytest.raises(DecryptionFailed, match="chunk 1 failed authentication"):
        open_all(bytes(blob), attachment_id, len(data))
    opener = Opener(RING, attachment_id, bytes(blob[:HEADER_SIZE]), len(data))
    with pytest.raises(DecryptionFailed, match="not"):
        opener.open(0, bytes(blob[HEADER_SIZE : HEADER_SIZE + 100]))


def test_a_rotated_ring_still_opens_older_blobs_and_seals_with_the_new_key():
    old_key = new_data_key()
    old_ring = KeyRing({1: old_key}, active_version=1)
    attachment_id = uuid.uuid4()
    data = os.urandom(CHUNK + 1)
    old_blob = seal(data, attachment_id, ring=old_ring)
    rotated = KeyRing({1: old_key, 2: new_data_key()}, active_version=2)
    assert open_all(old_blob, attachment_id, len(data), ring=rotated) == data
    new_blob = seal(data, attachment_id, ring=rotated)
    with pytest.raises(DecryptionFailed, match="no data key with version 2"):
        open_all(new_blob, attachment_id, len(data), ring=old_ring)


def test_a_range_names_only_the_chunks_it_touches():
    size = 5 * CHUNK + 3
    assert list(chunks_for_range(size, 0, 0)) == [0]
    assert list(chunks_for_range(size, CHUNK - 1, CHUNK)) == [0, 1]
    assert list(chunks_for_range(size, 4 * CHUNK, size - 1)) == [4, 5]
    with pytest.raises(ValueError, match="not within"):
        chunks_for_range(size, 0, size)
