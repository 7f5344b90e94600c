"""Opening the blob store a URL names (HUB_BLOB_URL's value), so the rest of the hub sees only
the `BlobStore` interface and never which kind it got.

Accepted forms:
- a directory path (`var/blobs`, relative to `base` or the working directory) or
  `file:///absolute/path`: the local store, for one process or nodes sharing a file system;
- `s3://bucket[/prefix][?endpoint=URL&region=NAME]`: an S3-compatible store, for several nodes.
  Its credentials come from boto3's usual chain (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
  AWS_SESSION_TOKEN, profiles, instance roles), never from the URL: a URL is shown in logs and
  process lists, and a secret in it would be shown with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from hub.attachments.blobstore import BlobStore
from hub.attachments.localblobs import LocalBlobs
from hub.attachments.s3blobs import S3Blobs

FORMS = (
    "a directory path, file:///absolute/path, "
    "or s3://bucket[/prefix][?endpoint=http://host:port&region=NAME]"
)

# Letters, digits, dots, hyphens (and the underscores of old us-east-1 buckets), 3 to 63 of them.
_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,61}[A-Za-z0-9]")
_S3_PARAMETERS = ("endpoint", "region")


@dataclass(frozen=True)
class _Local:
    path: Path


@dataclass(frozen=True)
class _S3:
    bucket: str
    prefix: str
    endpoint: str | None
    region: str | None


async def open_blob_store(url: str, *, base: Path | None = None) -> BlobStore:
    """The store `url` names, opened (the directory made, or the bucket shown to answer).

    ValueError for a URL of no accepted form, naming what is wrong; S3Unavailable (from
    s3blobs) for a bucket that cannot be reached."""
    spec = _parse(url)
    if isinstance(spec, _Local):
        root = spec.path if spec.path.is_absolute() else (base or Path.cwd()) / spec.path
        return await LocalBlobs.open(root)
    return await S3Blobs.open(
        spec.bucket, prefix=spec.prefix, endpoint=spec.endpoint, region=spec.region
    )


def describe_blob_url(url: str) -> str:
    """What `url` names, in words safe for a log line: no password, no query value but the
    endpoint's and the region's (the endpoint without any user:password@)."""
    try:
        spec = _parse(url)
    except ValueError as exc:
        return f"an invalid blob URL ({exc})"
    if isinstance(spec, _Local):
        return f"the local directory {str(spec.path)!r}"
    words = f"S3 bucket {spec.bucket!r}"
    if spec.prefix:
        words += f" under {spec.prefix!r}"
    words += f" at {spec.endpoint}" if spec.endpoint else " at AWS's endpoint"
    if spec.region:
        words += f" in {spec.region}"
    return words


def _parse(url: str) -> _Local | _S3:
    """What the URL names, or ValueError. No message repeats a part that could hold a secret:
    user:password@, or a query value other than the endpoint's and the region's."""
    if not url.strip():
        raise ValueError(f"blob URL is empty; it must be {FORMS}")
    parts = urlsplit(url)
    if parts.scheme == "":
        return _Local(Path(url))
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise ValueError(
                "a file URL names an absolute path, as in file:///var/blobs; "
                f"accepted forms: {FORMS}"
            )
        if parts.query or parts.fragment:
            raise ValueError(f"a file URL takes no query or fragment; accepted forms: {FORMS}")
        return _Local(Path(unquote(parts.path)))
    if parts.scheme == "s3":
        return _parse_s3(parts.netloc, parts.path, parts.query, parts.fragment)
    raise ValueError(f"blob URL scheme {parts.scheme!r} is not supported; use {FORMS}")


def _parse_s3(netloc: str, path: str, query: str, fragment: str) -> _S3:
    if "@" in netloc:
        raise ValueError(
            "an s3 URL carries no credentials: boto3 takes them from AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (or a profile)"
        )
    if not netloc:
        raise ValueError(
            f"an s3 URL names its bucket, as in s3://attachments; accepted forms: {FORMS}"
        )
    if not _BUCKET.fullmatch(netloc):
        raise ValueError(
            f"s3 bucket {netloc!r} is not a bucket name (3 to 63 letters, digits, dots or "
            "hyphens, no port)"
        )
    if fragment:
        raise ValueError("an s3 URL takes no fragment")
    settings: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name not in _S3_PARAMETERS:
            # The value is not shown: it may well be a secret someone hoped to pass this way.
            raise ValueError(
                f"s3 URL parameter {name!r} is not known: it takes only endpoint and region, "
                "and credentials come from the AWS variables or profiles"
            )
        if name in settings:
            raise ValueError(f"s3 URL parameter {name!r} is given twice")
        settings[name] = value
    endpoint = settings.get("endpoint") or None
    if endpoint is not None:
        _check_endpoint(endpoint)
    prefix = unquote(path).strip("/")
    return _S3(netloc, prefix, endpoint, settings.get("region") or None)


def _check_endpoint(endpoint: str) -> None:
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            "the s3 endpoint must be an http:// or https:// URL with a host, as in "
            "endpoint=http://127.0.0.1:9000"
        )
    if "@" in parts.netloc:
        raise ValueError(
            "the s3 endpoint carries no credentials: boto3 takes them from AWS_ACCESS_KEY_ID "
            "and AWS_SECRET_ACCESS_KEY (or a profile)"
        )
    if parts.query or parts.fragment:
        raise ValueError("the s3 endpoint takes no query or fragment")
