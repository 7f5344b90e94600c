"""The in-app channel: a `notification` frame on every socket of the user, on every node.

The notification itself is already in the user's inbox (`user_notifications`, written with the
message), so this delivery is the live nudge: a user with no socket open sees it in
`GET /me/notifications` on their next visit, and a frame lost between nodes costs nothing that
the inbox does not still hold. During quiet hours the frame says `quiet`, so the web client
shows it without a sound or a banner.
"""

from __future__ import annotations

from typing import Protocol
from uuid import UUID

from hub import protocol
from hub.actors.dispatcher import Work
from hub.frames import event_frame
from hub.notifications.content import preview
from hub.notifications.failures import DeliveryFailed


class UserSockets(Protocol):
    def notify_user(self, user_id: UUID, frame: bytes) -> None: ...


class InApp:
    def __init__(self, sockets: UserSockets) -> None:
        self._sockets = sockets

    async def deliver(self, work: Work) -> None:
        subject = work.subject
        if subject is None:
            raise DeliveryFailed("the notification no longer exists", permanent=True)
        message = work.message
        frame = protocol.Notification(
            id=subject.notification_id,
            reason=subject.reason,
            urgent=subject.urgent,
            thread_id=subject.thread_id,
            seq=subject.seq,
            group_id=subject.group_id,
            created_at=subject.created_at,
            quiet=work.quiet_until is not None and not subject.urgent,
            group_name=subject.group_name,
            thread_title=subject.thread_title,
            sender_name=None if message is None else message.sender_name,
            preview=None if message is None else preview(message.body),
        )
        self._sockets.notify_user(subject.user_id, event_frame(frame))
