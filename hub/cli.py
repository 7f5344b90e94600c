"""The `hub` command: serve, token, migrate, keys rotate, notifications, retention, export, erase.

Startup problems (a bad setting, an unreachable database, a wrong master key) end the command
with one line that says what to fix and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import logging.handlers
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

import trio

from hub.config import Settings, load_settings, redact_url
from hub.errors import ConfigError, HubError

log = logging.getLogger("hub")

_SERVE_FLAGS = {
    "--database-url": "HUB_DATABASE_URL",
    "--http-host": "HUB_HTTP_HOST",
    "--http-port": "HUB_HTTP_PORT",
    "--ws-host": "HUB_WS_HOST",
    "--ws-port": "HUB_WS_PORT",
    "--env": "HUB_ENV",
    "--log-level": "HUB_LOG_LEVEL",
    "--node-id": "HUB_NODE_ID",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hub",
        description="Vendor Connections Hub: realtime coordination server for wedding vendors.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run the hub (REST and WebSocket) until SIGINT/SIGTERM",
        description="Apply migrations, then serve REST and WebSocket until SIGINT or SIGTERM. "
        "Every flag overrides the environment variable of the same name.",
    )
    for flag, variable in _SERVE_FLAGS.items():
        serve.add_argument(flag, dest=variable, metavar="VALUE", help=f"overrides {variable}")

    token = commands.add_parser(
        "token",
        help="print a signed development token",
        description="Print a JWT signed with HUB_JWT_SECRET, for development, tests and benches. "
        "Not with HUB_JWT_PUBLIC_KEY: then tokens come from your identity provider.",
    )
    token.add_argument("--user", type=uuid.UUID, required=True, help="user id (UUID), the sub")
    token.add_argument("--org", type=uuid.UUID, required=True, help="organization id (UUID)")
    token.add_argument(
        "--role", required=True, choices=["owner", "admin", "manager", "vendor"], help="role"
    )
    token.add_argument("--name", help="display name")
    token.add_argument("--email", help="e-mail address (where notification e-mail goes)")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (3600)")

    migrate = commands.add_parser(
        "migrate",
        help="apply database migrations",
        description="Apply the schema migrations HUB_DATABASE_URL is missing, then exit.",
    )
    migrate.add_argument("--database-url", dest="HUB_DATABASE_URL", metavar="VALUE")

    keys = commands.add_parser(
        "keys", help="manage encryption keys", description="Manage message encryption keys."
    )
    key_commands = keys.add_subparsers(dest="key_command", required=True, metavar="ACTION")
    rotate = key_commands.add_parser(
        "rotate",
        help="make a new active data key; older messages stay readable",
        description="Create a new data key, wrapped by HUB_ENCRYPTION_KEY, and make it the "
        "active one. Older keys are retired but kept, so every message still decrypts.",
    )
    rotate.add_argument("--database-url", dest="HUB_DATABASE_URL", metavar="VALUE")
    reseal = key_commands.add_parser(
        "reseal",
        help="seal rows from before per-organization keys under their organization's key",
        description="Messages, files, file names and webhook secrets written before "
        "per-organization data keys (migration 0009) are under the hub-wide key, which "
        "erasing an organization does not destroy. This seals them again under their "
        "organization's own key, in batches; safe to stop and run again.",
    )
    reseal.add_argument("--database-url", dest="HUB_DATABASE_URL", metavar="VALUE")

    notifications = commands.add_parser(
        "notifications",
        help="the notification outbox",
        description="Look after the notification outbox (docs/notifications.md).",
    )
    note_commands = notifications.add_subparsers(
        dest="notification_command", required=True, metavar="ACTION"
    )
    dead = note_commands.add_parser(
        "dead-letter",
        help="deliveries that kept failing: list them, or retry them",
        description="Deliveries the dispatcher gave up on (after their attempts, or at once "
        "for a failure no retry can mend). `list` shows them; `retry` makes them pending "
        "again, due now, with their attempts counted afresh: a running hub delivers them.",
    )
    dead.add_argument("action", choices=["list", "retry"])
    dead.add_argument("ids", nargs="*", type=int, metavar="ID", help="retry only these")
    dead.add_argument("--all", action="store_true", help="retry every dead delivery")
    dead.add_argument("--limit", type=int, default=100, help="how many to list (100)")
    dead.add_argument("--database-url", dest="HUB_DATABASE_URL", metavar="VALUE")

    retention = commands.add_parser(
        "retention",
        help="archive and purge what the weddings' retention says is due",
        description="Retention anchored to the wedding (docs/privacy.md): a running hub does "
        "this every HUB_RETENTION_INTERVAL_S.",
    )
    retention_commands = retention.add_subparsers(
        dest="retention_command", required=True, metavar="ACTION"
    )
    run_pass = retention_commands.add_parser(
        "run",
        help="one pass now: archive and purge the groups due, delete old audit rows",
        description="Archive the groups past their archive days, purge the messages and files "
        "of those past their retention (not under a legal hold), delete audit rows older than "
        "HUB_AUDIT_RETENTION_DAYS, and print what was done.",
    )
    run_pass.add_argument("--database-url", dest="HUB_DATABASE_URL", metavar="VALUE")
    export = commands.add_parser(
        "export",
        help="write everything the hub holds about a user or an organization to a zip",
        description="Write the archive GET /me/export (user) or /me/organization/export (org) "
        "would give, for an operator answering a request made by mail (GDPR articles 15 and "
        "20; docs/export.md). The export is audited (privacy.export). Reads HUB_BLOB_URL for "
        "the attachments.",
    )
    export.add_argument("kind", choices=["user", "org"], help="whose data")
    export.add_argument("id", type=uuid.UUID, metavar="ID", help="the user's or organization's id")
    export.add_argument("--out", required=True, metavar="FILE", help="where to write the zip")
    export.add_argument("--database-url", dest="HUB_DATABASE_URL", metavar="VALUE")
    erase = commands.add_parser(
        "erase",
        help="erase a user or an organization (irreversible; docs/privacy.md)",
        description="Erase, for an operator answering a request made by mail (GDPR article 17). "
        "Audited; cannot be undone; reads HUB_BLOB_URL for the files.",
    )
    erase_commands = erase.add_subparsers(dest="erase_command", required=True, metavar="WHAT")
    erase_user = erase_commands.add_parser(
        "user",
        help="a user: their messages, files and traces go, their profile is pseudonymised",
        description='Erase a user as POST /me/erase would (docs/privacy.md, "Erasing a '
        'user"). Their messages become tombstones, others\' stay with the sender "Erased '
        'user"; their tokens are refused from then on. Audited (privacy.erase_user, via cli). '
        "Sockets open on a running hub learn of the deletions when they rejoin (since_change).",
    )
    erase_user.add_argument("id", type=uuid.UUID, metavar="ID", help="the user's id")
    erase_user.add_argument("--database-url", dest="HUB_DATABASE_URL", metavar="VALUE")
    erase_org = erase_commands.add_parser(
        "org",
        help="an organization: destroy its data keys, so all it wrote is unreadable everywhere",
        description="Erase what an organization wrote, everywhere, in one step: its data keys "
        "are destroyed, so its messages, their metadata and its files no longer open in this "
        "database, its replicas or its backups; its files are deleted, its webhooks ended, its "
        "name and its users' names pseudonymised, its tokens refused (docs/privacy.md). "
        "Audited (privacy.erase_organization). Running nodes forget the keys within "
        "HUB_KEY_CHECK_S.",
    )
    erase_org.add_argument("id", type=uuid.UUID, metavar="ID", help="the organization's id")
    erase_org.add_argument(
        "--yes", action="store_true", help="confirm: this cannot be undone (required)"
    )
    erase_org.add_argument("--database-url", dest="HUB_DATABASE_URL", metavar="VALUE")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = {
        key: value for key, value in vars(args).items() if key.startswith("HUB_") and value
    }
    try:
        with _held_log_records() as held:
            settings = load_settings(overrides=overrides)
        _configure_logging(settings, held)
        handler: Callable[[Settings, argparse.Namespace], Any] = {
            "serve": _serve,
            "token": _token,
            "migrate": _migrate,
            "keys": _rotate,
            "notifications": _dead_letters,
            "retention": _retention,
            "export": _export,
            "erase": _erase,
        }[args.command]
        return handler(settings, args) or 0
    except (ConfigError, HubError, BaseExceptionGroup) as exc:
        reason = _startup_problem(exc)
        if reason is None:
            raise
        print(f"hub: {reason}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _startup_problem(exc: BaseException) -> str | None:
    """The one line to show for a problem the operator can fix; None for a bug (re-raised).

    Trio nurseries wrap errors in exception groups; the cause is the single leaf inside."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    if isinstance(exc, ConfigError):
        return str(exc)
    if isinstance(exc, HubError):
        return exc.message
    return None


