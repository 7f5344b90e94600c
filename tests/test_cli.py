"""The `hub` command as an operator meets it: help, tokens, migrations, keys, startup errors."""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
import uuid

import jwt
import pytest

HUB = [sys.executable, "-m", "hub"]


def run(*args: str, cwd, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    environ.update(env or {})
    return subprocess.run(
        [*HUB, *args], cwd=cwd, env=environ, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    "command",
    [[], ["serve"], ["token"], ["migrate"], ["keys"], ["keys", "rotate"]],
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
