"""Uploads and downloads over real sockets, on both backends: what a client sees on the wire,
what lands in the database and the blob store, and what outsiders are refused."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from pathlib import Path
from urllib.parse import quote

import pytest
import trio
from PIL import Image

from hub.storage.sql import fetch
from tests.attachments.conftest import BASE, MAX_FILE, Wedding, jpeg_with_gps, png
from tests.http.wire import Connection, chunked, request

SHOT_LIST = (
    b"Shot list for the Smith-Jones wedding\n- rings on the hymn book\n- first look at 2pm\n"
)


def upload_head(
    wedding: Wedding,
    filename: str,
    content_type: str,
    *,
    length: int | str | None = None,
    chunked_body: bool = False,
) -> bytes:
    """The exact head of the planner's upload to the thread, framed by length or chunked."""
    framing = ("Transfer-Encoding", "chunked") if chunked_body else ("Content-Length", str(length))
    return request(
        "POST",
        f"{BASE}/threads/{wedding.thread.id}/attachments?filename={filename}",
        [
            ("Authorization", f"Bearer {wedding.planner.token}"),
            ("Content-Type", content_type),
            framing,
        ],
    )


def blob_root(wedding: Wedding) -> Path:
    return Path(wedding.settings.blob_url)


def blob_files(wedding: Wedding) -> list[Path]:
    root = blob_root(wedding)
    return sorted(p for p in root.rglob("*") if p.is_file() and p.parent.name != "tmp")


def _select(sql: str, *args):
    rows = yield fetch(sql, *args)
    return rows


async def attachment_rows(wedding: Wedding) -> list[dict]:
    return await wedding.hub.storage.read(
        _select(
            "SELECT id, thread_id, message_id, uploader_user_id, uploader_org_id, content_type,"
            " size_bytes, sha256, storage_key, thumbnail_key, filename_sealed"
            " FROM message_attachments ORDER BY created_at"
        )
    )


async def audit_actions(wedding: Wedding) -> list[tuple[str, str | None]]:
    rows = await wedding.hub.storage.read(
        _select(
            "SELECT action, target_id FROM vendor_communication_audit"
            " WHERE action LIKE 'attachment.%' ORDER BY id"
        )
    )
    return [(r["action"], r["target_id"]) for r in rows]


async def test_a_file_is_uploaded_and_downloaded_as_an_attachment(wedding: Wedding):
    rest = wedding.rest
    up = await rest.upload(
        wedding.planner,
        wedding.thread.id,
        SHOT_LIST,
        filename="shot list (final).txt",
        content_type="text/plain",
    )
    assert up.status == 201, up.body
    body = up.json
    assert body["filename"] == "shot list (final).txt"
    assert body["content_type"] == "text/plain"
    assert body["size"] == len(SHOT_LIST)
    assert body["sha256"] == hashlib.sha256(SHOT_LIST).hexdigest()
    assert body["thread_id"] == str(wedding.thread.id)
    assert "width" not in body and body["thumbnail"] is False
    assert up.header("Location") == f"{BASE}/attachments/{body['id']}"

    # Another organization of the wedding downloads it.
    down = await rest.call("GET", f"/attachments/{body['id']}", wedding.photographer)
    assert down.status == 200
    assert down.body == SHOT_LIST
    assert down.header("Content-Disposition") == (
        "attachment; filename=\"shot list (final).txt\"; filename*=UTF-8''"
        + quote("shot list (final).txt", safe="")
    )
    assert down.header("X-Content-Type-Options") == "nosniff"
    assert down.header("Content-Type") == "text/plain; charset=utf-8"
    assert down.header("ETag") == f'"{body["sha256"]}"'
    assert "sandbox" in down.header("Content-Security-Policy")
    assert down.header("Accept-Ranges") == "bytes"

    again = await rest.call(
        "GET",
        f"/attachments/{body['id']}",
        wedding.photographer,
        headers={"If-None-Match": down.header("ETag")},
    )
    assert again.status == 304 and again.body == b""

    rows = await attachment_rows(wedding)
    assert len(rows) == 1
    row = rows[0]
    assert str(row["uploader_user_id"]) == str(wedding.planner.user_id)
    assert str(row["uploader_org_id"]) == str(wedding.planner.org_id)
    assert row["message_id"] is None
    # The name is sealed in the row, not kept as given.
    assert "shot list" not in row["filename_sealed"]
    actions = await audit_actions(wedding)
    assert actions[0] == ("attachment.upload", body["id"])
    assert ("attachment.download", body["id"]) in actions[1:]


