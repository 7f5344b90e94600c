"""How the storage actor reconnects after losing its database, driven through an engine double on
Trio's virtual clock: the outage, the backoff and the moment the database is back are exact, so
the tests run in milliseconds and do not depend on timing. (tests/storage/test_resilience.py
does the same against a real PostgreSQL.)"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import trio

from hub.errors import StorageUnavailable
from hub.storage.actor import Request, StorageActor
from hub.storage.engine import Engine, Stepper
from hub.storage.records import SealedMessage, StoredMessage
from hub.storage.sql import ConnectionLost, Op


class FlakyDatabase(Engine):
    """An engine whose database can be taken away and given back, counting connection
    attempts; committing answers every query with None."""

    name = "double"
    migrations_dir = Path("/nonexistent")

    def __init__(self) -> None:
        self.up = True
        self.attempts = 0
        self.committed: list[Any] = []
        self.connect_gate: trio.Event | None = None  # when set, a connect waits for it
        self.connecting = trio.Event()  # set when a connect starts waiting for the gate

    async def open(self) -> None:
        return None

    async def aclose(self) -> None:
        return None

    async def connect_writer(self) -> _Writer:
        self.attempts += 1
        if self.connect_gate is not None:
            self.connecting.set()
            await self.connect_gate.wait()
        else:
            await trio.lowlevel.checkpoint()
        if not self.up:
            raise ConnectionLost("double: the database is down")
        return _Writer(self)

    async def read(self, op: Op[Any]) -> Any:
        raise NotImplementedError

    def append_messages(
        self, messages: Sequence[SealedMessage], now: datetime
    ) -> Op[list[StoredMessage | Exception]]:
        raise NotImplementedError


class _Writer:
    def __init__(self, database: FlakyDatabase) -> None:
        self._database = database

    async def commit(self, make_op: Callable[[], Op[Any]]) -> Any:
        await trio.lowlevel.checkpoint()
        if not self._database.up:
            raise ConnectionLost("double: the connection is gone")
        stepper = Stepper(make_op())
        query = stepper.advance()
        while query is not None:
            query = stepper.advance(None)
        self._database.committed.extend(stepper.result)
        return stepper.result

    async def aclose(self) -> None:
        return None


def write(label: str) -> Request:
    def op(now: datetime) -> Op[str]:
        return label
        yield  # an operation with no query

    return Request(make_op=op)


async def answer(request: Request) -> Any:
    """What the caller gets: the value, or the error it would raise."""
    with trio.fail_after(3600):  # virtual time: only a hang could reach it
        await request.done.wait()
    return request.error if request.error is not None else request.value


@pytest.fixture
async def running(nursery) -> tuple[FlakyDatabase, trio.MemorySendChannel[Request]]:
    database = FlakyDatabase()
    send, receive = trio.open_memory_channel[Request](10_000)
    actor = StorageActor(database, receive, upkeep=False, retry_interval_s=0.1)
    await nursery.start(actor.run)
    return database, send


async def start_outage(database: FlakyDatabase, send: trio.MemorySendChannel[Request]) -> None:
    """The database goes away; a write finds out and the actor starts reconnecting."""
    database.up = False
    failed = write("lost")
    await send.send(failed)
    assert isinstance(await answer(failed), StorageUnavailable)


async def test_a_write_after_the_database_is_back_is_stored_without_waiting_out_the_backoff(
    autojump_clock, running
):
    database, send = running
    await start_outage(database, send)
    await trio.sleep(60)  # long enough for the backoff to reach its 5 s cap
    attempts_during_outage = database.attempts

    database.up = True
    request = write("first after the outage")
    await send.send(request)

    assert await answer(request) == "first after the outage"
    assert database.committed == ["first after the outage"]
    # It was the request's own attempt, not the backoff's next one, that reconnected.
    assert database.attempts == attempts_during_outage + 1


async def test_writes_during_an_outage_are_refused_and_make_one_attempt_per_retry_interval(
    autojump_clock, running
):
    database, send = running
    await start_outage(database, send)
    await trio.sleep(60)
    attempts_before, started = database.attempts, trio.current_time()
    requests = []

    # One write every millisecond for a second, then a burst of a thousand at once.
    for i in range(1000):
        requests.append(write(f"trickle {i}"))
        await send.send(requests[-1])
        await trio.sleep(0.001)
    for i in range(1000):
        requests.append(write(f"burst {i}"))
        send.send_nowait(requests[-1])
    answers = [await answer(r) for r in requests]

    elapsed = trio.current_time() - started

    assert all(isinstance(a, StorageUnavailable) for a in answers)
    assert database.committed == []
    # At most one attempt per retry interval (0.1 s) while requests kept coming, and the burst
    # of a thousand (one batch) rides on one or two.
    assert database.attempts - attempts_before <= elapsed / 0.1 + 2


async def test_a_write_answered_by_its_deadline_during_a_slow_reconnect_is_not_stored(
    autojump_clock, running
):
    """A request the actor holds for a reconnect is not yet in a commit, so its caller's deadline
    may answer it; the reconnect that then succeeds must not store it behind the caller's back."""
    database, send = running
    await start_outage(database, send)
    await trio.sleep(60)
    database.up, database.connect_gate = True, trio.Event()
    given_up = write("given up on")
    await send.send(given_up)
    await database.connecting.wait()  # the actor holds the request and is connecting
    assert not given_up.taken
    given_up.fail(StorageUnavailable("the database did not take the request within 3s"))

    database.connect_gate.set()
    database.connect_gate = None
    after = write("after")
    await send.send(after)

    assert await answer(after) == "after"
    assert database.committed == ["after"]