LOG_FORMAT = "%(asctime)s %(levelname)s node=%(node)s %(name)s: %(message)s"


class NodeFilter(logging.Filter):
    """Gives every record the node it comes from (`%(node)s`), so the lines of several hub
    processes gathered in one place still say which one wrote each."""

    def __init__(self, node_id: str) -> None:
        super().__init__()
        self.node_id = node_id

    def filter(self, record: logging.LogRecord) -> bool:
        record.node = self.node_id
        return True


@contextlib.contextmanager
def _held_log_records() -> Iterator[logging.handlers.MemoryHandler]:
    """Hold what is logged while the settings load (a generated development secret is
    announced then), until logging knows the node to name in each line. If the settings fail,
    the held lines go out as they are: there is no node to name."""
    held = logging.handlers.MemoryHandler(capacity=1000, flushLevel=logging.CRITICAL + 1)
    root = logging.getLogger()
    root.addHandler(held)
    try:
        yield held
    except BaseException:
        held.setTarget(logging.StreamHandler(sys.stderr))
        held.close()  # flushes
        raise
    finally:
        root.removeHandler(held)


def _configure_logging(settings: Settings, held: logging.handlers.MemoryHandler) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    # On the handler, not a logger: a handler's filters see every record it writes, those of
    # hub's loggers and the libraries' (Hypercorn, trio-websocket) alike.
    handler.addFilter(NodeFilter(settings.node_id))
    logging.basicConfig(level=settings.log_level, handlers=[handler])
    if handler in logging.getLogger().handlers:
        # Not when logging was set up before (an embedding program's handlers already wrote
        # the held lines as they came).
        held.setTarget(handler)
    held.close()  # flushes what was held, through the handler that names the node


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from hub.app import run_hub

    async def main() -> None:
        shutdown = trio.Event()
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as outer:

                async def watch_signals() -> None:
                    # The first signal asks for a graceful stop; a second one forces it.
                    async for signum in signals:
                        if shutdown.is_set():
                            log.warning("hub: second signal, stopping now")
                            outer.cancel_scope.cancel()
                            return
                        log.info("hub: %s received, shutting down", signal.Signals(signum).name)
                        shutdown.set()

                outer.start_soon(watch_signals)
                async with trio.open_nursery() as inner:
                    running = await inner.start(run_hub, settings, shutdown)
                    # What exists now (modules, app, pools) lives as long as the process.
                    gc.freeze()
                    _print_banner(settings, running)
                outer.cancel_scope.cancel()

    tune_runtime()
    trio.run(main)
    return 0