async def test_the_bytes_at_rest_never_hold_the_plaintext(wedding: Wedding):
    marker = b"the couple's home: 12 Rosemary Lane"
    data = (marker + b"\n") * 3000  # several chunks
    up = await wedding.rest.upload(
        wedding.planner, wedding.thread.id, data, filename="notes.txt", content_type="text/plain"
    )
    assert up.status == 201, up.body
    files = blob_files(wedding)
    assert len(files) == 1
    stored = files[0].read_bytes()
    assert len(stored) > len(data)  # a header and a nonce and tag per chunk
    assert marker not in stored
    assert b"Rosemary" not in stored
    down = await wedding.rest.call("GET", f"/attachments/{up.json['id']}", wedding.planner)
    assert down.body == data


async def test_ranges_serve_parts_of_a_large_file(wedding: Wedding):
    data = b"".join(b"line %06d of the seating plan\n" % i for i in range(8000))
    assert len(data) < MAX_FILE
    up = await wedding.rest.upload(
        wedding.planner, wedding.thread.id, data, filename="seating.csv", content_type="text/csv"
    )
    assert up.status == 201, up.body
    assert up.json["content_type"] == "text/csv"
    path = f"/attachments/{up.json['id']}"
    size = len(data)

    part = await wedding.rest.call(
        "GET", path, wedding.photographer, headers={"Range": "bytes=65530-140000"}
    )
    assert part.status == 206
    assert part.body == data[65530:140001]
    assert part.header("Content-Range") == f"bytes 65530-140000/{size}"
    assert part.header("Content-Length") == str(140001 - 65530)

    tail = await wedding.rest.call(
        "GET", path, wedding.photographer, headers={"Range": "bytes=-100"}
    )
    assert tail.status == 206 and tail.body == data[-100:]
    open_ended = await wedding.rest.call(
        "GET", path, wedding.photographer, headers={"Range": f"bytes={size - 10}-"}
    )
    assert open_ended.status == 206 and open_ended.body == data[-10:]

    outside = await wedding.rest.call(
        "GET", path, wedding.photographer, headers={"Range": f"bytes={size}-{size + 10}"}
    )
    assert outside.status == 416
    assert outside.header("Content-Range") == f"bytes */{size}"
    assert outside.json["error"]["code"] == "range_not_satisfiable"

    stale = await wedding.rest.call(
        "GET", path, wedding.photographer, headers={"Range": "bytes=0-9", "If-Range": '"other"'}
    )
    assert stale.status == 200 and stale.body == data


async def test_an_upload_one_byte_over_the_limit_is_refused_while_it_streams(wedding: Wedding):
    """Chunked, so the hub cannot know the size in advance: the 413 comes while the client is
    still sending (the end of the body was never sent), and the connection is closed."""
    connection = await Connection.open(wedding.rest.url)
    head = upload_head(wedding, "big.txt", "text/plain", chunked_body=True)
    body = chunked(b"a" * (MAX_FILE + 1), size=16384)
    await connection.send(head + body[: -len(b"0\r\n\r\n")])  # never the last chunk
    answer = await connection.response(b"POST")
    assert answer is not None
    assert answer.status == 413
    assert answer.closes
    assert b"HUB_MAX_FILE_SIZE" in answer.body
    assert await connection.closed_by_server()
    await connection.aclose()
    assert await attachment_rows(wedding) == []
    assert blob_files(wedding) == []

    exactly = await wedding.rest.upload(
        wedding.planner,
        wedding.thread.id,
        b"a" * MAX_FILE,
        filename="limit.txt",
        content_type="text/plain",
    )
    assert exactly.status == 201, exactly.body


async def test_a_declared_length_over_the_limit_is_refused_before_the_body(wedding: Wedding):
    connection = await Connection.open(wedding.rest.url)
    head = upload_head(wedding, "huge.pdf", "application/pdf", length=10 * 1024**3)
    await connection.send(head + b"%PDF-1.7\n")
    answer = await connection.response(b"POST")
    assert answer is not None and answer.status == 413
    assert answer.closes
    await connection.aclose()


@pytest.mark.parametrize(
    ("data", "filename", "declared", "named"),
    [
        (png(), "contract.pdf", "application/pdf", ["application/pdf", "image/png"]),
        (
            b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>",
            "photo.jpg",
            "image/jpeg",
            ["image/jpeg", "text/html"],
        ),
        (png(), "contract.pdf", "image/png", ["application/pdf", "image/png"]),
        (b"<svg xmlns='http://www.w3.org/2000/svg'><script/></svg>", "a.svg", None, ["svg"]),
    ],
    ids=["png-sent-as-pdf", "html-sent-as-jpeg", "png-named-pdf", "svg"],
)
async def test_contents_that_are_not_what_they_claim_are_refused(
    wedding: Wedding, data, filename, declared, named
):
    up = await wedding.rest.upload(
        wedding.planner, wedding.thread.id, data, filename=filename, content_type=declared
    )
    assert up.status == 415, up.body
    error = up.json["error"]
    assert error["code"] == "unsupported_media_type"
    for type_name in named:
        assert type_name in error["message"]
    assert await attachment_rows(wedding) == []
    assert blob_files(wedding) == []


