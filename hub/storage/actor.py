"""The storage actor: one task per write connection (a lane), committing in groups.

Callers hand it requests over a bounded channel (a full inbox makes them wait: backpressure, not
memory growth). It takes whatever is waiting, up to a batch limit, runs it all in one transaction
and answers every caller only after COMMIT returned, so an acknowledgement means durable. One
commit pays for 1 message or 1,000. A request that fails on its own (a constraint, a missing
thread, any value the database refuses) is undone in its savepoint and fails alone; a refusal
outside every savepoint undoes the batch, whose requests then commit one by one, so it still
reaches only the request at fault. A database failure fails the batch, and the actor reconnects
with backoff while refusing new requests instead of letting them hang; a request arriving
meanwhile makes it try again at once (at most every `retry_interval_s`), so writes succeed as
soon as the database is back rather than after the backoff.
On PostgreSQL several lanes run side by side (`hub.storage.lanes.Lanes` routes a message to its
thread's lane); each `StorageActor` here is one lane and knows nothing of the others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import trio
from msgspec.structs import replace

from hub.errors import Conflict, HubError, Invalid, StorageUnavailable
from hub.metrics import Metrics
from hub.storage.audit import insert_audit
from hub.storage.batches import isolated
from hub.storage.bulk import run_kind
from hub.storage.engine import Engine, Writer
from hub.storage.records import AuditEntry, SealedMessage
from hub.storage.sql import ConnectionLost, IntegrityError, Op, StatementError

log = logging.getLogger(__name__)

AuditSpec = Sequence[AuditEntry] | Callable[[Any], Sequence[AuditEntry]]
# An access decision a message write carries into its transaction (hub.access.decided_in_write):
# given the access rows its run has fetched so far, it returns the group the write belongs to
# or raises the HubError that refuses it.
Authorize = Callable[[dict[Any, Any]], Op[UUID]]


@dataclass(eq=False, slots=True)
class SendTiming:
    """When a message send reached the hub and when it was committed (Trio clock), for the
    send→commit and commit→deliver latencies (hub.metrics). The door that received the send
    makes it; the storage actor sets `committed_at`; the thread actor reads it after fan-out."""

    received_at: float
    committed_at: float | None = None


@dataclass(eq=False, slots=True)
class Request:
    """One caller's write: either an operation or a message to append, plus its audit rows."""

    make_op: Callable[[datetime], Op[Any]] | None = None
    message: SealedMessage | None = None
    # Or an item of a kind the actor runs many at a time (see hub.storage.bulk).
    bulk_kind: str | None = None
    item: Any = None
    audit: AuditSpec = ()
    # For a message: decided in the write transaction, before it; a refusal fails the request
    # alone and writes nothing of it. Audit rows naming no group get the group it returns.
    authorize: Authorize | None = None
    group_id: UUID | None = None
    timing: SendTiming | None = None
    done: trio.Event = field(default_factory=trio.Event)
    # Set when the actor takes the request into a batch: from then on the actor answers it with
    # the commit's outcome (its queries have their own timeouts), not the caller's deadline.
    taken: bool = False
    # How long its caller waits for it to be taken (`hub.storage.lanes`), for the refusal's text.
    timeout_s: float = 0.0
    value: Any = None
    error: BaseException | None = None

    def resolve(self, value: Any) -> None:
        if self.done.is_set():
            return  # already failed by its deadline; the caller has moved on
        if isinstance(value, (HubError, StatementError)):
            self.error = value if isinstance(value, HubError) else _refusal(value)
        else:
            self.value = value
        self.done.set()

    def fail(self, error: BaseException) -> None:
        if self.done.is_set():
            return
        self.error = error
        self.done.set()


@dataclass(slots=True)
class StorageStats:
    """Counters the tests and the bench read to see what the actor really did."""

    commits: int = 0
    requests_committed: int = 0
    batches_failed: int = 0
    reconnects: int = 0
    largest_batch: int = 0
    connected: bool = False


