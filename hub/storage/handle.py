"""The storage handle: what the rest of the hub holds to read and write.

`open_storage` opens the engine, applies migrations, loads the data keys and starts the storage
actor in a nursery it owns; leaving it closes the actor's inbox and waits for it to commit what it
had accepted. Writers never see the actor itself, only `write` and `append_message`, which wait
for the commit (with a deadline) and raise the request's own error.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import math
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

import trio

from hub.config import Settings, sqlite_path
from hub.crypto import KeyRing, MasterKey, Sealed
from hub.errors import StorageUnavailable
from hub.storage import keys
from hub.storage.actor import AuditSpec, Authorize, Request, StorageActor, StorageStats
from hub.storage.engine import Engine
from hub.storage.messages import message_rows
from hub.storage.migrations import migrate
from hub.storage.records import Message, MessageDraft, SealedMessage, StoredMessage
from hub.storage.sql import ConnectionLost, Op

log = logging.getLogger(__name__)
T = TypeVar("T")


class Deadlines:
    """Fails write requests that outlive their deadline.

    One task watching a heap replaces a cancel scope per request: with thousands of writers in
    flight, a scope each cost as much as the rest of the round trip through a null engine
    (docs/performance.md, decision register: "Group commit"). Only requests still waiting in the
    inbox are failed here: once the actor has taken a request into a batch, it answers with the
    commit's real outcome (bounded by the engine's own lock and query timeouts), so a stored
    message is never reported as not stored. The task sleeps until the earliest deadline, so an
    idle hub has no timer ticking."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Request, float]] = []
        self._counter = itertools.count()
        self._earlier = trio.Event()
        self._stopped = False

    def watch(self, request: Request, deadline: float, timeout_s: float) -> None:
        # Answered requests leave from the top as new ones arrive; deadlines are mostly FIFO.
        while self._heap and self._heap[0][2].done.is_set():
            heapq.heappop(self._heap)
        if not self._heap or deadline < self._heap[0][0]:
            self._earlier.set()
        heapq.heappush(self._heap, (deadline, next(self._counter), request, timeout_s))

    def stop(self) -> None:
        self._stopped = True
        self._earlier.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while not self._stopped:
            with trio.move_on_at(self._heap[0][0] if self._heap else math.inf):
                await self._earlier.wait()
            self._earlier = trio.Event()
            now = trio.current_time()
            while self._heap and self._heap[0][0] <= now:
                _, _, request, timeout_s = heapq.heappop(self._heap)
                if request.taken:
                    continue  # in a commit: the actor answers with what really happened
                request.fail(
                    StorageUnavailable(f"the database did not take the request within {timeout_s}s")
                )


def make_engine(settings: Settings) -> Engine:
    if settings.backend == "sqlite":
        from hub.storage.sqlite.engine import SqliteEngine

        # Leave the caller's own deadline room to see the actor's clearer "unavailable" answer.
        return SqliteEngine(
            sqlite_path(settings.database_url), busy_timeout_s=settings.storage_timeout_s * 0.8
        )
    from hub.storage.postgres.engine import PostgresEngine

    return PostgresEngine(settings.database_url, lock_timeout_s=settings.storage_timeout_s * 0.8)


class OpenedMessages:
    """Messages decrypted recently, by row id, nonce and the columns an edit or delete sets.

    Clients read the latest page of a thread over and over (every open, every reconnect), and
    opening a row (AES-GCM, then building the message) was the largest share of the hub's own
    CPU in a GET /threads/{id} of 50 messages. A row's body changes only by being sealed anew,
    with a fresh nonce, and its other columns only with edited_at or deleted_at, so a key that
    names all three never gives back a stale message. Bounded, least recently used first out.
    Plaintext kept here lives only in this process's memory, as it does while it is served.
    """

    def __init__(self, max_entries: int = 20_000) -> None:
        self._entries: OrderedDict[tuple[Any, ...], Message] = OrderedDict()
        self._max_entries = max_entries

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: tuple[Any, ...]) -> Message | None:
        message = self._entries.get(key)
        if message is not None:
            self._entries.move_to_end(key)
        return message

    def put(self, key: tuple[Any, ...], message: Message) -> None:
        self._entries[key] = message
        if len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)


