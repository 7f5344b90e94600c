"""PostgreSQL's bulk append probes indexes whatever the planner believed when it planned.

asyncpg prepares each statement once per connection and PostgreSQL may keep a generic plan for
it. The writer connects when the tables can be empty (a new install, the bench), and a plan
chosen then lives as long as the connection. Every statement of the append must still find its
rows through an index: a sequential scan of thread_messages in one of them costs time in
proportion to every message ever stored, on every batch.
"""

from __future__ import annotations

import re

import pytest
import trio_asyncio

from hub.storage import open_storage
from hub.storage.postgres import append
from hub.storage.postgres.connection import connect
from tests.conftest import make_settings

STATEMENTS = {
    "lookup": append._LOOKUP,
    "reply targets": append._REPLY_TARGETS,
    "insert": append._INSERT,
}


async def generic_plan(conn, sql: str) -> str:
    """The plan PostgreSQL keeps for `sql` once it settles on a generic one."""
    params = max(int(n) for n in re.findall(r"\$(\d+)", sql))
    await conn.execute("DEALLOCATE ALL")
    await conn.execute(f"PREPARE write_step AS {sql}")
    rows = await conn.fetch(f"EXPLAIN EXECUTE write_step({', '.join(['NULL'] * params)})")
    return "\n".join(row[0] for row in rows)


@pytest.mark.postgres
@pytest.mark.parametrize("name", sorted(STATEMENTS))
async def test_append_statements_planned_on_empty_tables_scan_no_table(
    name, postgres_url, tmp_path
):
    async with trio_asyncio.open_loop():
        async with open_storage(make_settings(postgres_url, tmp_path / "var")):
            pass  # the schema, and nothing in it
        async with await connect(postgres_url) as conn:
            await conn.execute("SET plan_cache_mode = force_generic_plan")
            plan = await generic_plan(conn, STATEMENTS[name])

    assert "Index" in plan, plan
    assert not re.search(r"Seq Scan on (thread_messages|messaging_threads)", plan), plan