async def test_office_documents_images_and_undeclared_types_are_accepted(wedding: Wedding):
    import zipfile

    docx = io.BytesIO()
    with zipfile.ZipFile(docx, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("_rels/.rels", "<Relationships/>")
        z.writestr("word/document.xml", "<w:document/>")
    docx_type = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    cases = [
        (docx.getvalue(), "contract.docx", docx_type, docx_type),
        (png(), "arch.png", "image/png", "image/png"),
        (png(), "arch.png", "application/octet-stream", "image/png"),
        (
            b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n",
            "plan.pdf",
            None,
            "application/pdf",
        ),
    ]
    for data, filename, declared, stored in cases:
        up = await wedding.rest.upload(
            wedding.photographer, wedding.thread.id, data, filename=filename, content_type=declared
        )
        assert up.status == 201, (filename, up.body)
        assert up.json["content_type"] == stored


async def test_outsiders_see_no_attachment_and_cannot_upload(wedding: Wedding):
    up = await wedding.rest.upload(
        wedding.planner, wedding.thread.id, SHOT_LIST, filename="a.txt", content_type="text/plain"
    )
    attachment_id = up.json["id"]
    for path in (f"/attachments/{attachment_id}", f"/attachments/{attachment_id}/info"):
        refused = await wedding.rest.call("GET", path, wedding.outsider)
        assert refused.status == 404
        assert refused.json["error"]["message"] == f"attachment {attachment_id} not found"
    unknown = "00000000-0000-4000-8000-000000000000"
    missing = await wedding.rest.call("GET", f"/attachments/{unknown}", wedding.outsider)
    assert missing.status == 404
    assert missing.json["error"]["message"] == f"attachment {unknown} not found"

    sneaky = await wedding.rest.upload(
        wedding.outsider, wedding.thread.id, SHOT_LIST, filename="a.txt", content_type="text/plain"
    )
    assert sneaky.status == 404
    anonymous = await wedding.rest.call(
        "POST", f"/threads/{wedding.thread.id}/attachments?filename=a.txt", None, body=SHOT_LIST
    )
    assert anonymous.status == 401
    assert len(await attachment_rows(wedding)) == 1


async def test_a_photo_gets_a_thumbnail_without_its_exif_and_gps(wedding: Wedding):
    photo = jpeg_with_gps(640, 480)
    assert Image.open(io.BytesIO(photo)).getexif().get_ifd(0x8825)  # the original has GPS
    up = await wedding.rest.upload(
        wedding.photographer,
        wedding.thread.id,
        photo,
        filename="arch.jpg",
        content_type="image/jpeg",
    )
    assert up.status == 201, up.body
    assert (up.json["width"], up.json["height"]) == (640, 480)
    assert up.json["thumbnail"] is True
    thumb = await wedding.rest.call(
        "GET", f"/attachments/{up.json['id']}/thumbnail", wedding.planner
    )
    assert thumb.status == 200
    assert thumb.header("Content-Type") == "image/jpeg"
    image = Image.open(io.BytesIO(thumb.body))
    assert max(image.size) <= 480
    assert image.size == (480, 360)
    assert len(image.getexif()) == 0
    assert b"Phone Camera" not in thumb.body and b"GPS" not in thumb.body
    # The original is served as uploaded, its metadata included: it is the vendor's file.
    original = await wedding.rest.call("GET", f"/attachments/{up.json['id']}", wedding.planner)
    assert original.body == photo
    # A text file has no thumbnail.
    text = await wedding.rest.upload(
        wedding.planner, wedding.thread.id, SHOT_LIST, filename="a.txt", content_type="text/plain"
    )
    none = await wedding.rest.call(
        "GET", f"/attachments/{text.json['id']}/thumbnail", wedding.planner
    )
    assert none.status == 404


def _bomb_png(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels, with almost no data behind it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1000))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("width", "height", "said"),
    [
        (8000, 8000, "8000x8000 pixels"),  # 64 megapixels: over the hub's bound
        (30_000, 30_000, "900000000 pixels"),  # 2.7 GB decoded: Pillow's own bound refuses too
    ],
)
async def test_a_decompression_bomb_is_refused_undecoded(wedding: Wedding, width, height, said):
    bomb = _bomb_png(width, height)
    assert len(bomb) < 2000
    up = await wedding.rest.upload(
        wedding.planner, wedding.thread.id, bomb, filename="bomb.png", content_type="image/png"
    )
    assert up.status == 415, up.body
    assert said in up.json["error"]["message"]
    assert await attachment_rows(wedding) == []
    assert blob_files(wedding) == []