class Storage:
    """What the hub holds to read and write.

    Writes go to the storage actor's lanes: each lane is one `StorageActor` with its own inbox
    and write connection. A message goes to the lane of its thread (`lane_of`), so one thread's
    appends are committed in order by one connection, while the appends of other threads commit
    at the same time on another: every append batch locks its threads' rows until COMMIT, and
    two connections sharing threads would only wait on each other. Every other write goes to
    lane 0. SQLite has one lane (one write lock per database).
    """

    def __init__(
        self,
        engine: Engine,
        inboxes: Sequence[trio.MemorySendChannel[Request]],
        actors: Sequence[StorageActor],
        master: MasterKey,
        timeout_s: float,
    ) -> None:
        self.engine = engine
        self._inboxes = list(inboxes)
        self._actors = list(actors)
        self._master = master
        self._timeout_s = timeout_s
        self._deadlines = Deadlines()
        self.keyring: KeyRing | None = None
        self._opened = OpenedMessages()

    @property
    def stats(self) -> StorageStats:
        """All lanes' counters together (`lane_stats` has them one by one)."""
        lanes = self.lane_stats
        return StorageStats(
            commits=sum(s.commits for s in lanes),
            requests_committed=sum(s.requests_committed for s in lanes),
            batches_failed=sum(s.batches_failed for s in lanes),
            reconnects=sum(s.reconnects for s in lanes),
            largest_batch=max(s.largest_batch for s in lanes),
            connected=all(s.connected for s in lanes),
        )

    @property
    def lane_stats(self) -> list[StorageStats]:
        return [actor.stats for actor in self._actors]

    def lane_of(self, thread_id: UUID) -> int:
        return thread_id.int % len(self._inboxes)

    async def write(
        self,
        make_op: Callable[[datetime], Op[T]],
        *,
        audit: AuditSpec = (),
        timeout_s: float | None = None,
    ) -> T:
        """Run `make_op(now)` in the next group commit; return its result once committed."""
        return await self._submit(Request(make_op=make_op, audit=audit), timeout_s)

    async def write_bulk(
        self, kind: str, item: Any, *, audit: AuditSpec = (), timeout_s: float | None = None
    ) -> Any:
        """Write an item of a bulk kind (`hub.storage.bulk.KINDS`): committed together with the
        other items of its kind that wait in the same batch."""
        return await self._submit(Request(bulk_kind=kind, item=item, audit=audit), timeout_s)

    async def append_message(
        self,
        message: MessageDraft,
        *,
        audit: AuditSpec = (),
        authorize: Authorize | None = None,
        timeout_s: float | None = None,
    ) -> StoredMessage:
        """Encrypt and store a message; the answer comes only after its commit. `authorize`
        decides the sender's access in the same transaction (hub.access.decided_in_write)."""
        request = Request(message=self.seal(message), audit=audit, authorize=authorize)
        return await self._submit(request, timeout_s)

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
        return await self.open_rows(rows)

    def seal(self, message: MessageDraft) -> SealedMessage:
        keyring = self.keyring
        assert keyring is not None
        sealed = keyring.seal_message(message.thread_id, message.body)
        return SealedMessage(
            thread_id=message.thread_id,
            sender_user_id=message.sender_user_id,
            sender_org_id=message.sender_org_id,
            client_msg_id=message.client_msg_id,
            kind=message.kind,
            body_ciphertext=sealed.ciphertext,
            body_nonce=sealed.nonce,
            key_version=sealed.key_version,
            reply_to=message.reply_to,
            metadata=keyring.seal_metadata(message.thread_id, message.metadata),
        )

    async def open_rows(self, rows: Sequence[dict[str, Any]]) -> list[Message]:
        """Decrypt stored message rows; a key version this process has not seen yet (rotated
        by another process) is loaded on demand. Recently opened messages are reused
        (`OpenedMessages`): the latest page of a thread is read again and again."""
        assert self.keyring is not None
        if any(not self.keyring.has_version(row["key_version"]) for row in rows):
            await self.load_keys()
        keyring, opened = self.keyring, self._opened
        messages = []
        for row in rows:
            nonce = bytes(row["body_nonce"])
            key = (row["id"], nonce, row["edited_at"], row["deleted_at"])
            message = opened.get(key)
            if message is None:
                # Built directly: both engines already return these columns as the right
                # Python types (msgspec.convert per row was measurable).
                message = Message(
                    id=row["id"],
                    thread_id=row["thread_id"],
                    seq=row["seq"],
                    sender_user_id=row["sender_user_id"],
                    sender_org_id=row["sender_org_id"],
                    kind=row["kind"],
                    body=keyring.open_message(
                        row["thread_id"],
                        Sealed(bytes(row["body_ciphertext"]), nonce, row["key_version"]),
                    ),
                    client_msg_id=row["client_msg_id"],
                    metadata=keyring.open_metadata(row["thread_id"], row["metadata"]),
                    created_at=row["created_at"],
                    reply_to=row["reply_to"],
                    edited_at=row["edited_at"],
                    deleted_at=row["deleted_at"],
                )
                opened.put(key, message)
            messages.append(message)
        return messages

    async def load_keys(self) -> KeyRing:
        ring = keys.keyring_from(await self.read(keys.encryption_keys()), self._master)
        if ring is None:
            await self.write(lambda now: keys.create_first_key(self._master, now))
            ring = keys.keyring_from(await self.read(keys.encryption_keys()), self._master)
        assert ring is not None
        self.keyring = ring
        return ring

    async def rotate_key(self) -> int:
        row = await self.write(lambda now: keys.rotate(self._master, now))
        await self.load_keys()
        return row.version

    async def _submit(self, request: Request, timeout_s: float | None) -> Any:
        message = request.message
        inbox = self._inboxes[0 if message is None else self.lane_of(message.thread_id)]
        timeout_s = timeout_s or self._timeout_s
        deadline = trio.current_time() + timeout_s
        try:
            inbox.send_nowait(request)
        except trio.WouldBlock:
            # The inbox is full: wait for room (backpressure), but not past the deadline.
            with trio.move_on_at(deadline):
                await inbox.send(request)
            if trio.current_time() >= deadline:
                raise StorageUnavailable(
                    f"storage did not accept the request within {timeout_s}s"
                ) from None
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise StorageUnavailable("storage is shutting down") from None
        self._deadlines.watch(request, deadline, timeout_s)
        await request.done.wait()
        if request.error is not None:
            raise request.error
        return request.value

    async def run_deadlines(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        await self._deadlines.run(task_status=task_status)

    async def aclose(self) -> None:
        for inbox in self._inboxes:
            await inbox.aclose()

    def stop_deadlines(self) -> None:
        self._deadlines.stop()


@contextlib.contextmanager
def _unwrap_single_error() -> Iterator[None]:
    """Raise the one error inside nested single-exception groups as itself.

    The nurseries here (and trio-asyncio's loop) are implementation details of this context
    manager; callers should see `WrongMasterKey`, not an exception group around it."""
    try:
        yield
    except BaseExceptionGroup as group:
        leaf: BaseException = group
        while isinstance(leaf, BaseExceptionGroup) and len(leaf.exceptions) == 1:
            leaf = leaf.exceptions[0]
        if isinstance(leaf, BaseExceptionGroup):
            raise
        raise leaf from group


@contextlib.asynccontextmanager
async def open_engine(settings: Settings) -> AsyncIterator[Engine]:
    """An opened engine (with the asyncio bridge PostgreSQL needs), for tools and tests that
    talk to the database without the storage actor."""
    with _unwrap_single_error():
        async with contextlib.AsyncExitStack() as stack:
            engine = make_engine(settings)
            if engine.name == "postgres":
                import trio_asyncio

                if trio_asyncio.current_loop.get() is None:
                    await stack.enter_async_context(trio_asyncio.open_loop())
            try:
                await engine.open()
            except ConnectionLost as exc:
                raise StorageUnavailable(f"cannot reach the database: {exc}") from None
            stack.push_async_callback(engine.aclose)
            yield engine


@contextlib.asynccontextmanager
async def open_storage(
    settings: Settings, *, apply_migrations: bool = True
) -> AsyncIterator[Storage]:
    """Engine, migrations, keys and the running storage actor, for the duration of the block."""
    with _unwrap_single_error():
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
            lanes = settings.storage_writers if engine.parallel_writers else 1
            channels = [
                trio.open_memory_channel[Request](settings.storage_inbox_size) for _ in range(lanes)
            ]
            actors = [
                StorageActor(
                    engine, receive, batch_max=settings.storage_batch_max, upkeep=lane == 0
                )
                for lane, (_, receive) in enumerate(channels)
            ]
            async with trio.open_nursery() as nursery:
                try:
                    for actor in actors:
                        await nursery.start(actor.run)
                except ConnectionLost as exc:
                    raise StorageUnavailable(f"cannot reach the database: {exc}") from None
                storage = Storage(
                    engine,
                    [send for send, _ in channels],
                    actors,
                    master,
                    settings.storage_timeout_s,
                )
                await nursery.start(storage.run_deadlines)
                try:
                    storage.keyring = keyring or await storage.load_keys()
                    yield storage
                finally:
                    await storage.aclose()
                    storage.stop_deadlines()
