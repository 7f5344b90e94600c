"""Which types agree: the rules on their own, without a hub (libmagic does the sniffing)."""

from __future__ import annotations

import pytest

from hub.attachments.types import accepted_type, sniff
from hub.errors import UnsupportedMediaType

NOTES = b"seating plan row for table 1, 10 guests, vegetarian 2\n" * 50


def test_text_of_any_kind_agrees_and_keeps_the_kind_the_client_named():
    assert sniff(NOTES) == "text/csv"  # commas on every line: libmagic says CSV
    assert accepted_type(sniff(NOTES), "text/plain", "notes.txt") == "text/plain"
    assert accepted_type(sniff(NOTES), None, "notes.txt") == "text/plain"
    assert accepted_type(sniff(NOTES), "text/csv", "plan.csv") == "text/csv"
    markdown = b"# Timeline\n\nCeremony at three, photos after.\n"
    assert accepted_type(sniff(markdown), "text/markdown", "timeline.md") == "text/markdown"


def test_aliases_agree_and_the_stored_name_is_the_usual_one():
    jpeg = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\x00" * 64
    assert accepted_type(sniff(jpeg), "image/jpg", "arch.JPG") == "image/jpeg"
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 100
    assert accepted_type(sniff(heic), "image/heif", "IMG_0001.HEIC") in ("image/heic", "image/heif")
    assert accepted_type(sniff(heic), "", "IMG_0001.HEIC") in ("image/heic", "image/heif")


@pytest.mark.parametrize(
    ("data", "declared", "name"),
    [
        (b"PK\x03\x04" + b"\x00" * 40, "application/zip", "photos.zip"),  # archives are not allowed
        (b"#!/bin/sh\nrm -rf /\n", "text/plain", "run.sh"),
        (NOTES, "application/pdf", "notes.pdf"),
    ],
)
def test_what_is_not_allowed_or_not_what_it_claims_is_refused(data, declared, name):
    with pytest.raises(UnsupportedMediaType):
        accepted_type(sniff(data), declared, name)