@pytest.mark.parametrize("attachment_overrides", [{"HUB_ORG_STORAGE_QUOTA_BYTES": "400000"}])
async def test_an_organization_over_its_quota_gets_507_with_the_figures(wedding: Wedding):
    first = await wedding.rest.upload(
        wedding.planner,
        wedding.thread.id,
        b"a" * 250_000,
        filename="a.txt",
        content_type="text/plain",
    )
    assert first.status == 201
    second = await wedding.rest.upload(
        wedding.planner,
        wedding.thread.id,
        b"b" * 250_000,
        filename="b.txt",
        content_type="text/plain",
    )
    assert second.status == 507, second.body
    error = second.json["error"]
    assert error["code"] == "quota_exceeded"
    assert error["details"] == [
        {"used_bytes": 250_000, "upload_bytes": 250_000, "quota_bytes": 400_000}
    ]
    assert "400000" in error["message"]
    assert len(blob_files(wedding)) == 1
    # Sent chunked, the size is known only once stored: the row's write refuses it, and the
    # blob already written is removed.
    connection = await Connection.open(wedding.rest.url)
    head = upload_head(wedding, "c.txt", "text/plain", chunked_body=True)
    await connection.send(head + chunked(b"c" * 250_000))
    late = await connection.response(b"POST")
    await connection.aclose()
    assert late is not None and late.status == 507, late
    assert len(blob_files(wedding)) == 1
    assert len(await attachment_rows(wedding)) == 1
    # The quota is the organization's: another organization still uploads.
    other = await wedding.rest.upload(
        wedding.photographer,
        wedding.thread.id,
        b"c" * 250_000,
        filename="c.txt",
        content_type="text/plain",
    )
    assert other.status == 201


@pytest.mark.parametrize(
    "attachment_overrides", [{"HUB_RATE_UPLOAD_BURST": "2", "HUB_RATE_UPLOAD_PER_S": "0.001"}]
)
async def test_uploads_have_a_rate_limit_of_their_own(wedding: Wedding):
    for _ in range(2):
        ok = await wedding.rest.upload(
            wedding.planner,
            wedding.thread.id,
            SHOT_LIST,
            filename="a.txt",
            content_type="text/plain",
        )
        assert ok.status == 201
    limited = await wedding.rest.upload(
        wedding.planner, wedding.thread.id, SHOT_LIST, filename="a.txt", content_type="text/plain"
    )
    assert limited.status == 429
    assert "upload" in limited.json["error"]["message"]
    assert limited.header("Retry-After") is not None
    sent = await wedding.rest.call(
        "POST", f"/threads/{wedding.thread.id}", wedding.planner, json_body={"body": "still here"}
    )
    assert sent.status == 201


async def test_a_client_that_leaves_midway_leaves_nothing_behind(wedding: Wedding):
    connection = await Connection.open(wedding.rest.url)
    head = upload_head(wedding, "half.txt", "text/plain", length="200000")
    await connection.send(head + b"x" * 100_000)
    await connection.aclose()
    # The hub notices the disconnect and removes the partial blob; wait until it has.
    await tmp_emptied(wedding)
    # A later request is served normally, and nothing of the half upload remains.
    ok = await wedding.rest.upload(
        wedding.planner, wedding.thread.id, SHOT_LIST, filename="a.txt", content_type="text/plain"
    )
    assert ok.status == 201
    assert len(await attachment_rows(wedding)) == 1
    await tmp_emptied(wedding)
    assert len(blob_files(wedding)) == 1


async def tmp_emptied(wedding: Wedding) -> None:
    """Wait for the hub to remove what a broken upload began (no event tells a test that)."""
    with trio.fail_after(10):
        while any((blob_root(wedding) / "tmp").iterdir()):  # noqa: ASYNC110
            await trio.sleep(0.05)


async def test_filenames_are_for_display_only(wedding: Wedding):
    up = await wedding.rest.upload(
        wedding.planner,
        wedding.thread.id,
        SHOT_LIST,
        filename="C:\\fakepath\\..\\..\\etc\\passwd.txt",
        content_type="text/plain",
    )
    assert up.status == 201, up.body
    assert up.json["filename"] == "passwd.txt"
    files = blob_files(wedding)
    assert [f.name for f in files] == [up.json["id"].replace("-", "")]
    bad = await wedding.rest.upload(
        wedding.planner,
        wedding.thread.id,
        SHOT_LIST,
        filename="a\x07b.txt",
        content_type="text/plain",
    )
    assert bad.status == 422
    assert bad.json["error"]["details"][0]["field"] == "filename"
