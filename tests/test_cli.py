"""The `hub` command as an operator meets it: help, tokens, migrations, keys, startup errors."""

from __future__ import annotations

import base64
import contextlib
import functools
import http.client
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
import pytest
import trio
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from hub import protocol
from tests.identity_provider import hs256_with_key, idp_claims, public_pem
from tests.realtime.helpers import close_code, raw_socket, receive

HUB = [sys.executable, "-m", "hub"]


def run(*args: str, cwd, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    environ.update(env or {})
    return subprocess.run(
        [*HUB, *args], cwd=cwd, env=environ, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["serve"],
        ["token"],
        ["migrate"],
        ["keys"],
        ["keys", "rotate"],
        ["keys", "reseal"],
        ["retention", "run"],
        ["export"],
        ["erase"],
        ["erase", "user"],
        ["erase", "org"],
    ],
)
def test_every_command_explains_itself(tmp_path, command):
    result = run(*command, "--help", cwd=tmp_path)

    assert result.returncode == 0
    assert "usage: hub" in result.stdout
    assert len(result.stdout.splitlines()) > 3


def test_token_prints_a_verifiable_token_with_the_claims(tmp_path):
    secret = "t" * 48
    user, org = uuid.uuid4(), uuid.uuid4()

    result = run(
        "token",
        "--user",
        str(user),
        "--org",
        str(org),
        "--role",
        "manager",
        "--name",
        "Dana",
        "--ttl",
        "600",
        cwd=tmp_path,
        env={"HUB_JWT_SECRET": secret, "HUB_ENCRYPTION_KEY": _key()},
    )

    assert result.returncode == 0, result.stderr
    claims = jwt.decode(result.stdout.strip(), secret, algorithms=["HS256"])
    assert (claims["sub"], claims["org_id"], claims["role"], claims["name"]) == (
        str(user),
        str(org),
        "manager",
        "Dana",
    )
    assert claims["exp"] - claims["iat"] == 600


def test_migrate_applies_once_then_reports_up_to_date(tmp_path):
    first = run("migrate", cwd=tmp_path)
    second = run("migrate", cwd=tmp_path)

    assert first.returncode == 0 and "applied 0001_initial" in first.stdout
    assert second.returncode == 0 and "schema is up to date" in second.stdout
    assert (tmp_path / "var" / "hub.db").exists()


def test_keys_rotate_makes_a_new_active_version(tmp_path):
    assert run("migrate", cwd=tmp_path).returncode == 0

    result = run("keys", "rotate", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "data key version 2 is now active" in result.stdout


def test_retention_run_purges_a_wedding_past_its_days_and_says_so(tmp_path):
    from datetime import date

    from hub.config import load_settings
    from hub.storage import open_storage
    from hub.storage.groups import create_group
    from hub.storage.identities import upsert_identity

    assert run("migrate", cwd=tmp_path).returncode == 0
    settings = load_settings(
        {
            "HUB_VAR_DIR": str(tmp_path / "var"),
            "HUB_DATABASE_URL": f"sqlite:///{tmp_path}/var/hub.db",
        }
    )
    user, org, group = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()

    async def seed() -> None:
        async with open_storage(settings) as storage:
            await storage.write(
                lambda now: upsert_identity(
                    user_id=user,
                    organization_id=org,
                    username="paula",
                    display_name="Paula",
                    role="owner",
                    now=now,
                )
            )
            await storage.write(
                lambda now: create_group(
                    group_id=group,
                    owner_organization_id=org,
                    created_by=user,
                    name="Long ago",
                    now=now,
                    wedding_date=date(2001, 5, 5),
                )
            )

    trio.run(seed)
    result = run("retention", "run", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert f"purged\t{group}" in result.stdout
    assert "0 groups archived, 1 purged (0 messages, 0 attachments)" in result.stdout
    again = run("retention", "run", cwd=tmp_path)
    assert "0 groups archived, 0 purged" in again.stdout


def test_a_wrong_master_key_is_one_line_and_no_traceback(tmp_path):
    assert run("keys", "rotate", cwd=tmp_path).returncode == 0

    result = run("keys", "rotate", cwd=tmp_path, env={"HUB_ENCRYPTION_KEY": _key()})

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "hub: HUB_ENCRYPTION_KEY does not match the key that protects this database's data keys"
        " (data key version 1 failed to unwrap)"
    ]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"HUB_ENV": "production"}, "HUB_JWT_SECRET is required when HUB_ENV=production"),
        ({"HUB_HTTP_PORT": "http"}, "HUB_HTTP_PORT must be a whole number"),
        (
            {"HUB_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none"},
            "cannot reach the database",
        ),
    ],
)
def test_startup_problems_are_one_clear_line(tmp_path, env, message):
    result = run("serve", cwd=tmp_path, env=env)

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert message in result.stderr.strip().splitlines()[-1]


