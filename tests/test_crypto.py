"""Envelope encryption: what a wrong key, a moved ciphertext or an unknown version does."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.crypto import DecryptionFailed, KeyRing, MasterKey, Sealed, new_data_key
from hub.errors import WrongMasterKey


def test_a_wrapped_key_opens_only_with_its_master_key_and_version():
    master, data_key = MasterKey(b"m" * 32), new_data_key()
    wrapped = master.wrap(3, data_key)

    assert master.unwrap(3, wrapped) == data_key
    with pytest.raises(WrongMasterKey):
        MasterKey(b"x" * 32).unwrap(3, wrapped)
    with pytest.raises(WrongMasterKey):
        master.unwrap(4, wrapped)  # the version is bound into the wrapping


@given(body=st.text(max_size=2000))
def test_any_body_round_trips(body):
    ring = KeyRing({1: b"d" * 32}, 1)
    thread = uuid.UUID(int=7)

    assert ring.open_message(thread, ring.seal_message(thread, body)) == body


def test_a_ciphertext_is_bound_to_its_thread():
    ring = KeyRing({1: new_data_key()}, 1)
    sealed = ring.seal_message(uuid.uuid4(), "gate code 4512")

    with pytest.raises(DecryptionFailed):
        ring.open_message(uuid.uuid4(), sealed)


def test_a_tampered_ciphertext_is_refused():
    ring, thread = KeyRing({1: new_data_key()}, 1), uuid.uuid4()
    sealed = ring.seal_message(thread, "cake at 5")
    flipped = bytes([sealed.ciphertext[0] ^ 1]) + sealed.ciphertext[1:]

    with pytest.raises(DecryptionFailed):
        ring.open_message(thread, Sealed(flipped, sealed.nonce, sealed.key_version))


def test_new_messages_use_the_active_key_and_old_ones_still_open():
    thread, old, new = uuid.uuid4(), new_data_key(), new_data_key()
    before = KeyRing({1: old}, 1).seal_message(thread, "old")
    ring = KeyRing({1: old, 2: new}, 2)

    after = ring.seal_message(thread, "new")

    assert (before.key_version, after.key_version) == (1, 2)
    assert ring.open_message(thread, before) == "old"
    assert ring.open_message(thread, after) == "new"


def test_each_seal_uses_a_fresh_nonce():
    ring, thread = KeyRing({1: new_data_key()}, 1), uuid.uuid4()

    nonces = {ring.seal_message(thread, "same").nonce for _ in range(100)}

    assert len(nonces) == 100
