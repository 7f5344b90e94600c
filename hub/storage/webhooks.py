"""An organization's webhook receivers: registered by its owner or admin, listed, deleted.

A deleted webhook keeps its row (`deleted_at`): deliveries already in the outbox name it, and
find it deleted rather than missing. The secret is stored sealed (`secret_aad`): the hub needs
it back to sign each delivery, and a copy of the database alone must not let anyone forge one.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec

from hub.errors import NotFound
from hub.storage.sql import Op, execute, fetch, fetchrow

# What a webhook can be told about: the reasons a notification has (hub.storage.notifications).
WEBHOOK_EVENTS = ("mention", "org_mention", "ack_request", "reminder", "escalation")
WEBHOOKS_PER_ORGANIZATION = 20


class WebhookRecord(msgspec.Struct, frozen=True):
    id: UUID
    organization_id: UUID
    url: str
    events: list[str]
    secret_sealed: str
    created_by: UUID
    created_at: datetime
    deleted_at: datetime | None = None


def secret_aad(webhook_id: UUID) -> bytes:
    return b"vch:webhook-secret:" + webhook_id.bytes


_COLUMNS = "id, organization_id, url, events, secret_sealed, created_by, created_at, deleted_at"


def create_webhook(record: WebhookRecord) -> Op[WebhookRecord]:
    yield execute(
        f"INSERT INTO organization_webhooks ({_COLUMNS}) "  # noqa: S608 (constant columns)
        "VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)",
        record.id,
        record.organization_id,
        record.url,
        list(record.events),
        record.secret_sealed,
        record.created_by,
        record.created_at,
    )
    return record


def webhooks_of(organization_id: UUID) -> Op[list[WebhookRecord]]:
    rows = yield fetch(
        f"SELECT {_COLUMNS} FROM organization_webhooks "  # noqa: S608 (constant columns)
        "WHERE organization_id = $1 AND deleted_at IS NULL ORDER BY created_at, id",
        organization_id,
    )
    return [msgspec.convert(row, WebhookRecord) for row in rows]


def delete_webhook(webhook_id: UUID, organization_id: UUID, now: datetime) -> Op[WebhookRecord]:
    """Delete one of the organization's webhooks; NotFound for any other id (another
    organization's included: they do not exist for the caller)."""
    row = yield fetchrow(
        "UPDATE organization_webhooks SET deleted_at = $3 "  # noqa: S608 (constant columns)
        "WHERE id = $1 AND organization_id = $2 AND deleted_at IS NULL "
        f"RETURNING {_COLUMNS}",
        webhook_id,
        organization_id,
        now,
    )
    if row is None:
        raise NotFound(f"webhook {webhook_id} not found")
    return msgspec.convert(row, WebhookRecord)
