"""An asyncio error no caller awaits (an abandoned asyncpg future whose connection broke) is
logged and the hub goes on; trio-asyncio's own handler would raise it into the hub's tree and
stop every node that hits it (seen under overload in the 2-node bench)."""

from __future__ import annotations

import logging

import pytest
import trio
import trio.testing
import trio_asyncio

from tests.factories import new_group, new_member
from tests.realtime.conftest import hub_for

pytestmark = pytest.mark.postgres


@pytest.fixture
def database_url(postgres_url: str) -> str:
    return postgres_url


async def test_an_orphaned_asyncpg_error_is_logged_and_the_hub_keeps_serving(settings, caplog):
    async with hub_for(settings) as hub:
        loop = trio_asyncio.current_loop.get()
        loop.call_exception_handler(
            {
                "message": "Future exception was never retrieved",
                "exception": ConnectionError("unexpected connection_lost() call"),
            }
        )
        await trio.testing.wait_all_tasks_blocked()
        alice = await new_member(hub.storage, settings, name="Alice")
        group = await new_group(hub.storage, alice)
        await hub.storage.ping(timeout_s=2.0)

    assert group.id is not None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("unexpected connection_lost() call" in r.getMessage() for r in warnings)