def tune_runtime() -> None:
    """Two interpreter settings the hub runs with (and the benches that measure its parts).

    Cycles are collected far less often than Python's defaults (700, 10, 10). Every socket holds
    a few hundred long-lived objects, and nearly all garbage the hub makes is freed by reference
    counting. With the defaults the collector kept walking the live sockets, stalling every
    socket while it did. Cycles (exception tracebacks, mostly) are still collected, only in
    larger steps.

    A thread waiting for the GIL gets it after 0.1 ms instead of 5 ms. SQLite's writer runs in a
    worker thread (so do reads that outgrow their inline budget, hub.storage.sqlite.reads), and
    CPython's sqlite3 lets go of the GIL around every statement step; each time, the thread that
    wants it next (a reader, the writer, or the Trio thread back from a socket call) waits until
    the holder lets go or the interval runs out, so a shorter interval leaves the Trio thread
    less time idle waiting for the GIL. Without worker threads (PostgreSQL) nothing waits for
    the GIL and the setting does nothing.

    Figures: docs/performance.md, decision register: "Collector and switch interval".
    """
    gc.set_threshold(50_000, 20, 100)
    sys.setswitchinterval(0.0001)


def _describe_broker(settings: Settings) -> str:
    if settings.redis_url is None:
        return "memory (this process alone; set HUB_REDIS_URL to run several nodes)"
    return f"redis ({redact_url(settings.redis_url)}, prefix {settings.redis_prefix!r})"


