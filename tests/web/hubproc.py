"""A real `hub serve` process for the browser tests, on free ports of its own, and the REST calls
the tests set their weddings up with (plain HTTP from the standard library)."""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt

from tests.redis_server import free_port

JWT_SECRET = "web-client-test-secret-" + "x" * 40


@dataclass
class Vendor:
    """A person of one organization, with a token the hub accepts."""

    name: str
    org_id: uuid.UUID
    role: str = "owner"
    user_id: uuid.UUID = field(default_factory=uuid.uuid4)
    ttl_s: int = 3600
    email: str | None = None  # the `email` claim: where notification e-mail would go

    @property
    def token(self) -> str:
        return self.token_for(self.ttl_s)

    def token_for(self, ttl_s: int) -> str:
        now = int(time.time())
        claims = {
            "sub": str(self.user_id),
            "org_id": str(self.org_id),
            "role": self.role,
            "name": self.name,
            "iat": now,
            "exp": now + ttl_s,
        }
        if self.email is not None:
            claims["email"] = self.email
        return jwt.encode(claims, JWT_SECRET, algorithm="HS256")


class RestError(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body


@dataclass
class WebHub:
    """One `hub serve` on `database_url`; `stop()` and `start()` keep its ports and database,
    so a test can take the hub away and bring it back."""

    database_url: str
    var_dir: Path
    http_port: int = field(default_factory=free_port)
    ws_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def api(self) -> str:
        return f"{self.url}/api/vendor-connections"

    def start(self) -> None:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
        environ.update(
            HUB_DATABASE_URL=self.database_url,
            HUB_VAR_DIR=str(self.var_dir),
            HUB_JWT_SECRET=JWT_SECRET,
            HUB_ENCRYPTION_KEY=_encryption_key(self.var_dir),
            HUB_HTTP_PORT=str(self.http_port),
            HUB_WS_PORT=str(self.ws_port),
            HUB_LOG_LEVEL="WARNING",
            HUB_RATE_READ_PER_S="1000",
            HUB_RATE_READ_BURST="1000",
            HUB_RATE_WRITE_PER_S="1000",
            HUB_RATE_WRITE_BURST="1000",
            HUB_RATE_SEND_PER_S="1000",
            HUB_RATE_SEND_BURST="1000",
            HUB_RATE_UPLOAD_PER_S="1000",
            HUB_RATE_UPLOAD_BURST="1000",
        )
        environ.update(self.extra_env)
        log = open(self.var_dir / "hub.log", "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hub", "serve"],
            env=environ,
            cwd=self.var_dir,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"hub serve exited with {self.process.returncode}: {self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"hub serve was not ready within 30 s: {self.log()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def log(self) -> str:
        path = self.var_dir / "hub.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def call(self, vendor: Vendor, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.api + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {vendor.token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                text = answer.read()
        except urllib.error.HTTPError as error:
            raise RestError(error.code, error.read().decode(errors="replace")) from None
        return json.loads(text) if text else None

    def upload(
        self, vendor: Vendor, thread_id: str, filename: str, data: bytes, content_type: str
    ) -> Any:
        """A file uploaded to a thread as the web client does it (the raw body); the stored
        attachment, or RestError with the hub's refusal."""
        query = urllib.parse.urlencode({"filename": filename})
        request = urllib.request.Request(
            f"{self.api}/threads/{thread_id}/attachments?{query}", data=data, method="POST"
        )
        request.add_header("Authorization", f"Bearer {vendor.token}")
        request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return json.loads(answer.read())
        except urllib.error.HTTPError as error:
            raise RestError(error.code, error.read().decode(errors="replace")) from None


def _encryption_key(var_dir: Path) -> str:
    """One master key per hub, kept across its restarts (its messages stay readable)."""
    path = var_dir / "test-master-key"
    if not path.exists():
        path.write_text(base64.b64encode(secrets.token_bytes(32)).decode())
    return path.read_text()
