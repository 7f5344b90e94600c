"""Versioned schema migrations, applied by `hub migrate` and at every `hub serve` start.

Files are `NNNN_name.sql` beside each engine. Each runs in its own transaction together with its
row in `schema_migrations`, so a failed migration leaves no half-applied schema, and running
migrations again (or from two processes at once) applies nothing twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from hub.storage.engine import Engine
from hub.storage.sql import Op, execute, fetchval, script

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at text NOT NULL
)
"""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations_of(engine: Engine) -> list[Migration]:
    found = []
    for path in sorted(engine.migrations_dir.glob("*.sql")):
        match = _FILE.match(path.name)
        if match is None:
            raise RuntimeError(f"migration file {path.name} is not named NNNN_name.sql")
        found.append(Migration(int(match[1]), match[2], path.read_text()))
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migration versions must be 1, 2, 3, … without gaps: {versions}")
    return found


def _apply(migration: Migration, lock_sql: str | None) -> Op[bool]:
    if lock_sql:
        yield execute(lock_sql)
    yield execute(_CREATE_TABLE)
    done = yield fetchval("SELECT 1 FROM schema_migrations WHERE version = $1", migration.version)
    if done:
        return False
    yield script(migration.sql)
    yield execute(
        "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
        migration.version,
        migration.name,
        datetime.now(UTC).isoformat(),
    )
    return True


async def migrate(engine: Engine) -> list[Migration]:
    """Apply what is missing; return the migrations this call applied."""
    applied = []
    writer = await engine.connect_writer()
    try:
        for migration in migrations_of(engine):
            if await writer.commit(lambda m=migration: _apply(m, engine.migration_lock_sql)):
                applied.append(migration)
    finally:
        await writer.aclose()
    return applied