def _print_banner(settings: Settings, running: Any) -> None:
    from hub.auth import issue_token

    lines = [
        "Vendor Connections Hub is running",
        f"  node:      {settings.node_id}",
        f"  database:  {settings.backend} ({_describe_database(settings)})",
        f"  broker:    {_describe_broker(settings)}",
        f"  REST:      {running.rest_url}",
        f"  WebSocket: {running.ws_url}",
        f"  web app:   {_app_url(running)}",
    ]
    if settings.jwt_public_key_file is not None:
        # The hub holds only the identity provider's public key: it cannot mint a token.
        lines.append(
            f"  tokens:    from your identity provider (HUB_JWT_PUBLIC_KEY="
            f"{settings.jwt_public_key_file}); no development token"
        )
    elif not settings.production:
        user, org = (
            uuid.uuid5(uuid.NAMESPACE_URL, "dev-user"),
            uuid.uuid5(uuid.NAMESPACE_URL, "dev-org"),
        )
        token = issue_token(
            settings, user_id=user, org_id=org, role="owner", name="Dev Planner", ttl_s=86400
        )
        lines += [
            f"  open:      {_app_url(running)}#token={token}",
            "             (the web client, signed in as the development user below)",
            f"  token:     {token}",
            f"             (development only: user {user}, org {org}, role owner, valid 24 h)",
            f'  try:       curl -H "Authorization: Bearer $TOKEN" {running.rest_url}/groups',
        ]
    print("\n".join(lines), flush=True)


def _app_url(running: Any) -> str:
    """The web client's page: the root of the HTTP port the REST API is under."""
    from hub.http.app import BASE_PATH

    return running.rest_url.removesuffix(BASE_PATH) + "/"


def _describe_database(settings: Settings) -> str:
    if settings.backend == "sqlite":
        from hub.config import sqlite_path

        return str(sqlite_path(settings.database_url))
    from urllib.parse import urlsplit

    parts = urlsplit(settings.database_url)
    return f"{parts.hostname}:{parts.port or 5432}{parts.path}"


def _token(settings: Settings, args: argparse.Namespace) -> int:
    from hub.auth import issue_token

    if args.ttl <= 0:
        raise ConfigError("--ttl must be a positive number of seconds")
    print(
        issue_token(
            settings,
            user_id=args.user,
            org_id=args.org,
            role=args.role,
            name=args.name,
            ttl_s=args.ttl,
            email=args.email,
        )
    )
    return 0


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    from hub.storage import open_engine
    from hub.storage.migrations import migrate

    async def main() -> list[Any]:
        async with open_engine(settings) as engine:
            return await migrate(engine)

    applied = trio.run(main)
    if applied:
        for migration in applied:
            print(f"applied {migration.version:04d}_{migration.name}")
    else:
        print("schema is up to date")
    return 0


def _dead_letters(settings: Settings, args: argparse.Namespace) -> int:
    from hub.storage import open_storage
    from hub.storage.outbox import dead_letters, retry_dead

    if args.action == "retry" and not (args.ids or args.all):
        raise ConfigError("retry needs the ids of the deliveries to retry, or --all")
    if args.action == "list" and (args.ids or args.all):
        raise ConfigError("list takes no ids (and no --all)")

    async def main() -> list[dict[str, Any]] | int:
        async with open_storage(settings) as storage:
            if args.action == "list":
                return await storage.read(dead_letters(args.limit))
            ids = None if args.all else args.ids
            return await storage.write(lambda now: retry_dead(ids, now))

    outcome = trio.run(main)
    if isinstance(outcome, int):
        print(f"{outcome} dead deliveries are pending again")
        return 0
    if not outcome:
        print("no dead deliveries")
    for row in outcome:
        print(
            f"{row['id']}\t{row['channel']}\t{row['event']}\t{row['attempts']} attempts\t"
            f"{row['created_at']:%Y-%m-%d %H:%M:%S}\t{row['idempotency_key']}\t"
            f"{row['last_error'] or ''}"
        )
    return 0


def _rotate(settings: Settings, args: argparse.Namespace) -> int:
    from hub.storage import open_storage

    if args.key_command == "reseal":
        return _reseal(settings)

    async def main() -> int:
        async with open_storage(settings) as storage:
            return await storage.rotate_key()

    version = trio.run(main)
    print(f"data key version {version} is now active; older versions stay readable")
    return 0


def _reseal(settings: Settings) -> int:
    from hub.privacy.reseal import reseal

    async def main() -> Any:
        async with _storage_and_files(settings) as (storage, attachments):
            return await reseal(storage, attachments)

    done = trio.run(main)
    print(
        f"sealed again under their organizations' keys: {done.messages} messages, "
        f"{done.attachments} files, {done.webhooks} webhook secrets"
    )
    return 0


