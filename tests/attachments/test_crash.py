"""A hub killed (kill -9) in the middle of an upload: nothing of it is ever served, no row names
it, and the next start removes what the write had begun."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio_asyncio

from hub.storage import open_storage
from hub.storage.sql import fetchval
from tests.attachments.conftest import BASE, Reply, Rest
from tests.cluster.nodes import SECRETS, Node, start_node
from tests.factories import planner_and_vendor
from tests.http.wire import Connection, request
from tests.realtime.conftest import realtime_settings

pytestmark = pytest.mark.postgres


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def _count():
    value = yield fetchval("SELECT count(*) FROM message_attachments")
    return value


async def test_a_kill_mid_upload_leaves_nothing_served_and_the_restart_cleans_up(
    postgres_url, tmp_path
):
    settings = realtime_settings(postgres_url, tmp_path / "test-var", **SECRETS)
    blobs = tmp_path / "crash-node" / "var" / "blobs"
    async with trio_asyncio.open_loop(), open_storage(settings) as storage:
        planner, dj, _, thread = await planner_and_vendor(storage, settings)

        node: Node = await start_node("crash-node", postgres_url, None, tmp_path)
        try:
            connection = await Connection.open(node.rest_url)
            head = request(
                "POST",
                f"{BASE}/threads/{thread.id}/attachments?filename=playlist.txt",
                [
                    ("Authorization", f"Bearer {planner.token}"),
                    ("Content-Type", "text/plain"),
                    ("Content-Length", str(10 * 1024 * 1024)),
                ],
            )
            await connection.send(head + b"first dance: track 7\n" * 20_000)
            # Until the hub has begun writing the blob, then kill it mid-write.
            with trio.fail_after(10):
                while not _files(blobs / "tmp"):  # noqa: ASYNC110 (no event for a file)
                    await trio.sleep(0.02)
        finally:
            await trio.to_thread.run_sync(node.kill)
        await connection.aclose()
        assert _files(blobs / "tmp")  # what the killed write left
        assert await storage.read(_count()) == 0

        node = await start_node("crash-node", postgres_url, None, tmp_path)  # a restart
        try:
            assert _files(blobs) == []  # the stray removed when the store opened
            rest = Rest(node)  # type: ignore[arg-type]  (anything with a rest_url)
            ok: Reply = await rest.upload(
                dj,
                thread.id,
                b"last dance: track 12\n",
                filename="a.txt",
                content_type="text/plain",
            )
            assert ok.status == 201, ok.body
            down = await rest.call("GET", f"/attachments/{ok.json['id']}", planner)
            assert down.body == b"last dance: track 12\n"
        finally:
            await trio.to_thread.run_sync(node.stop)
        assert await storage.read(_count()) == 1
