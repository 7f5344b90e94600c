"""The outward channels as the dispatcher sees them: e-mail and webhooks, each turning a claimed
delivery (`hub.actors.dispatcher.Work`) into what its sender sends (`hub.notifications.email`,
`hub.notifications.webhooks`)."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from datetime import datetime
from typing import Any

import msgspec

from hub.actors.dispatcher import Work
from hub.crypto import KeyRing
from hub.errors import Invalid
from hub.notifications.addresses import check_webhook_url
from hub.notifications.email import EmailContent, EmailSender, compose
from hub.notifications.failures import DeliveryFailed
from hub.notifications.webhooks import deliver
from hub.storage.records import Message
from hub.storage.webhooks import secret_aad

# The e-mail's reason for each notification reason (hub.notifications.email.REASONS).
_EMAIL_REASONS = {
    "mention": "mention",
    "org_mention": "mention",
    "ack_request": "acknowledgement",
    "reminder": "reminder",
    "escalation": "escalation",
}
_GONE = "(this message is no longer available)"


def headline(reason: str, sender: str) -> str:
    """One line saying why: the e-mail's subject and the web client's toast say the same."""
    return {
        "mention": f"{sender} mentioned you",
        "org_mention": f"{sender} mentioned your organization",
        "ack_request": f"{sender} asks your organization to confirm a change",
        "reminder": f"Reminder: {sender} is waiting for your organization to confirm",
        "escalation": f"Unconfirmed: {sender} is still waiting for your organization",
    }.get(reason, f"{sender} wrote")


def thread_link(public_url: str, thread_id: object) -> str:
    """Where the web client opens a thread (hub/web/js/app.js routes `#/t/{id}`)."""
    return f"{public_url}/#/t/{thread_id}"


class EmailChannel:
    def __init__(self, sender: EmailSender, from_address: str, public_url: str) -> None:
        self._sender = sender
        self._from = from_address
        self._public_url = public_url

    async def deliver(self, work: Work) -> None:
        subject = work.subject
        if subject is None:
            raise DeliveryFailed("the notification no longer exists", permanent=True)
        if not subject.email:
            raise DeliveryFailed("the user has no e-mail address", permanent=True)
        message = work.message
        sender = message.sender_name if message is not None else "Someone"
        line = headline(subject.reason, sender)
        content = EmailContent(
            headline=line,
            wedding=subject.group_name,
            thread_title=subject.thread_title,
            sender_name=sender,
            body=_body(message),
            link=thread_link(self._public_url, subject.thread_id),
            reason=_EMAIL_REASONS.get(subject.reason, "mention"),  # type: ignore[arg-type]
            idempotency_key=work.claimed.idempotency_key,
            wedding_date=subject.wedding_date,
        )
        prefix = "[Urgent] " if subject.urgent else ""
        await self._sender.send(
            compose(
                from_address=self._from,
                to_address=subject.email,
                subject=f"{prefix}{line}: {subject.thread_title} ({subject.group_name})",
                content=content,
            )
        )


def _body(message: Message | None) -> str:
    if message is None or message.deleted_at is not None:
        return _GONE
    return message.body


class WebhookChannel:
    def __init__(
        self,
        keyring: Callable[[], KeyRing],
        *,
        allow_hosts: frozenset[str],
        hub_origins: Callable[[], frozenset[str]],
        timeout_s: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._keyring = keyring
        self._allow_hosts = allow_hosts
        self._hub_origins = hub_origins
        self._timeout_s = timeout_s
        self._ssl_context = ssl_context

    async def deliver(self, work: Work) -> None:
        hook = work.hook
        if hook is None or hook.deleted:
            raise DeliveryFailed("the webhook was deleted", permanent=True)
        try:
            # Checked again: HUB_WEBHOOK_ALLOW_HOSTS may have changed since it was registered.
            target = check_webhook_url(
                hook.url, allow_hosts=self._allow_hosts, hub_origins=self._hub_origins()
            )
        except Invalid as refusal:
            raise DeliveryFailed(refusal.message, permanent=True) from None
        secret = self._keyring().open_text(secret_aad(hook.id), hook.secret_sealed)
        await deliver(
            target,
            secret=secret.encode(),
            body=webhook_body(work),
            event=work.claimed.event,
            delivery_id=work.claimed.idempotency_key,
            allow_hosts=self._allow_hosts,
            timeout_s=self._timeout_s,
            ssl_context=self._ssl_context,
        )


def webhook_body(work: Work) -> bytes:
    """What a webhook receives (docs/notifications.md shows it): the event, who of the
    organization it is for, and the message with where it was said."""
    claimed = work.claimed
    context = work.context or {}
    message = work.message
    body: dict[str, Any] = {
        "id": claimed.idempotency_key,
        "event": claimed.event,
        "urgent": claimed.urgent,
        "created_at": _iso(claimed.created_at),
        "organization_id": claimed.payload.get("organization_id"),
        "user_ids": claimed.payload.get("user_ids", []),
        "group": {
            "id": str(context.get("group_id", "")),
            "name": context.get("group_name"),
            "wedding_date": None
            if context.get("wedding_date") is None
            else context["wedding_date"].isoformat(),
        },
        "thread": {
            "id": str(context.get("thread_id", "")),
            "title": context.get("thread_title"),
            "priority": context.get("priority"),
        },
        "message": None,
    }
    if message is not None:
        body["message"] = {
            "seq": message.seq,
            "kind": message.kind,
            "requires_ack": message.requires_ack,
            "sender": {
                "id": str(message.sender_user_id),
                "name": message.sender_name,
                "org_id": str(message.sender_org_id),
            },
            "body": _body(message),
            "created_at": _iso(message.created_at),
        }
    return msgspec.json.encode(body)


def _iso(moment: datetime) -> str:
    return moment.isoformat()
