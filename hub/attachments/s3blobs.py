"""Blobs in an S3-compatible object store (AWS S3, MinIO, Ceph...): the store for several hub
nodes, which cannot share a directory.

A blob is the object `<prefix><key>` in one bucket. It becomes visible only when it is whole:
one that fits in a part is a single PutObject, and a larger one a multipart upload, which S3
shows to nobody until CompleteMultipartUpload. A failure or cancellation midway aborts the
upload, so its parts are dropped and no object appears. A process killed mid-upload cannot
abort: its upload stays pending (invisible, but holding storage), which a bucket lifecycle rule
(AbortIncompleteMultipartUpload) removes.

Memory stays bounded whatever the blob's size: contents are sent a part at a time (8 MiB by
default; S3 needs at least 5 MiB for every part but the last and takes at most 10,000 parts,
so 8 MiB parts allow blobs up to 78 GiB).

boto3 is blocking, so every call runs in a worker thread (a boto3 client may be shared between
threads; a boto3 Session may not, so one is made only to build the client). Credentials come
from boto3's usual chain (AWS_ACCESS_KEY_ID and the rest, profiles, instance roles) and are never
named in a message or a log line.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import boto3
import trio
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from hub.attachments.blobstore import BlobMissing, check_key
from hub.errors import HubError

log = logging.getLogger(__name__)

MIN_PART_SIZE = 5 * 1024 * 1024
"""S3 refuses a multipart upload whose parts (all but the last) are smaller (EntityTooSmall)."""

DEFAULT_PART_SIZE = 8 * 1024 * 1024

# What UploadPart may answer that CompleteMultipartUpload wants back for each part.
_PART_CHECKSUMS = (
    "ChecksumCRC32",
    "ChecksumCRC32C",
    "ChecksumCRC64NVME",
    "ChecksumSHA1",
    "ChecksumSHA256",
)


class S3Unavailable(HubError):
    """The bucket cannot be reached: a wrong endpoint, no such bucket, or credentials it refuses.
    The message names the bucket and the endpoint, never a credential. A request meets it as
    503 `storage_unavailable`: nothing was stored, and trying again later may work."""

    code = "storage_unavailable"


class S3Blobs:
    name = "s3"

    def __init__(
        self,
        client: Any,
        bucket: str,
        *,
        prefix: str = "",
        endpoint: str | None = None,
        part_size: int = DEFAULT_PART_SIZE,
    ) -> None:
        """A store on `client` (a boto3 S3 client); `open` is the usual way to make one, as it
        checks the bucket answers. `endpoint` is only for messages."""
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes (S3's minimum)")
        self._client = client
        self.bucket = bucket
        self.prefix = _normalised_prefix(prefix)
        self.endpoint = endpoint
        self.part_size = part_size

    @classmethod
    async def open(
        cls,
        bucket: str,
        *,
        prefix: str = "",
        endpoint: str | None = None,
        region: str | None = None,
        part_size: int = DEFAULT_PART_SIZE,
    ) -> S3Blobs:
        """The store in `bucket` (at `endpoint`, or AWS's own when None), once HeadBucket shows
        the bucket is there and the credentials may use it; S3Unavailable otherwise, so a wrong
        setting stops the hub at start rather than at the first attachment."""
        client = await trio.to_thread.run_sync(_make_client, endpoint, region)
        store = cls(client, bucket, prefix=prefix, endpoint=endpoint, part_size=part_size)
        try:
            await trio.to_thread.run_sync(lambda: client.head_bucket(Bucket=bucket))
        except ClientError as exc:
            raise S3Unavailable(f"{store.describe()} cannot be used: {_refusal(exc)}") from None
        except BotoCoreError as exc:
            # botocore's messages name the endpoint URL or the missing setting, never a secret.
            raise S3Unavailable(f"{store.describe()} cannot be reached: {exc}") from None
        return store

    def describe(self) -> str:
        """The bucket, prefix and endpoint, for messages and logs."""
        where = _without_userinfo(self.endpoint) if self.endpoint else "AWS's endpoint"
        inside = f" under {self.prefix!r}" if self.prefix else ""
        return f"S3 bucket {self.bucket!r}{inside} at {where}"

    def _object(self, key: str) -> str:
        return self.prefix + check_key(key)

    async def put(self, key: str, parts: AsyncIterable[bytes]) -> int:
        try:
            return await self._put(key, parts)
        except (BotoCoreError, ClientError) as exc:
            raise self._unavailable("store", exc) from None

    def _unavailable(self, doing: str, exc: Exception) -> S3Unavailable:
        log.warning("attachments: %s could not %s a blob: %s", self.describe(), doing, exc)
        reason = _refusal(exc) if isinstance(exc, ClientError) else "no answer"
        return S3Unavailable(f"the attachment store could not {doing} the file ({reason})")

    async def _put(self, key: str, parts: AsyncIterable[bytes]) -> int:
        name = self._object(key)
        pending = bytearray()
        upload: _Upload | None = None
        written = 0
        try:
            async for part in parts:
                pending += part
                written += len(part)
                while len(pending) >= self.part_size:
                    if upload is None:
                        upload = await trio.to_thread.run_sync(self._start_upload, name)
                    piece = bytes(pending[: self.part_size])
                    del pending[: self.part_size]
                    await trio.to_thread.run_sync(upload.send, piece)
            if upload is None:
                body = bytes(pending)
                await trio.to_thread.run_sync(
                    lambda: self._client.put_object(Bucket=self.bucket, Key=name, Body=body)
                )
            else:
                if pending:
                    await trio.to_thread.run_sync(upload.send, bytes(pending))
                await trio.to_thread.run_sync(upload.complete)
        except BaseException:
            if upload is not None:
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(upload.abort)
            raise
        return written

    def _start_upload(self, name: str) -> _Upload:
        extra = {}
        # Follow boto3's own transfer manager: where the client computes checksums for requests
        # that support them (its default), the upload declares CRC32, each part carries one and
        # the completion lists them, which S3 then requires.
        if self._client.meta.config.request_checksum_calculation == "when_supported":
            extra["ChecksumAlgorithm"] = "CRC32"
        answer = self._client.create_multipart_upload(Bucket=self.bucket, Key=name, **extra)
        return _Upload(self._client, self.bucket, name, answer["UploadId"], extra)

    async def read(self, key: str, offset: int, length: int) -> bytes:
        name = self._object(key)
        if offset < 0 or length < 0:
            raise ValueError(f"offset and length must not be negative, got {offset}, {length}")
        try:
            return await trio.to_thread.run_sync(self._read_range, name, offset, length)
        except ClientError as exc:
            if _error_code(exc) in ("NoSuchKey", "404"):
                raise BlobMissing(f"blob {key} is not in the store") from None
            # S3 answers 416 to a range that starts at or past the end (an empty object has
            # no range at all); the local store reads nothing there, and so does this one.
            if _error_code(exc) == "InvalidRange":
                return b""
            raise self._unavailable("read", exc) from None
        except BotoCoreError as exc:
            raise self._unavailable("read", exc) from None

    def _read_range(self, name: str, offset: int, length: int) -> bytes:
        if length == 0:
            # "bytes=N-(N-1)" is no range; asking whether the object is there is enough.
            self._client.head_object(Bucket=self.bucket, Key=name)
            return b""
        answer = self._client.get_object(
            Bucket=self.bucket, Key=name, Range=f"bytes={offset}-{offset + length - 1}"
        )
        body = answer["Body"]
        try:
            return body.read()
        finally:
            body.close()

    async def delete(self, key: str) -> None:
        name = self._object(key)
        # S3 answers 204 for an absent key too, so deleting twice is no error.
        try:
            await trio.to_thread.run_sync(
                lambda: self._client.delete_object(Bucket=self.bucket, Key=name)
            )
        except (BotoCoreError, ClientError) as exc:
            raise self._unavailable("remove", exc) from None

    async def keys(self) -> AsyncIterator[str]:
        # One page (up to 1,000 keys) at a time, each fetched in a worker thread. The delimiter
        # keeps "folders" below the prefix out of the listing; check_key keeps out whatever else
        # shares it (a notes.txt someone left there, another store's prefix).
        try:
            pages = await trio.to_thread.run_sync(self._pages)
            found = [await trio.to_thread.run_sync(next, pages, None)]
        except (BotoCoreError, ClientError) as exc:
            raise self._unavailable("list", exc) from None
        while (page := found.pop()) is not None:
            try:
                found.append(await trio.to_thread.run_sync(next, pages, None))
            except (BotoCoreError, ClientError) as exc:
                raise self._unavailable("list", exc) from None
            for entry in page.get("Contents", ()):
                key = entry["Key"][len(self.prefix) :]
                if _is_key(key):
                    yield key

    def _pages(self) -> Iterator[dict[str, Any]]:
        # In a worker thread too: botocore reads the paginator's model from disk on first use.
        paginator = self._client.get_paginator("list_objects_v2")
        return iter(paginator.paginate(Bucket=self.bucket, Prefix=self.prefix, Delimiter="/"))


class _Upload:
    """One multipart upload in progress: the parts sent so far, to complete or abort it."""

    def __init__(
        self, client: Any, bucket: str, name: str, upload_id: str, extra: dict[str, str]
    ) -> None:
        self._client = client
        self._bucket = bucket
        self._name = name
        self._id = upload_id
        self._extra = extra
        self._parts: list[dict[str, Any]] = []

    def send(self, data: bytes) -> None:
        number = len(self._parts) + 1
        answer = self._client.upload_part(
            Bucket=self._bucket,
            Key=self._name,
            UploadId=self._id,
            PartNumber=number,
            Body=data,
            **self._extra,
        )
        part = {"PartNumber": number, "ETag": answer["ETag"]}
        part.update((field, answer[field]) for field in _PART_CHECKSUMS if field in answer)
        self._parts.append(part)

    def complete(self) -> None:
        self._client.complete_multipart_upload(
            Bucket=self._bucket,
            Key=self._name,
            UploadId=self._id,
            MultipartUpload={"Parts": self._parts},
        )

    def abort(self) -> None:
        """Drop the parts, so nothing of this upload is ever visible. A failure here must not
        hide the one that made the write stop, so it is logged: the upload stays pending until
        the bucket's lifecycle rule removes it (and NoSuchUpload means it completed or is gone)."""
        try:
            self._client.abort_multipart_upload(
                Bucket=self._bucket, Key=self._name, UploadId=self._id
            )
        except (BotoCoreError, ClientError) as exc:
            log.warning(
                "could not abort the multipart upload of %s in bucket %r: %s",
                self._name,
                self._bucket,
                exc,
            )


def _make_client(endpoint: str | None, region: str | None) -> Any:
    config = Config(
        # An S3-compatible server on a host of its own (MinIO on minio:9000) has no wildcard
        # DNS for bucket.minio, so the bucket goes in the path there.
        s3={"addressing_style": "path"} if endpoint else {},
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=5,
        read_timeout=60,
    )
    session = boto3.session.Session(region_name=region)
    return session.client("s3", endpoint_url=endpoint, config=config)


def _normalised_prefix(prefix: str) -> str:
    """'attachments', '/attachments/' and 'attachments/' all mean the folder `attachments/`."""
    prefix = prefix.strip("/")
    return f"{prefix}/" if prefix else ""


def _without_userinfo(url: str) -> str:
    """The URL with any user:password@ dropped: an endpoint is named in messages and logs."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _is_key(name: str) -> bool:
    try:
        check_key(name)
    except ValueError:
        return False
    return True


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _refusal(exc: ClientError) -> str:
    """Why HeadBucket was refused, in words: HEAD answers carry a status but no error body."""
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if status == 404:
        return "no such bucket (404)"
    if status == 403:
        return "access denied (403): check the AWS credentials and the bucket's policy"
    if status == 301:
        return "the bucket is in another region (301): set the region"
    return f"{_error_code(exc) or 'error'} ({status})"
