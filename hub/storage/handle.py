"""The storage handle: what the rest of the hub holds to read and write.

`Storage` is a facade over three parts with a module each: the write lanes and their deadlines
(`hub.storage.lanes`), sealing and opening messages (`hub.storage.sealing`), and the engine that
reads (`hub.storage.engine`). `open_storage` opens the engine, applies migrations, loads the data
keys and starts the storage actors; leaving it closes their inboxes and waits for them to commit
what they had accepted.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

import trio

from hub.config import Settings
from hub.crypto import KeyRing, MasterKey
from hub.errors import StorageUnavailable
from hub.metrics import Metrics
from hub.storage import keys
from hub.storage.access_rows import Decide, thread_page_rows
from hub.storage.actor import AuditSpec, Authorize, Request, SendTiming, StorageStats
from hub.storage.engine import Engine
from hub.storage.lanes import Lanes, open_lanes
from hub.storage.messages import message_rows
from hub.storage.migrations import migrate
from hub.storage.opening import open_engine, unwrap_single_error
from hub.storage.records import Message, MessageDraft, StoredMessage, ThreadSnapshot
from hub.storage.sealing import Sealing
from hub.storage.sql import ConnectionLost, Op, fetchval

log = logging.getLogger(__name__)
T = TypeVar("T")


def _ping() -> Op[Any]:
    value = yield fetchval("SELECT 1")
    return value


class Storage:
    """What the hub holds to read and write: writes through the lanes, each answered once
    committed; reads on the engine's read path, which never waits for a writer; messages sealed
    on the way in and opened on the way out."""

    def __init__(
        self,
        engine: Engine,
        lanes: Lanes,
        master: MasterKey,
        timeout_s: float,
        keyring: KeyRing | None = None,
    ) -> None:
        self.engine = engine
        self.lanes = lanes
        self.sealing = Sealing(master, self, keyring)
        self._timeout_s = timeout_s
        # Channels beyond the in-app inbox that a stored message's notifications go out
        # through; the hub adds email when it has an SMTP server (hub.app).
        self.outward: tuple[str, ...] = ("webhook",)
        # Called after a commit that wrote deliveries (the dispatcher's `kick`, hub.app).
        self.outbox_written: Callable[[], None] = lambda: None

    @property
    def stats(self) -> StorageStats:
        """All lanes' counters together (`lane_stats` has them one by one)."""
        return self.lanes.stats

    @property
    def lane_stats(self) -> list[StorageStats]:
        return self.lanes.lane_stats

    @property
    def inbox_depths(self) -> list[int]:
        """Requests waiting in each lane's inbox now."""
        return self.lanes.inbox_depths

    def lane_of(self, thread_id: UUID) -> int:
        return self.lanes.lane_of(thread_id)

    async def write(
        self,
        make_op: Callable[[datetime], Op[T]],
        *,
        audit: AuditSpec = (),
        timeout_s: float | None = None,
    ) -> T:
        """Run `make_op(now)` in the next group commit; return its result once committed."""
        return await self.lanes.submit(Request(make_op=make_op, audit=audit), timeout_s)

    async def write_bulk(
        self, kind: str, item: Any, *, audit: AuditSpec = (), timeout_s: float | None = None
    ) -> Any:
        """Write an item of a bulk kind (`hub.storage.bulk.KINDS`): committed together with the
        other items of its kind that wait in the same batch."""
        return await self.lanes.submit(Request(bulk_kind=kind, item=item, audit=audit), timeout_s)

    async def append_message(
        self,
        message: MessageDraft,
        *,
        audit: AuditSpec = (),
        authorize: Authorize | None = None,
        timeout_s: float | None = None,
        timing: SendTiming | None = None,
    ) -> StoredMessage:
        """Encrypt and store a message; the answer comes only after its commit. `authorize`
        decides the sender's access in the same transaction (hub.access.decided_in_write);
        `timing` is given the commit's moment."""
        await self.sealing.ring_for(message.sender_org_id)
        sealed = self.sealing.seal(message, self.outward)
        request = Request(message=sealed, audit=audit, authorize=authorize, timing=timing)
        stored = await self.lanes.submit(request, timeout_s)
        if sealed.notifies and not stored.duplicate:
            self.outbox_written()
        return stored

    async def read(self, op: Op[T], *, timeout_s: float | None = None) -> T:
        with trio.move_on_after(timeout_s or self._timeout_s) as scope:
            try:
                return await self.engine.read(op)
            except ConnectionLost as exc:
                log.warning("storage: read failed: %s", exc)
                raise StorageUnavailable("the database is unavailable") from None
        assert scope.cancelled_caught
        raise StorageUnavailable(
            f"the database did not answer within {timeout_s or self._timeout_s}s"
        )

    async def ping(self, *, timeout_s: float | None = None) -> None:
        """Ask the database for an answer on the read path; StorageUnavailable if none comes
        within `timeout_s`."""
        await self.read(_ping(), timeout_s=timeout_s)

    async def messages(
        self,
        thread_id: UUID,
        *,
        after_seq: int | None = None,
        before_seq: int | None = None,
        limit: int = 100,
    ) -> list[Message]:
        rows = await self.read(
            message_rows(thread_id, after_seq=after_seq, before_seq=before_seq, limit=limit)
        )
        return await self.sealing.open_rows(rows)

    async def thread_snapshot(
        self,
        thread_id: UUID,
        *,
        organization_id: UUID,
        reader_id: UUID,
        decide: Decide,
        after_seq: int | None = None,
        before_seq: int | None = None,
        limit: int = 50,
    ) -> ThreadSnapshot:
        """A thread as a reader of `organization_id` opens it, in one statement: by default
        with its latest `limit` messages, `before_seq` pages back, `after_seq` forward, with
        presence and everyone's read receipts. `decide` (hub.access) is given the thread's
        access row first and raises to refuse the caller; nothing else of the row is read, and
        no message opened, before it allows it."""
        rows = await self.read(
            thread_page_rows(
                thread_id,
                organization_id,
                reader_id,
                decide,
                after_seq=after_seq,
                before_seq=before_seq,
                limit=limit,
            )
        )
        thread = rows.access.thread
        messages = await self.sealing.open_rows(rows.message_rows)
        if after_seq is not None:
            has_more = bool(messages) and messages[-1].seq < thread.last_seq
        else:
            has_more = bool(messages) and messages[0].seq > 1
        return ThreadSnapshot(
            thread=thread,
            reader=rows.reader,
            presence=[p for p in rows.presence if p.status != "offline"],
            receipts=rows.receipts,
            messages=messages,
            has_more=has_more,
        )

    async def rotate_key(self) -> int:
        """Make a new active data key (`hub keys rotate`); returns its version."""
        return await self.sealing.rotate_key()


@contextlib.asynccontextmanager
async def open_storage(
    settings: Settings, *, apply_migrations: bool = True, metrics: Metrics | None = None
) -> AsyncIterator[Storage]:
    """Engine, migrations, keys and the running storage actors, for the duration of the block;
    the actors count their batches in `metrics` (the hub's; one of their own without it)."""
    with unwrap_single_error():
        async with open_engine(settings) as engine:
            master = MasterKey(settings.encryption_key)
            try:
                if apply_migrations:
                    for migration in await migrate(engine):
                        log.info(
                            "storage: applied migration %04d_%s",
                            migration.version,
                            migration.name,
                        )
                # Unwrap existing keys before anything starts: a wrong master key stops here.
                keyring = keys.keyring_from(await engine.read(keys.encryption_keys()), master)
            except ConnectionLost as exc:
                raise StorageUnavailable(f"cannot reach the database: {exc}") from None
            async with open_lanes(engine, settings, metrics) as lanes:
                storage = Storage(engine, lanes, master, settings.storage_timeout_s, keyring)
                if keyring is None:
                    await storage.sealing.load_keys()  # a new database: make the first key
                yield storage