class StorageActor:
    def __init__(
        self,
        engine: Engine,
        inbox: trio.MemoryReceiveChannel[Request],
        *,
        batch_max: int = 1000,
        flush_timeout_s: float = 10.0,
        backoff_max_s: float = 5.0,
        retry_interval_s: float = 0.1,
        upkeep: bool = True,
        metrics: Metrics | None = None,
    ) -> None:
        self._engine = engine
        self._metrics = metrics if metrics is not None else Metrics()
        self._upkeep = upkeep
        self._inbox = inbox
        self._batch_max = batch_max
        self._flush_timeout_s = flush_timeout_s
        self._backoff_max_s = backoff_max_s
        self._retry_interval_s = retry_interval_s
        self._writer: Writer | None = None
        # Requests that arrived while disconnected and made the reconnect that succeeded: they
        # open the next batch.
        self._held: list[Request] = []
        self.stats = StorageStats()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Connect (failing startup if the database is unreachable), then commit until the inbox
        closes. If cancelled, it still commits what it had accepted, within a deadline."""
        self._writer = await self._engine.connect_writer()
        self.stats.connected = True
        task_status.started()
        async with trio.open_nursery() as upkeep:
            # The engine's upkeep (SQLite's checkpoints) lives exactly as long as the commits,
            # run by one actor of the engine only.
            if self._upkeep:
                upkeep.start_soon(self._engine.maintain)
            try:
                await self._commit_until_closed()
            finally:
                upkeep.cancel_scope.cancel()

    async def _commit_until_closed(self) -> None:
        try:
            async with self._inbox:
                while True:
                    batch = await self._next_batch()
                    if not batch:
                        break
                    await self._commit(batch)
        except trio.Cancelled:
            with trio.CancelScope(shield=True) as scope:
                scope.deadline = trio.current_time() + self._flush_timeout_s
                await self._flush_remaining()
            raise
        finally:
            with trio.CancelScope(shield=True) as scope:
                scope.deadline = trio.current_time() + 2
                if self._writer is not None:
                    await self._writer.aclose()

    async def _next_batch(self) -> list[Request]:
        # A request may have been failed by its deadline while it waited (held through a
        # reconnect, or in the inbox): its caller was told it was not stored, so it never is.
        batch = [r for r in self._held if not r.done.is_set()]
        self._held = []
        while not batch:
            try:
                first = await self._inbox.receive()
            except trio.EndOfChannel:
                return []
            if not first.done.is_set():
                batch.append(first)
        self._take_waiting(batch, (trio.WouldBlock, trio.EndOfChannel))
        for request in batch:
            request.taken = True
        self._engine.batch_taken(len(batch))
        return batch

    def _take_waiting(self, batch: list[Request], empty: tuple[type[Exception], ...]) -> None:
        """Add what waits in the inbox to `batch`, up to the batch size, leaving out requests
        already failed by their deadline."""
        while len(batch) < self._batch_max:
            try:
                request = self._inbox.receive_nowait()
            except empty:
                return
            if not request.done.is_set():
                batch.append(request)

    async def _flush_remaining(self) -> None:
        while True:
            batch = [r for r in self._held if not r.done.is_set()]
            self._held = []
            self._take_waiting(
                batch, (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError)
            )
            if not batch:
                return
            for request in batch:
                request.taken = True
            await self._commit(batch)

    async def _commit(self, batch: list[Request]) -> None:
        if self._writer is None:
            await self._reconnect(batch)
            return
        now = datetime.now(UTC)
        started = trio.current_time()
        try:
            # Shielded: a transaction is never abandoned half-way; each query has its own
            # timeout in the engine, so this cannot hang forever.
            with trio.CancelScope(shield=True):
                outcomes = await self._writer.commit(lambda: _batch_op(self._engine, batch, now))
        except StatementError as exc:
            # A refusal that no request's savepoint caught (an access decision, the batch's
            # audit rows): the transaction is undone and the connection is fine. Each request
            # runs again in a transaction of its own, so only the one at fault fails.
            self.stats.batches_failed += 1
            if len(batch) == 1:
                batch[0].fail(_refusal(exc))
                return
            log.warning(
                "storage: a batch of %d was refused (%s); committing its requests one by one",
                len(batch),
                exc,
            )
            for request in batch:
                await self._commit([request])
            return
        except ConnectionLost as exc:
            self.stats.batches_failed += 1
            log.warning("storage: database unavailable, %d requests refused: %s", len(batch), exc)
            await self._drop_writer()
            error = StorageUnavailable("the database is unavailable; nothing was stored")
            for request in batch:
                request.fail(error)
            await self._reconnect([])
            return
        except Exception:
            self.stats.batches_failed += 1
            log.exception("storage: a batch of %d requests failed", len(batch))
            for request in batch:
                request.fail(HubError("internal storage error"))
            # The connection may be what broke (a driver in a state it cannot leave): never
            # keep committing through it. A fresh one costs little and is always safe.
            await self._drop_writer()
            await self._reconnect([])
            return
        committed_at = trio.current_time()
        self.stats.commits += 1
        self.stats.requests_committed += len(batch)
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        metrics = self._metrics
        stored = 0
        for request, outcome in zip(batch, outcomes, strict=True):
            request.resolve(outcome)
            if request.message is not None and request.error is None:
                if not request.value.duplicate:
                    stored += 1
                timing = request.timing
                if timing is not None:
                    timing.committed_at = committed_at
                    metrics.send_to_commit.observe(committed_at - timing.received_at)
        # Once per batch, not per request: a batch may hold a thousand.
        metrics.storage_batch_size.observe(len(batch))
        metrics.storage_commit.observe(committed_at - started)
        if stored:
            metrics.messages_stored.inc(stored)

    async def _drop_writer(self) -> None:
        writer, self._writer = self._writer, None
        self.stats.connected = False
        if writer is not None:
            with trio.CancelScope(shield=True) as scope:
                scope.deadline = trio.current_time() + 1
                await writer.aclose()

    async def _reconnect(self, waiting: list[Request]) -> None:
        """Reconnect, refusing requests while the database cannot be reached.

        Idle, attempts back off exponentially (50 ms up to `backoff_max_s`). A request that
        arrives makes an attempt of its own, no sooner than `retry_interval_s` after the last
        one, and is stored if it succeeds: without it, sends went on failing for up to the
        backoff after the database was back. Attempts run one at a time in this task, so a
        flood of requests during an outage costs the database at most one connection attempt
        per retry interval; requests arriving while one runs wait in the inbox (backpressure).
        """
        error = StorageUnavailable("the database is unavailable; reconnecting")
        for request in waiting:
            request.fail(error)
        delay = 0.05
        held: list[Request] = []
        try:
            while True:
                attempted_at = trio.current_time()
                if await self._connect(on_demand=bool(held), next_try_s=delay):
                    self._held, held = held, []
                    return
                for request in held:
                    request.fail(error)
                held = []
                with trio.move_on_at(attempted_at + delay):
                    try:
                        held.append(await self._inbox.receive())
                    except trio.EndOfChannel:
                        return  # the inbox closed: shutting down, nothing to reconnect for
                if held:
                    # Not before the retry interval is over; whoever arrives by then rides
                    # along, up to a batch.
                    with trio.move_on_at(attempted_at + self._retry_interval_s):
                        while len(held) < self._batch_max:
                            try:
                                held.append(await self._inbox.receive())
                            except trio.EndOfChannel:
                                break  # try once more for the ones held, then stop
                delay = min(delay * 2, self._backoff_max_s)
        finally:
            for request in held:  # cancelled, or the inbox closed, while holding them
                request.fail(error)

    async def _connect(self, *, on_demand: bool, next_try_s: float) -> bool:
        try:
            self._writer = await self._engine.connect_writer()
        except ConnectionLost as exc:
            # A request-made attempt fails as often as requests come; the backoff's say so.
            log.log(
                logging.DEBUG if on_demand else logging.WARNING,
                "storage: reconnect failed, next try in %.2fs or at the next request: %s",
                next_try_s,
                exc,
            )
            return False
        self.stats.connected = True
        self.stats.reconnects += 1
        log.info("storage: reconnected to the database")
        return True


def _batch_op(engine: Engine, batch: list[Request], now: datetime) -> Op[list[Any]]:
    """The whole batch as one operation: requests in arrival order, runs of consecutive message
    appends handed to the engine's bulk path (and runs of other bulk kinds to theirs), each
    other request in its own savepoint, and the
    audit rows of every request that succeeded written last, in the same transaction."""
    outcomes: list[Any] = []
    index = 0
    while index < len(batch):
        request = batch[index]
        kind = _kind(request)
        if kind is not None:
            end = index
            while end < len(batch) and _kind(batch[end]) == kind:
                end += 1
            run = batch[index:end]
            if kind == "message":
                outcomes.extend((yield from _append_run(engine, run, now)))
            else:
                outcomes.extend((yield from run_kind(kind, [r.item for r in run], now)))
            index = end
        else:
            assert request.make_op is not None
            outcomes.append((yield from isolated(request.make_op(now))))
            index += 1
    audit: list[AuditEntry] = []
    for request, outcome in zip(batch, outcomes, strict=True):
        if request.audit and not isinstance(outcome, Exception):
            entries = request.audit(outcome) if callable(request.audit) else request.audit
            if request.group_id is not None:
                entries = [
                    e if e.group_id is not None else replace(e, group_id=request.group_id)
                    for e in entries
                ]
            audit.extend(entries)
    if audit:
        yield from insert_audit(audit, now)
    return outcomes


def _append_run(engine: Engine, run: list[Request], now: datetime) -> Op[list[Any]]:
    """A run of consecutive message appends: each one's access decision first (the run's
    access rows fetched once per thread and organization), then the allowed ones in one bulk
    append; a refused message's outcome is its refusal."""
    rows: dict[Any, Any] = {}
    refusals: list[HubError | None] = []
    for request in run:
        refusal = None
        if request.authorize is not None:
            try:
                request.group_id = yield from request.authorize(rows)
            except HubError as error:
                refusal = error
        refusals.append(refusal)
    allowed = [r.message for r, refusal in zip(run, refusals, strict=True) if refusal is None]
    stored = iter((yield from engine.append_messages(allowed, now)) if allowed else [])
    return [refusal if refusal is not None else next(stored) for refusal in refusals]


def _kind(request: Request) -> str | None:
    return "message" if request.message is not None else request.bulk_kind


def _refusal(error: StatementError) -> HubError:
    """What the caller of a request the database refused hears."""
    if isinstance(error, IntegrityError):
        if error.kind == "unique":
            return Conflict("that already exists")
        if error.kind == "foreign_key":
            return Invalid("a referenced record does not exist")
        return Invalid("a value was refused by a database constraint")
    log.warning("storage: the database refused a request: %s", error)
    if error.bad_input:
        return Invalid("a value of this request cannot be stored")
    return HubError("internal storage error")