def _key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


async def test_serve_with_an_identity_providers_key_in_development_keeps_serving(tmp_path):
    # Before, the banner tried to mint its development token, could not (the hub has only the
    # public key), and `hub serve` exited 2 right after starting.
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "idp.pem"
    pem.write_bytes(public_pem(private_key))
    environ = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    environ.update(
        HUB_JWT_PUBLIC_KEY=str(pem),
        HUB_VAR_DIR=str(tmp_path / "var"),
        HUB_DATABASE_URL=f"sqlite:///{tmp_path}/hub.db",
        HUB_HTTP_PORT="0",
        HUB_WS_PORT="0",
    )
    async with serving(environ, b"  tokens:") as (process, output):
        text = output.decode(errors="replace")
        assert "tokens:    from your identity provider" in text, text
        assert "token:     ey" not in text
        rest = re.search(r"REST:\s+(\S+)", text).group(1)
        ws_url = re.search(r"WebSocket:\s+(\S+)", text).group(1)

        signed = jwt.encode(idp_claims(role="owner"), private_key, algorithm="RS256")
        other_type = jwt.encode(
            idp_claims(), ec.generate_private_key(ec.SECP256R1()), algorithm="ES256"
        )
        confused = hs256_with_key(idp_claims(), public_pem(private_key))
        answers = [
            await trio.to_thread.run_sync(_get, rest + "/groups", token)
            for token in (signed, other_type, confused)
        ]

        async with raw_socket(ws_url, signed) as ws:
            ready = await receive(ws)
        async with raw_socket(ws_url, other_type) as ws:
            refused = await close_code(ws)

        process.send_signal(signal.SIGTERM)
        with trio.fail_after(30):
            status = await process.wait()

    assert answers[0][0] == 200 and "items" in answers[0][1], answers[0]
    # An ES256 token against an RSA key used to escape the verifier as a 500.
    assert [(code, body["error"]["code"]) for code, body in answers[1:]] == [
        (401, "unauthorized"),
        (401, "unauthorized"),
    ]
    assert isinstance(ready, protocol.Ready)
    assert refused == protocol.CLOSE_UNAUTHORIZED
    assert status == 0, output.decode(errors="replace")


def test_token_with_an_identity_providers_key_says_why_it_cannot_mint(tmp_path):
    pem = tmp_path / "idp.pem"
    pem.write_bytes(public_pem(ec.generate_private_key(ec.SECP256R1())))

    result = run(
        "token",
        "--user",
        str(uuid.uuid4()),
        "--org",
        str(uuid.uuid4()),
        "--role",
        "owner",
        cwd=tmp_path,
        env={"HUB_JWT_PUBLIC_KEY": str(pem), "HUB_ENCRYPTION_KEY": _key()},
    )

    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "hub: HUB_JWT_PUBLIC_KEY is set, so the hub accepts only tokens your identity provider"
        " signs (RS256/ES256) and cannot mint one: `hub token` signs with HUB_JWT_SECRET. Get a"
        " token from the identity provider, or unset HUB_JWT_PUBLIC_KEY to use development tokens"
    ]


