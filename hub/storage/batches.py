"""How one request in a group-commit batch fails alone: the storage actor runs each request, and
each item of a bulk write's fallback, inside a savepoint of the batch's transaction."""

from __future__ import annotations

from typing import Any

from hub.errors import HubError
from hub.storage.sql import Op, StatementError, execute


def isolated(op: Op[Any]) -> Op[Any]:
    """Run `op` inside a savepoint: its failure is returned (not raised) and undone, so one bad
    request in a group-commit batch fails alone instead of taking the batch down with it. Any
    statement the database refused counts, not only a broken constraint."""
    yield execute("SAVEPOINT request")
    try:
        value = yield from op
    except (HubError, StatementError) as exc:
        yield execute("ROLLBACK TO SAVEPOINT request")
        value = exc
    yield execute("RELEASE SAVEPOINT request")
    return value
