"""The S3 blob store against a real S3 HTTP endpoint (moto's server in a process of its own):
whole blobs or nothing, in one request or in parts, ranges, deletion, listing only its own keys,
and a clear refusal when the bucket cannot be used. Then opening a store from a blob URL."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
import trio

from hub.attachments.blobstore import BlobMissing
from hub.attachments.localblobs import LocalBlobs
from hub.attachments.s3blobs import MIN_PART_SIZE, S3Blobs, S3Unavailable
from hub.attachments.stores import describe_blob_url, open_blob_store
from tests.attachments.conftest import SECRET
from tests.attachments.s3server import MotoServer
from tests.redis_server import free_port

KEY = "0123456789abcdef0123456789abcdef"
OTHER = "fedcba9876543210fedcba9876543210"
PREFIX = "attachments/"


@pytest.fixture
async def store(moto: MotoServer, bucket: str) -> S3Blobs:
    return await S3Blobs.open(
        bucket, prefix=PREFIX, endpoint=moto.endpoint, region="us-east-1", part_size=MIN_PART_SIZE
    )


async def parts(*chunks: bytes):
    for chunk in chunks:
        yield chunk


def in_chunks(data: bytes, size: int = 64 * 1024) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def object_bytes(s3, bucket: str, name: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=name)["Body"].read()


def object_names(s3, bucket: str) -> list[str]:
    return [entry["Key"] for entry in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def pending_uploads(s3, bucket: str) -> list[str]:
    return [upload["Key"] for upload in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


async def test_a_blob_is_stored_whole_and_read_by_range(store, s3, bucket):
    data = os.urandom(200_000)
    assert await store.put(KEY, parts(data[:70_000], data[70_000:])) == len(data)
    assert await store.read(KEY, 0, len(data)) == data
    assert await store.read(KEY, 123, 1000) == data[123:1123]
    assert await store.read(KEY, len(data) - 10, 100) == data[-10:]
    assert await store.read(KEY, len(data), 100) == b""  # S3 answers 416 there
    assert await store.read(KEY, len(data) + 5000, 100) == b""
    assert await store.read(KEY, 0, 0) == b""
    assert [key async for key in store.keys()] == [KEY]
    assert object_names(s3, bucket) == [PREFIX + KEY]
    assert object_bytes(s3, bucket, PREFIX + KEY) == data


async def test_an_empty_blob_is_stored_and_reads_as_nothing(store, s3, bucket):
    assert await store.put(KEY, parts()) == 0
    assert await store.read(KEY, 0, 100) == b""
    assert object_bytes(s3, bucket, PREFIX + KEY) == b""


@pytest.mark.parametrize(
    ("size", "parts_expected"),
    [(MIN_PART_SIZE, 1), (2 * MIN_PART_SIZE + 12_345, 3)],
    ids=["exactly-one-part", "two-parts-and-a-short-last"],
)
async def test_a_blob_larger_than_a_part_is_uploaded_in_parts(
    store, s3, bucket, size, parts_expected
):
    data = os.urandom(size)
    assert await store.put(KEY, parts(*in_chunks(data))) == size

    assert object_bytes(s3, bucket, PREFIX + KEY) == data
    # A multipart object's ETag ends in -N, N its number of parts; a PutObject's has no dash.
    etag = s3.head_object(Bucket=bucket, Key=PREFIX + KEY)["ETag"].strip('"')
    assert etag.endswith(f"-{parts_expected}")
    boundary = MIN_PART_SIZE
    assert await store.read(KEY, boundary - 10, 20) == data[boundary - 10 : boundary + 10]
    assert await store.read(KEY, size - 3, 10) == data[-3:]
    assert pending_uploads(s3, bucket) == []


@pytest.mark.parametrize(
    "first", [1000, MIN_PART_SIZE + 1000], ids=["before-any-part", "with-a-part-uploaded"]
)
async def test_a_write_that_fails_midway_leaves_nothing(store, s3, bucket, first):
    seen_pending: list[list[str]] = []

    async def failing():
        yield b"x" * first
        seen_pending.append(pending_uploads(s3, bucket))
        raise OSError("the client went away")

    with pytest.raises(OSError, match="went away"):
        await store.put(KEY, failing())

    # The larger write had really begun a multipart upload, and it was aborted.
    assert seen_pending == [[PREFIX + KEY] if first > MIN_PART_SIZE else []]
    assert pending_uploads(s3, bucket) == []
    assert object_names(s3, bucket) == []
    assert [key async for key in store.keys()] == []
    with pytest.raises(BlobMissing):
        await store.read(KEY, 0, 1)


async def test_a_cancelled_write_leaves_nothing(store, s3, bucket):
    started = trio.Event()

    async def slow():
        yield b"y" * (MIN_PART_SIZE + 1000)  # the first part is uploaded before the next is asked
        started.set()
        await trio.sleep_forever()
        yield b""  # never reached

    async with trio.open_nursery() as nursery:
        nursery.start_soon(store.put, KEY, slow())
        await started.wait()
        assert pending_uploads(s3, bucket) == [PREFIX + KEY]
        nursery.cancel_scope.cancel()

    assert pending_uploads(s3, bucket) == []
    assert object_names(s3, bucket) == []
    assert [key async for key in store.keys()] == []


async def test_deleting_is_idempotent_and_absent_blobs_are_missing(store, s3, bucket):
    with pytest.raises(BlobMissing):
        await store.read(KEY, 0, 1)
    with pytest.raises(BlobMissing):
        await store.read(KEY, 0, 0)
    await store.delete(KEY)  # never there: no error

    await store.put(KEY, parts(b"contents"))
    await store.delete(KEY)
    await store.delete(KEY)  # twice is fine
    with pytest.raises(BlobMissing):
        await store.read(KEY, 0, 1)
    assert object_names(s3, bucket) == []


async def test_keys_lists_only_this_stores_blobs(store, s3, bucket, moto):
    await store.put(OTHER, parts(b"second"))
    await store.put(KEY, parts(b"first"))
    for foreign in [
        PREFIX + "notes.txt",
        PREFIX + KEY.upper(),
        PREFIX + "nested/" + KEY,
        "elsewhere/" + OTHER,
        KEY,  # at the bucket's root, outside the prefix
    ]:
        s3.put_object(Bucket=bucket, Key=foreign, Body=b"not a blob of this store")

    assert [key async for key in store.keys()] == [KEY, OTHER]
    root = await S3Blobs.open(bucket, endpoint=moto.endpoint)
    assert [key async for key in root.keys()] == [KEY]


async def test_keys_pages_through_a_long_listing(store, s3, bucket):
    # list_objects_v2 answers 1,000 keys a page: 1,005 of them need a second page.
    names = sorted(uuid.uuid4().hex for _ in range(1005))
    for name in names:
        s3.put_object(Bucket=bucket, Key=PREFIX + name, Body=b"")
    assert [key async for key in store.keys()] == names


@pytest.mark.parametrize("key", ["../../etc/passwd", "ABCDEF0123456789abcdef0123456789", "tmp", ""])
async def test_keys_that_are_not_hex_ids_are_refused(store, key):
    with pytest.raises(ValueError, match="not a blob key"):
        await store.put(key, parts(b"x"))
    with pytest.raises(ValueError, match="not a blob key"):
        await store.read(key, 0, 1)
    with pytest.raises(ValueError, match="not a blob key"):
        await store.delete(key)


async def test_a_missing_bucket_is_refused_naming_it_and_the_endpoint(moto, aws_env):
    with pytest.raises(S3Unavailable) as refused:
        await S3Blobs.open("no-such-bucket-here", endpoint=moto.endpoint)
    message = str(refused.value)
    assert "'no-such-bucket-here'" in message
    assert moto.endpoint in message
    assert "no such bucket" in message
    assert SECRET not in message


async def test_an_unreachable_endpoint_is_refused_naming_it_and_the_bucket(aws_env):
    nobody = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(S3Unavailable) as refused:
        await S3Blobs.open("attachments", endpoint=nobody)
    message = str(refused.value)
    assert "'attachments'" in message
    assert nobody in message
    assert "cannot be reached" in message
    assert SECRET not in message


def test_parts_smaller_than_s3_allows_are_refused():
    with pytest.raises(ValueError, match="at least"):
        S3Blobs(client=None, bucket="attachments", part_size=MIN_PART_SIZE - 1)


# Opening a store from a blob URL.


async def test_a_relative_path_is_a_local_store_under_the_base(tmp_path):
    store = await open_blob_store("var/blobs", base=tmp_path)
    assert isinstance(store, LocalBlobs)
    assert store.root == tmp_path / "var" / "blobs"
    await store.put(KEY, parts(b"local"))
    assert (tmp_path / "var" / "blobs" / KEY[:2] / KEY).read_bytes() == b"local"


async def test_a_relative_path_without_a_base_is_under_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = await open_blob_store("blobs")
    assert isinstance(store, LocalBlobs)
    assert store.root == tmp_path / "blobs"


async def test_an_absolute_path_or_file_url_is_a_local_store_there(tmp_path):
    plain = await open_blob_store(str(tmp_path / "plain"), base=Path("/elsewhere"))
    assert isinstance(plain, LocalBlobs)
    assert plain.root == tmp_path / "plain"

    url = await open_blob_store(f"file://{tmp_path}/with%20space")
    assert isinstance(url, LocalBlobs)
    assert url.root == tmp_path / "with space"
    assert (tmp_path / "with space" / "tmp").is_dir()


async def test_an_s3_url_with_an_endpoint_opens_that_bucket_under_its_prefix(moto, s3, bucket):
    store = await open_blob_store(f"s3://{bucket}/hub/attachments/?endpoint={moto.endpoint}")
    assert isinstance(store, S3Blobs)
    assert (store.bucket, store.prefix) == (bucket, "hub/attachments/")
    assert store.endpoint == moto.endpoint
    await store.put(KEY, parts(b"in the bucket"))
    assert object_bytes(s3, bucket, "hub/attachments/" + KEY) == b"in the bucket"

    with_region = await open_blob_store(f"s3://{bucket}?endpoint={moto.endpoint}&region=eu-west-1")
    assert isinstance(with_region, S3Blobs)
    assert with_region.prefix == ""


async def test_an_s3_url_for_a_missing_bucket_is_refused(moto, aws_env):
    with pytest.raises(S3Unavailable, match="no-such-bucket-here"):
        await open_blob_store(f"s3://no-such-bucket-here?endpoint={moto.endpoint}")


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://x", "scheme 'ftp' is not supported"),
        ("s3://", "names its bucket"),
        ("s3:///attachments", "names its bucket"),
        ("s3://b", "not a bucket name"),
        ("s3://bucket:9000", "not a bucket name"),
        (f"s3://bucket?secret_access_key={SECRET}", "parameter 'secret_access_key' is not known"),
        (f"s3://key-id:{SECRET}@bucket", "carries no credentials"),
        (f"s3://bucket?endpoint=http://key-id:{SECRET}@127.0.0.1:9000", "carries no credentials"),
        ("s3://bucket?endpoint=127.0.0.1:9000", "http:// or https://"),
        ("s3://bucket?region=a&region=b", "given twice"),
        ("file://relative/path", "absolute path"),
        ("", "empty"),
    ],
)
async def test_a_url_of_no_accepted_form_is_refused_naming_the_problem(url, problem, tmp_path):
    with pytest.raises(ValueError, match=problem) as refused:
        await open_blob_store(url, base=tmp_path)
    assert SECRET not in str(refused.value)
    assert SECRET not in describe_blob_url(url)


async def test_an_unknown_scheme_is_told_the_accepted_forms():
    with pytest.raises(ValueError) as refused:
        await open_blob_store("ftp://x")
    assert "file:///absolute/path" in str(refused.value)
    assert "s3://bucket" in str(refused.value)


def test_a_blob_url_is_described_without_secrets():
    assert describe_blob_url("var/blobs") == "the local directory 'var/blobs'"
    assert describe_blob_url("file:///srv/blobs") == "the local directory '/srv/blobs'"
    assert describe_blob_url("s3://att/hub?endpoint=http://127.0.0.1:9000&region=eu-west-1") == (
        "S3 bucket 'att' under 'hub' at http://127.0.0.1:9000 in eu-west-1"
    )
    assert describe_blob_url("s3://attachments") == "S3 bucket 'attachments' at AWS's endpoint"
    assert describe_blob_url(f"s3://bucket?token={SECRET}").startswith("an invalid blob URL")
