"""`hub export` as an operator runs it to answer a request by mail: the same archive as the
REST door, written to a file, audited."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
import zipfile

import trio

from tests.privacy.conftest import World


def hub_command(world: World, *args: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    environ.update(
        HUB_DATABASE_URL=world.settings.database_url,
        HUB_ENCRYPTION_KEY=base64.b64encode(world.settings.encryption_key).decode(),
        HUB_JWT_SECRET=world.settings.jwt_secret,
        HUB_BLOB_URL=world.settings.blob_url,
    )
    return subprocess.run(
        [sys.executable, "-m", "hub", *args],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_hub_export_user_writes_the_archive_and_audits_it(world: World, tmp_path):
    out = tmp_path / "flora.zip"

    result = await trio.to_thread.run_sync(
        hub_command, world, "export", "user", str(world.flora.user_id), "--out", str(out)
    )

    assert result.returncode == 0, result.stderr
    assert f"wrote {out}" in result.stdout
    with zipfile.ZipFile(out) as zipped:
        assert zipped.testzip() is None
        messages = json.loads(zipped.read("messages.json"))
        assert {m["body"] for m in messages} == set(world.sent)
        (listed,) = json.loads(zipped.read("attachments.json"))
        assert zipped.read(listed["path"]) == world.photo
    (row,) = await world.rows(
        "SELECT actor_user_id, target_id, details FROM vendor_communication_audit "
        "WHERE action = 'privacy.export'"
    )
    assert row["actor_user_id"] is None
    assert row["target_id"] == str(world.flora.user_id)
    assert row["details"]["via"] == "cli"


async def test_hub_export_org_of_an_unknown_id_is_one_line(world: World, tmp_path):
    out = tmp_path / "nobody.zip"
    unknown = uuid.uuid4()

    result = await trio.to_thread.run_sync(
        hub_command, world, "export", "org", str(unknown), "--out", str(out)
    )

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"hub: organization {unknown} not found"]
    assert not out.exists()
    assert not (tmp_path / "nobody.zip.part").exists()