async def test_serve_prints_a_link_that_opens_the_web_client_signed_in(tmp_path):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    environ.update(
        HUB_VAR_DIR=str(tmp_path / "var"),
        HUB_DATABASE_URL=f"sqlite:///{tmp_path}/hub.db",
        HUB_HTTP_PORT="0",
        HUB_WS_PORT="0",
    )
    async with serving(environ, b"  token:") as (process, output):
        text = output.decode(errors="replace")
        link = re.search(r"open:\s+(http://\S+)/#token=(\S+)", text)
        assert link is not None, text
        root, token = link.groups()
        assert re.search(r"REST:\s+(\S+)", text).group(1) == root + "/api/vendor-connections"
        page = await trio.to_thread.run_sync(_get_text, root + "/")
        assert '<script type="module" src="/app/js/app.js"></script>' in page
        assert token not in page
        status, me = await trio.to_thread.run_sync(_get, root + "/api/vendor-connections/me", token)
        assert (status, me["display_name"], me["role"]) == (200, "Dev Planner", "owner")
        process.send_signal(signal.SIGTERM)
        with trio.fail_after(30):
            assert await process.wait() == 0


def _get(url: str, token: str) -> tuple[int, Any]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request("GET", parts.path, headers={"Authorization": f"Bearer {token}"})
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        conn.close()


LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")


async def test_every_log_line_of_serve_names_its_node(tmp_path):
    # No secrets given: the development ones are generated, and announced while the settings
    # load, before logging knows the node; those lines must name it too.
    environ = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    environ.update(
        HUB_NODE_ID="edge-7",
        HUB_VAR_DIR=str(tmp_path / "var"),
        HUB_DATABASE_URL=f"sqlite:///{tmp_path}/hub.db",
        HUB_HTTP_PORT="0",
        HUB_WS_PORT="0",
    )
    async with serving(environ, b"  try:") as (process, output):
        rest = re.search(r"REST:\s+(\S+)", output.decode(errors="replace")).group(1)
        scraped = await trio.to_thread.run_sync(
            _get_text, rest.removesuffix("/api/vendor-connections") + "/metrics"
        )
        process.send_signal(signal.SIGTERM)
        with trio.fail_after(30):
            status = await process.wait()

    text = output.decode(errors="replace")
    lines = [line for line in text.splitlines() if line.strip()]
    logged = [line for line in lines if LOG_LINE.match(line)]
    assert status == 0, text
    assert "  node:      edge-7" in lines
    assert any("HUB_JWT_SECRET is not set" in line for line in logged), text
    assert any("SIGTERM received" in line for line in logged), text
    assert all(" node=edge-7 " in line for line in logged), text
    assert 'hub_node_info{node="edge-7"} 1.0' in scraped


def _get_text(url: str) -> str:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request("GET", parts.path)
        return conn.getresponse().read().decode()
    finally:
        conn.close()


@contextlib.asynccontextmanager
async def serving(
    environ: dict[str, str], banner_end: bytes
) -> AsyncIterator[tuple[trio.Process, bytearray]]:
    """`hub serve` with `environ`, once its banner has printed up to `banner_end` (or it has
    exited); its output keeps being read to the end, so it never blocks on a full pipe."""
    output = bytearray()
    banner_or_exit = trio.Event()
    async with trio.open_nursery() as nursery:
        process = await nursery.start(
            functools.partial(
                trio.run_process,
                [*HUB, "serve"],
                cwd=Path(environ["HUB_VAR_DIR"]).parent,
                env=environ,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                check=False,
            )
        )

        async def read_output() -> None:
            async for chunk in process.stdout:
                output.extend(chunk)
                if banner_end in output:
                    banner_or_exit.set()
            banner_or_exit.set()

        nursery.start_soon(read_output)
        with trio.fail_after(60):
            await banner_or_exit.wait()
        yield process, output
