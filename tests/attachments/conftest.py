"""Fixtures for attachment tests over real sockets: a running hub (both backends) with small
limits, a wedding of two organizations sharing a thread plus an outsider, and a REST client that
sends exact bytes (tests.http.wire) so streaming and limits are seen as a client sees them."""

from __future__ import annotations

import io
import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3
import pytest
from PIL import Image

from hub.app import Running
from hub.attachments.service import Attachments
from hub.config import Settings
from hub.storage.records import Thread
from tests.attachments.s3server import MotoServer, start_moto
from tests.factories import Member, add_member, new_group, new_member, new_thread
from tests.http.wire import Connection, WireResponse, request
from tests.realtime.conftest import hub_for, realtime_settings

BASE = "/api/vendor-connections"
# moto takes any credentials; this one is distinctive so a test can show no message repeats it.
SECRET = "dummy-secret-that-must-never-be-shown"
MAX_FILE = 300_000


@dataclass
class Reply:
    status: int
    headers: dict[bytes, bytes]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        value = self.headers.get(name.lower().encode())
        return None if value is None else value.decode("latin-1")


class Rest:
    """One request per connection, as exact bytes, to the running hub's REST port."""

    def __init__(self, hub: Running) -> None:
        self.url = hub.rest_url

    async def call(
        self,
        method: str,
        path: str,
        member: Member | None,
        *,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        json_body: Any = None,
    ) -> Reply:
        all_headers = dict(headers or {})
        if member is not None:
            all_headers["Authorization"] = f"Bearer {member.token}"
        if json_body is not None:
            body = json.dumps(json_body).encode()
            all_headers["Content-Type"] = "application/json"
        all_headers.setdefault("Content-Length", str(len(body)))
        connection = await Connection.open(self.url)
        try:
            await connection.send(request(method, BASE + path, list(all_headers.items())) + body)
            answer = await connection.response(method.encode())
        finally:
            await connection.aclose()
        assert answer is not None, f"{method} {path}: the hub closed without answering"
        return Reply(answer.status, answer.headers, answer.body)

    async def upload(
        self,
        member: Member,
        thread_id: Any,
        data: bytes,
        *,
        filename: str,
        content_type: str | None,
    ) -> Reply:
        headers = {"Content-Type": content_type} if content_type else {}
        return await self.call(
            "POST",
            f"/threads/{thread_id}/attachments?filename={quote(filename)}",
            member,
            body=data,
            headers=headers,
        )


@dataclass
class Wedding:
    hub: Running
    settings: Settings
    rest: Rest
    planner: Member  # owns the group
    photographer: Member  # another organization, an active member
    outsider: Member  # an organization with nothing to do with the wedding
    thread: Thread
    other_thread: Thread  # another thread of the same group

    @property
    def hub_attachments(self) -> Attachments:
        assert self.hub.attachments is not None
        return self.hub.attachments


def attachment_settings(database_url: str, var_dir, **overrides: str) -> Settings:
    base = {
        "HUB_MAX_FILE_SIZE": str(MAX_FILE),
        "HUB_RATE_UPLOAD_BURST": "1000",
        "HUB_RATE_READ_BURST": "1000",
        "HUB_RATE_WRITE_BURST": "1000",
        "HUB_RATE_SEND_BURST": "1000",
    }
    base.update(overrides)
    return realtime_settings(database_url, var_dir, **base)


@pytest.fixture
def attachment_overrides() -> dict[str, str]:
    return {}


@pytest.fixture
def settings(database_url: str, tmp_path, attachment_overrides) -> Settings:
    return attachment_settings(database_url, tmp_path / "var", **attachment_overrides)


@pytest.fixture
async def hub(settings: Settings) -> AsyncIterator[Running]:
    async with hub_for(settings) as running:
        yield running


@pytest.fixture
async def wedding(hub: Running, settings: Settings) -> Wedding:
    storage = hub.storage
    planner = await new_member(storage, settings, name="Paula Planner")
    photographer = await new_member(storage, settings, role="vendor", name="Phil Photographer")
    outsider = await new_member(storage, settings, name="Eve Outsider")
    group = await new_group(storage, planner)
    await add_member(storage, group, photographer, invited_by=planner)
    thread = await new_thread(storage, group, planner, title="Setup photos")
    other = await new_thread(storage, group, planner, title="Timeline")
    return Wedding(hub, settings, Rest(hub), planner, photographer, outsider, thread, other)


# --- a real S3 endpoint: moto's server in a process of its own ---------------------------------


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = start_moto(tmp_path_factory.mktemp("moto"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Dummy credentials, and nothing of the machine's own AWS settings (a profile, a default
    endpoint, a config file) that could send a request elsewhere."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "dummy-key-id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


@pytest.fixture
def s3(moto: MotoServer, aws_env: None):
    """A plain boto3 client on the same server, to look at the bucket behind the store's back."""
    return boto3.client("s3", endpoint_url=moto.endpoint, region_name="us-east-1")


@pytest.fixture
def bucket(s3) -> str:
    name = f"hub-test-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(Bucket=name)
    return name


def png(width: int = 64, height: int = 48, *, exif: bytes | None = None) -> bytes:
    out = io.BytesIO()
    image = Image.new("RGB", (width, height), (200, 40, 90))
    image.save(out, "PNG", **({"exif": exif} if exif else {}))
    return out.getvalue()


def jpeg_with_gps(width: int = 640, height: int = 480) -> bytes:
    """A photo as a phone takes it: EXIF with a camera model and a GPS position."""
    image = Image.new("RGB", (width, height), (30, 120, 200))
    exif = Image.Exif()
    exif[0x0110] = "Phone Camera 12"  # Model
    gps = {1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)}
    exif[0x8825] = gps  # GPSInfo
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif.tobytes())
    return out.getvalue()


def wire(reply: WireResponse) -> Reply:
    return Reply(reply.status, reply.headers, reply.body)
