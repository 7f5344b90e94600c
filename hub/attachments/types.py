"""Which files the hub accepts: the type is read from the bytes by libmagic (the `file` command's
library, through python-magic), never taken from the client's word or the file's name.

An upload is accepted when its sniffed type is on the allow-list and agrees with both what the
client declared (`Content-Type`) and the filename's extension: a PNG named `.pdf`, or a page of
HTML called `photo.jpg`, is refused with both types named. `application/octet-stream` or no
type at all declares nothing, as browsers send for files they do not know (HEIC on many
systems). Types that agree are the same type under another name (`image/jpg`), or two kinds of
text (the sniffer calls Markdown plain text, and notes with commas CSV): text keeps the kind the
client named.
"""

from __future__ import annotations

import mimetypes
import threading

import magic

from hub.errors import UnsupportedMediaType

# How much of the start of a file the sniffer reads: enough for every signature on the list
# (an Office file's first zip entry names what it is).
SNIFF_BYTES = 64 * 1024

IMAGES = frozenset(
    {"image/jpeg", "image/png", "image/gif", "image/webp", "image/heic", "image/heif", "image/tiff"}
)
# Images the hub draws thumbnails of (Pillow opens them without plugins).
THUMBNAILED = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp", "image/tiff"})
_OFFICE = frozenset(
    {
        "application/msword",
        "application/vnd.ms-excel",
        "application/vnd.ms-powerpoint",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "application/vnd.oasis.opendocument.text",
        "application/vnd.oasis.opendocument.spreadsheet",
        "application/vnd.oasis.opendocument.presentation",
    }
)
TEXT = frozenset({"text/plain", "text/csv", "text/markdown"})
ALLOWED = IMAGES | _OFFICE | TEXT | {"application/pdf"}

# Other names of the same type, as clients and libmagic spell them.
_ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "image/x-png": "image/png",
    "image/heic-sequence": "image/heic",
    "image/heif-sequence": "image/heif",
    "text/x-csv": "text/csv",
    "application/csv": "text/csv",
    "text/x-markdown": "text/markdown",
    "application/x-pdf": "application/pdf",
}
# HEIC is HEIF with HEVC inside; clients and sniffers name either.
_SAME = [frozenset({"image/heic", "image/heif"})]
# Legacy Office files are OLE containers; libmagic names the container when it cannot tell.
_OLE = frozenset({"application/cdfv2", "application/x-ole-storage"})
_UNDECLARED = frozenset({"", "application/octet-stream", "binary/octet-stream"})

_magic = magic.Magic(mime=True)
_magic_lock = threading.Lock()


def sniff(head: bytes) -> str:
    """libmagic's type for the first bytes of a file (blocking: call it in a worker thread)."""
    with _magic_lock:  # one libmagic cookie is not safe to share between threads
        return normal(_magic.from_buffer(head))


def normal(content_type: str | None) -> str:
    """A media type without parameters, lowercase, under its usual name."""
    base = (content_type or "").split(";", 1)[0].strip().lower()
    return _ALIASES.get(base, base)


def _agree(claimed: str, sniffed: str) -> bool:
    if claimed == sniffed:
        return True
    if any(claimed in same and sniffed in same for same in _SAME):
        return True
    if claimed in TEXT and sniffed in TEXT:
        return True
    return claimed in _OFFICE and claimed.startswith("application/vnd.ms") and sniffed in _OLE


def accepted_type(sniffed: str, declared: str | None, filename: str) -> str:
    """The type an upload is stored and served as, or UnsupportedMediaType naming the types
    that disagree. Text keeps the kind of text the client declared (or the name says)."""
    sniffed, claimed = normal(sniffed), normal(declared)
    by_name = normal(mimetypes.guess_type(filename, strict=False)[0])
    if sniffed in _OLE and claimed in _OFFICE:
        sniffed = claimed
    if sniffed not in ALLOWED:
        sent = f"the file was sent as {claimed} but its" if claimed not in _UNDECLARED else "its"
        raise UnsupportedMediaType(
            f"{sent} contents are {sniffed}, which is not a type the hub accepts"
            " (images, PDF, office documents, plain text and CSV)",
            details=[{"sniffed": sniffed, "declared": claimed or None}],
        )
    if claimed not in _UNDECLARED and not _agree(claimed, sniffed):
        raise UnsupportedMediaType(
            f"the file was sent as {claimed} but its contents are {sniffed}",
            details=[{"sniffed": sniffed, "declared": claimed}],
        )
    if by_name and by_name not in _UNDECLARED and not _agree(by_name, sniffed):
        raise UnsupportedMediaType(
            f"the filename {filename!r} says {by_name} but the file's contents are {sniffed}",
            details=[{"sniffed": sniffed, "by_filename": by_name}],
        )
    if sniffed in TEXT:
        for candidate in (claimed, by_name):
            if candidate in TEXT:
                return candidate
    return sniffed
