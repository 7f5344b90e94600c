"""Attachments over REST: upload a file to a thread, download it (whole or by range), and its
thumbnail.

An upload is the raw file as the request body, streamed (`hub.http.framing.StreamedBody`):
the hub never holds more than a few pieces of it. A download is always an attachment, never a
page: `Content-Disposition: attachment`, `nosniff` and a sandboxing CSP keep a browser from
rendering an uploaded HTML or SVG file as the hub's own page, whatever its type claims.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import datetime
from urllib.parse import quote
from uuid import UUID

from quart import Blueprint, Response, current_app, request
from quart_schema import validate_querystring

from hub.access import authorize_attachment, authorize_thread
from hub.attachments.service import Attachments
from hub.errors import HubError, NotFound
from hub.http.errors import error_response
from hub.http.framing import STREAMED_BODY, StreamedBody
from hub.http.identity import audit, current_principal, current_storage
from hub.http.openapi import errors, raw, responds
from hub.http.params import decode_cursor, encode_cursor, path_id
from hub.http.schemas import AttachmentOut, AttachmentPage, AttachmentQuery, UploadQuery
from hub.storage.attachments import AttachmentRecord, thread_attachments

blueprint = Blueprint("attachments", __name__)

# The request paths whose body the upload view streams itself (`hub.http.app`).
UPLOAD_PATH = re.compile(r"/threads/[^/]+/attachments/?")
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


class RangeNotSatisfiable(HubError):
    code = "range_not_satisfiable"
    status = 416


def current_attachments() -> Attachments:
    return current_app.extensions["hub"]["attachments"]


@blueprint.post("/threads/<thread_id>/attachments")
@errors(403, 404, 409, 413, 415, 422, 507)
@responds(AttachmentOut, 201)
@raw({}, request_body="the file itself, with its type in Content-Type")
@validate_querystring(UploadQuery)
async def upload(thread_id: str, query_args: UploadQuery) -> tuple[AttachmentOut, int, dict]:
    """Upload a file to a thread (any active member): the raw file as the body, its type in
    `Content-Type`, its name in `?filename=`.

    201 with the stored file; attach it with a message of `kind=attachment`. The type is read
    from the contents and must be an image (JPEG, PNG, GIF, WebP, HEIC, TIFF), PDF, an office
    document, plain text or CSV, and agree with `Content-Type` and the name's extension (415
    naming both). 413 past `HUB_MAX_FILE_SIZE` (the connection is closed), 507 past the
    organization's storage quota (with the figures). Uploads not attached to a message within
    `HUB_ATTACHMENT_ORPHAN_HOURS` are removed.
    """
    tid = path_id("thread_id", thread_id)
    principal = current_principal()
    access = await authorize_thread(current_storage(), principal, tid, "post")
    streamed: StreamedBody | None = request.scope.get(STREAMED_BODY)
    body = streamed.chunks() if streamed is not None else _quart_body()
    record = await current_attachments().upload(
        principal,
        tid,
        filename=query_args.filename,
        declared_type=request.headers.get("Content-Type"),
        declared_length=request.content_length,
        body=body,
        audit=audit("attachment.upload", "attachment", None, group_id=access.group_id),
    )
    location = f"{current_app.extensions['hub']['base_path']}/attachments/{record.id}"
    return await attachment_out(record), 201, {"Location": location}


async def _quart_body() -> AsyncIterator[bytes]:
    async for data in request.body:
        yield data


async def attachment_out(record: AttachmentRecord) -> AttachmentOut:
    return AttachmentOut(
        id=record.id,
        thread_id=record.thread_id,
        filename=await current_attachments().filename(record),
        content_type=record.content_type,
        size=record.size_bytes,
        sha256=record.sha256,
        created_at=record.created_at,
        thumbnail=record.thumbnail_key is not None,
        uploader_user_id=record.uploader_user_id,
        uploader_name=record.uploader_name,
        width=record.width,
        height=record.height,
        message_id=record.message_id,
    )


@blueprint.get("/threads/<thread_id>/attachments")
@errors(404, 422)
@responds(AttachmentPage)
@validate_querystring(AttachmentQuery)
async def list_thread_attachments(thread_id: str, query_args: AttachmentQuery) -> AttachmentPage:
    """The files sent in a thread's messages, newest first (any member): a thread's shared
    files in one place. Page on with `cursor`; uploads not yet sent are not listed."""
    tid = path_id("thread_id", thread_id)
    await authorize_thread(current_storage(), current_principal(), tid, "read")
    listing = "attachments"
    before = None
    if query_args.cursor:
        before = decode_cursor(listing, query_args.cursor, (datetime, UUID))
    found = await current_storage().read(
        thread_attachments(tid, before=before, limit=query_args.limit + 1)
    )
    items = [await attachment_out(record) for record in found[: query_args.limit]]
    next_cursor = None
    if len(found) > query_args.limit:
        last = found[query_args.limit - 1]
        next_cursor = encode_cursor(listing, [last.created_at.isoformat(), str(last.id)])
    return AttachmentPage(items=items, next_cursor=next_cursor)


@blueprint.delete("/attachments/<attachment_id>")
@errors(403, 404, 409, 422)
@raw({204: (None, "removed")})
async def remove_upload(attachment_id: str) -> tuple[str, int]:
    """Remove an upload of yours that no message carries yet (a file taken out of a draft):
    204, and it stops counting against your organization's quota. 409 once it is attached
    (it stays with its message); 403 for anyone but its uploader; 404 outside the group."""
    aid = path_id("attachment_id", attachment_id)
    principal = current_principal()
    record, access = await authorize_attachment(current_storage(), principal, aid)
    entry = audit("attachment.delete", "attachment", aid, group_id=access.group_id)
    await current_attachments().remove_upload(record, principal.user_id, entry)
    return "", 204


@blueprint.get("/attachments/<attachment_id>/info")
@errors(404, 422)
@responds(AttachmentOut)
async def attachment_info(attachment_id: str) -> AttachmentOut:
    """An attachment's description (members of its thread's group; 404 for everyone else)."""
    record, _ = await authorize_attachment(
        current_storage(), current_principal(), path_id("attachment_id", attachment_id)
    )
    return await attachment_out(record)


@blueprint.get("/attachments/<attachment_id>")
@errors(404, 416, 422)
@raw(
    {
        200: ("application/octet-stream", "the file, as an attachment, in its stored type"),
        206: ("application/octet-stream", "the part of the file the Range asked for"),
        304: (None, "not modified: the If-None-Match ETag is the file's"),
    }
)
async def download(attachment_id: str) -> Response:
    """Download an attachment (members of its thread's group; 404 for everyone else).

    Always `Content-Disposition: attachment` with the file's name, `nosniff`, and an ETag (the
    SHA-256): `If-None-Match` answers 304. A single `Range: bytes=a-b` answers 206 with that
    part (416 when it lies outside the file); `If-Range` with another ETag gets the whole file.
    """
    aid = path_id("attachment_id", attachment_id)
    record, access = await authorize_attachment(current_storage(), current_principal(), aid)
    etag = f'"{record.sha256}"'
    headers = _download_headers(await current_attachments().filename(record), etag)
    if etag in _etags(request.headers.get("If-None-Match")):
        return Response(b"", 304, headers)
    size = record.size_bytes
    wanted = request.headers.get("Range")
    if_range = request.headers.get("If-Range")
    if wanted is not None and if_range is not None and if_range.strip() != etag:
        wanted = None  # the client's copy is of another version: send it whole
    try:
        span = _range(wanted, size)
    except RangeNotSatisfiable as error:
        refusal = error_response(416, error.code, error.message, error.details)
        refusal.headers["Content-Range"] = f"bytes */{size}"
        return refusal
    status = 200
    start, end = 0, size - 1
    if span is not None:
        status, (start, end) = 206, span
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Type"] = _served_type(record.content_type)
    headers["Content-Length"] = str(end - start + 1 if size else 0)
    await current_storage().write(
        _nothing,
        audit=[
            audit(
                "attachment.download",
                "attachment",
                aid,
                group_id=access.group_id,
                details={"thread_id": str(record.thread_id), "range": wanted if span else None},
            )
        ],
    )
    body = current_attachments().contents(record, start, end) if size else _empty()
    return Response(body, status, headers)


@blueprint.get("/attachments/<attachment_id>/thumbnail")
@errors(404, 422)
@raw(
    {
        200: ("image/jpeg", "the thumbnail (image/png when the image has transparency)"),
        304: (None, "not modified"),
    }
)
async def thumbnail(attachment_id: str) -> Response:
    """An image attachment's thumbnail (at most 480 pixels a side, no metadata); 404 when the
    attachment is not an image the hub draws thumbnails of (HEIC has none)."""
    aid = path_id("attachment_id", attachment_id)
    record, _ = await authorize_attachment(current_storage(), current_principal(), aid)
    data = await current_attachments().thumbnail(record)
    if data is None:
        raise NotFound(f"attachment {aid} has no thumbnail")
    etag = f'"{record.sha256[:32]}-thumb"'
    headers = {
        "ETag": etag,
        "Cache-Control": "private, max-age=86400",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Content-Disposition": "inline",
    }
    if etag in _etags(request.headers.get("If-None-Match")):
        return Response(b"", 304, headers)
    kind = "image/png" if data.startswith(b"\x89PNG") else "image/jpeg"
    return Response(data, 200, {**headers, "Content-Type": kind})


def _nothing(_now: object):  # type: ignore[no-untyped-def]
    """A write of nothing but its audit row."""
    return None
    yield


async def _empty() -> AsyncIterator[bytes]:
    return
    yield b""


def _download_headers(filename: str, etag: str) -> dict[str, str]:
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\;' else "_" for c in filename)
    return {
        "Content-Disposition": (
            f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"
        ),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "private, no-cache",
        "ETag": etag,
        "Accept-Ranges": "bytes",
    }


def _served_type(content_type: str) -> str:
    # Text is stored as sniffed, with no charset known; UTF-8 is what browsers should try.
    return f"{content_type}; charset=utf-8" if content_type.startswith("text/") else content_type


def _etags(header: str | None) -> set[str]:
    if not header:
        return set()
    return {tag.strip().removeprefix("W/") for tag in header.split(",")}


def _range(header: str | None, size: int) -> tuple[int, int] | None:
    """The single byte range asked for, or None for the whole file (no header, a form this
    does not serve, such as several ranges); RangeNotSatisfiable outside the file."""
    if header is None:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        length = int(last)
        if length == 0 or size == 0:
            raise _unsatisfiable(size)
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or (last and int(last) < start):
        raise _unsatisfiable(size)
    return start, end


def _unsatisfiable(size: int) -> RangeNotSatisfiable:
    return RangeNotSatisfiable(
        f"the range asked for lies outside the file's {size} bytes", details=[{"size": size}]
    )