def _retention(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from hub.actors.retention import StoredRetention

    async def main() -> Any:
        async with _storage_and_files(settings) as (storage, attachments):
            work = StoredRetention(storage, attachments, settings.audit_retention_days)
            return await work.run_pass(datetime.now(UTC))

    report = trio.run(main)
    for group_id in report.archived:
        print(f"archived\t{group_id}")
    for group_id in report.purged:
        print(f"purged\t{group_id}")
    print(
        f"{len(report.archived)} groups archived, {len(report.purged)} purged "
        f"({report.messages_deleted} messages, {report.attachments_deleted} attachments), "
        f"{report.audit_rows_deleted} audit rows deleted"
    )
    return 0


def _export(settings: Settings, args: argparse.Namespace) -> int:
    from pathlib import Path

    from hub.privacy.export import Exporter
    from hub.storage.exports import Subject
    from hub.storage.records import AuditEntry

    subject = Subject("user" if args.kind == "user" else "organization", args.id)
    out = Path(args.out)
    # Written beside its place and renamed once whole, so FILE is never half an archive.
    partial = out.with_name(out.name + ".part")

    async def main() -> tuple[dict[str, int], int]:
        async with _storage_and_files(settings) as (storage, attachments):
            exporter = Exporter(storage, attachments)
            await exporter.check(subject)
            counts = await exporter.counts(subject)
            entry = AuditEntry(
                action="privacy.export", target_type=subject.kind, details={"via": "cli"}
            )
            await exporter.record(entry, subject, counts)
            written = 0
            try:
                async with await trio.open_file(partial, "wb") as file:
                    async for piece in exporter.stream(subject):
                        await file.write(piece)
                        written += len(piece)
                await trio.Path(partial).rename(out)
            except BaseException:
                with contextlib.suppress(OSError):
                    partial.unlink()
                raise
            return counts, written

    counts, written = trio.run(main)
    summary = ", ".join(f"{n} {name.removesuffix('.json')}" for name, n in counts.items() if n)
    print(f"wrote {out} ({written} bytes): {summary or 'nothing held'}")
    return 0


def _erase(settings: Settings, args: argparse.Namespace) -> int:

    if args.erase_command == "org" and not args.yes:
        print(
            f"hub: erasing organization {args.id} destroys its data keys and cannot be undone;"
            " run again with --yes",
            file=sys.stderr,
        )
        return 2

    async def main() -> Any:
        async with _storage_and_files(settings) as (storage, attachments):
            if args.erase_command == "org":
                return await _erase_organization(storage, attachments, args.id)
            return await _erase_user(storage, attachments, args.id)

    done = trio.run(main)
    if args.erase_command == "org":
        print(
            f"erased organization {done.organization_id}: data keys {done.key_versions} "
            f"destroyed; {done.messages} messages no longer open, {done.attachments} files "
            f"deleted, {done.users} users pseudonymised, {done.webhooks} webhooks ended"
        )
    else:
        summary = ", ".join(f"{n} {name}" for name, n in done.counts().items())
        print(f"erased user {done.user_id} (now {done.username}): {summary}")
    return 0


async def _erase_user(storage: Any, attachments: Any, user_id: uuid.UUID) -> Any:
    from hub.messaging import DirectRouter
    from hub.privacy.erasure import erase_user
    from hub.storage.records import AuditEntry

    # No actor: the operator did it, on the subject's request.
    entry = AuditEntry(action="privacy.erase_user", target_type="user", details={"via": "cli"})
    return await erase_user(
        storage,
        DirectRouter(storage),
        user_id,
        entry,
        erased_by=None,
        remove_blobs=attachments.remove_blobs,
    )


async def _erase_organization(storage: Any, attachments: Any, organization_id: uuid.UUID) -> Any:
    from hub.privacy.organizations import erase
    from hub.storage.records import AuditEntry

    entry = AuditEntry(
        action="privacy.erase_organization",
        target_type="organization",
        target_id=str(organization_id),
        details={"via": "cli"},
    )
    return await erase(storage, attachments, organization_id, entry)


@contextlib.asynccontextmanager
async def _storage_and_files(settings: Settings) -> AsyncIterator[tuple[Any, Any]]:
    """The storage and the attachments service over HUB_BLOB_URL, for the commands that read
    or remove files (retention, export, erase); a bad HUB_BLOB_URL is one line."""
    from hub.attachments.service import Attachments, Limits
    from hub.attachments.stores import open_blob_store
    from hub.storage import open_storage

    try:
        blobs = await open_blob_store(settings.blob_url)
    except ValueError as exc:
        raise ConfigError(f"HUB_BLOB_URL: {exc}") from None
    async with open_storage(settings) as storage:
        limits = Limits(settings.max_file_size, settings.org_storage_quota_bytes)
        yield storage, Attachments(storage, blobs, limits)
