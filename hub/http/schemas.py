"""The REST API's wire types: every request body, query string and response as a msgspec Struct.

These same Structs validate requests (through quart-schema, which converts with msgspec) and
generate `/openapi.json`, so the documentation cannot drift from what the server accepts.
Request types forbid unknown fields: a misspelt field is an error, not silently ignored.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from msgspec import UNSET, Meta, UnsetType

from hub.storage.records import (
    ConnectionStatus,
    GroupStatus,
    Priority,
    Role,
    ThreadStatus,
    ThreadType,
)
from hub.validation import (
    AttachmentIds,
    ClientKind,
    ClientMsgId,
    Latitude,
    Longitude,
    MessageBody,
    MessageId,
    PositiveSeq,
    Seq,
    text,
)

# Every request string is bounded and free of U+0000 (hub.validation: PostgreSQL cannot store it).
Name = text(min_length=1, max_length=200)
Title = text(min_length=1, max_length=200)
Description = text(max_length=5000)
Cursor = text(max_length=500)
Limit = Annotated[int, Meta(ge=1, le=200)]
AwareDatetime = Annotated[datetime, Meta(tz=True)]
Short = text(max_length=200)
VendorType = text(min_length=1, max_length=50)
Phone = text(max_length=50)
Address = text(max_length=500)
AuditAction = text(max_length=100)
FileName = text(min_length=1, max_length=1000)
BulkSize = Meta(min_length=1, max_length=100)


class Request(msgspec.Struct, forbid_unknown_fields=True):
    """Base of every request body and query string."""


# --- errors --------------------------------------------------------------------------------------


class ErrorInfo(msgspec.Struct):
    code: str
    message: str
    details: list[dict[str, Any]] = []


class ErrorBody(msgspec.Struct):
    """The one error shape every non-2xx answer uses."""

    error: ErrorInfo


# --- the caller ----------------------------------------------------------------------------------


class MeOut(msgspec.Struct):
    """The caller as the hub sees their token: its user, organization (with the organization's
    name in the hub), display name and role, and when it expires."""

    user_id: UUID
    organization_id: UUID
    organization_name: str
    display_name: str
    role: Role
    expires_at: datetime


class OrganizationUserOut(msgspec.Struct):
    """A user of the caller's organization as the hub last saw them. An erased one is listed
    as "Erased user" (`erased` true, no longer seen); `erasable` says whether the caller may
    erase them (`POST /users/{id}/erase`): never themselves here (that is `POST /me/erase`), an
    owner only by an owner."""

    id: UUID
    display_name: str
    role: Role
    last_seen_at: datetime | None
    erased: bool
    erasable: bool


class OrganizationUserList(msgspec.Struct):
    """By name, the erased last; at most 1000."""

    items: list[OrganizationUserOut]


class EraseIn(Request):
    """Erasing a user cannot be undone: the caller types `erase` to say they mean it."""

    confirm: Literal["erase"]


class ErasureOut(msgspec.Struct):
    """An erasure done: the user's pseudonym (`erased-…`, shown as "Erased user") and how many
    of each kind of row went (`messages` made tombstones, `blobs` of files deleted, …)."""

    user_id: UUID
    username: str
    counts: dict[str, int]


# --- groups --------------------------------------------------------------------------------------


class ClientIn(Request):
    partner_one_name: Name
    partner_two_name: Name | None = None
    email: Short | None = None
    phone: Phone | None = None
    venue_name: Short | None = None
    venue_address: Address | None = None


class GroupCreate(Request):
    name: Name
    description: Description | None = None
    wedding_date: date | None = None
    client: ClientIn | None = None
    settings: dict[str, Any] = {}


class GroupUpdate(Request):
    """A partial update: fields left out stay as they are; `null` clears an optional field."""

    name: Name | UnsetType = UNSET
    description: Description | UnsetType | None = UNSET
    wedding_date: date | UnsetType | None = UNSET
    settings: dict[str, Any] | UnsetType = UNSET


class GroupBulkItem(GroupUpdate, kw_only=True):
    id: UUID


class GroupBulkUpdate(Request):
    items: Annotated[list[GroupBulkItem], BulkSize]


class GroupQuery(Request):
    status: GroupStatus = "active"
    wedding_from: date | None = None
    wedding_to: date | None = None
    cursor: Cursor | None = None
    limit: Limit = 50


class GroupStats(msgspec.Struct):
    member_count: int
    thread_count: int
    message_count: int
    unread_count: int
    last_activity_at: datetime


class GroupOut(msgspec.Struct):
    id: UUID
    owner_organization_id: UUID
    name: str
    status: GroupStatus
    settings: dict[str, Any]
    created_by: UUID
    created_at: datetime
    updated_at: datetime
    stats: GroupStats
    client_id: UUID | None = None
    description: str | None = None
    wedding_date: date | None = None
    archived_at: datetime | None = None


class GroupPage(msgspec.Struct):
    items: list[GroupOut]
    next_cursor: str | None = None


class MemberOut(msgspec.Struct):
    organization_id: UUID
    organization_name: str
    vendor_type: str
    role: Role
    status: ConnectionStatus
    invited_at: datetime
    invited_by: UUID | None = None
    joined_at: datetime | None = None


class ActiveMember(msgspec.Struct):
    user_id: UUID
    organization_id: UUID
    display_name: str
    message_count: int


class GroupActivity(msgspec.Struct):
    messages_24h: int
    messages_7d: int
    open_threads: int
    urgent_threads: int
    most_active_members: list[ActiveMember]


class ClientOut(msgspec.Struct):
    id: UUID
    partner_one_name: str
    partner_two_name: str | None = None
    email: str | None = None
    phone: str | None = None
    venue_name: str | None = None
    venue_address: str | None = None


class GroupDetail(msgspec.Struct):
    group: GroupOut
    members: list[MemberOut]
    activity: GroupActivity
    client: ClientOut | None = None


class GroupResult(msgspec.Struct):
    """One item of a bulk update: `ok` with the updated group, or the error it met."""

    id: UUID
    ok: bool
    status: int
    group: GroupOut | None = None
    error: ErrorInfo | None = None


class GroupBulkResults(msgspec.Struct):
    succeeded: int
    failed: int
    results: list[GroupResult]


# --- members and invitations ---------------------------------------------------------------------


class Invite(Request):
    organization_id: UUID
    vendor_type: VendorType = "other"
    role: Literal["admin", "manager", "vendor"] = "vendor"


class InvitationOut(msgspec.Struct):
    """A pending invitation of the caller's organization: the group, who owns it and who sent
    the invitation (null when that user is unknown to the hub), and the vendor type and role the
    organization would join with. Answer it with `POST /groups/{group_id}/accept` or
    `/decline`."""

    group_id: UUID
    group_name: str
    wedding_date: date | None
    owner_organization_id: UUID
    owner_organization_name: str
    vendor_type: str
    role: Role
    invited_at: datetime
    invited_by_name: str | None


class InvitationList(msgspec.Struct):
    """At most 200, newest first."""

    items: list[InvitationOut]


# --- threads -------------------------------------------------------------------------------------


class FirstMessage(Request):
    body: Annotated[MessageBody, Meta(min_length=1)]
    client_msg_id: ClientMsgId | None = None


class ThreadCreate(Request):
    group_id: UUID
    title: Title
    thread_type: ThreadType = "general"
    priority: Priority = "normal"
    first_message: FirstMessage | None = None


class ThreadUpdate(Request):
    title: Title | UnsetType = UNSET
    priority: Priority | UnsetType = UNSET
    status: Literal["open", "resolved"] | UnsetType = UNSET


class ThreadBulkItem(Request):
    id: UUID
    priority: Priority | UnsetType = UNSET
    status: Literal["open", "resolved"] | UnsetType = UNSET


class ThreadBulkUpdate(Request):
    items: Annotated[list[ThreadBulkItem], BulkSize]


class ThreadQuery(Request):
    group_id: UUID | None = None
    status: ThreadStatus | None = None
    priority: Priority | None = None
    thread_type: ThreadType | None = None
    q: Short | None = None
    updated_since: AwareDatetime | None = None
    sort: Literal["activity", "priority"] = "activity"
    cursor: Cursor | None = None
    limit: Limit = 50


class ThreadOut(msgspec.Struct):
    id: UUID
    group_id: UUID
    title: str
    thread_type: ThreadType
    priority: Priority
    status: ThreadStatus
    created_by: UUID
    created_at: datetime
    updated_at: datetime
    message_count: int
    unread_count: int
    last_read_seq: int
    last_message_at: datetime | None = None
    archived_at: datetime | None = None
    # Edits and deletions of its messages so far: join with since_change = this to be told of
    # the ones made after the page was read.
    last_change: int = 0


class ThreadPage(msgspec.Struct):
    items: list[ThreadOut]
    next_cursor: str | None = None


class ThreadResult(msgspec.Struct):
    id: UUID
    ok: bool
    status: int
    thread: ThreadOut | None = None
    error: ErrorInfo | None = None


class ThreadBulkResults(msgspec.Struct):
    succeeded: int
    failed: int
    results: list[ThreadResult]


class HistoryQuery(Request):
    before_seq: PositiveSeq | None = None
    after_seq: Seq | None = None
    limit: Limit = 50


class MessageOut(msgspec.Struct):
    """A message of a page. `sender_name` is the sender's display name as it is now, the field
    a `new_message` frame carries under the same name."""

    id: int
    seq: int
    sender_user_id: UUID
    sender_org_id: UUID
    sender_name: str
    kind: str
    body: str
    client_msg_id: str
    metadata: dict[str, Any]
    created_at: datetime
    reply_to: int | None = None
    edited_at: datetime | None = None
    requires_ack: bool = False
    deleted_at: datetime | None = None  # a tombstone: no body, metadata or attachments
    change_no: int = 0
    erased: bool = False  # its organization was erased: its key is destroyed, nothing opens


class PresenceOut(msgspec.Struct):
    user_id: UUID
    status: str
    last_seen_at: datetime


class ReceiptOut(msgspec.Struct):
    """How far one user has read a thread (the seq of the last message they marked read)."""

    user_id: UUID
    display_name: str
    organization_id: UUID
    last_read_seq: int
    read_at: datetime


class ThreadDetail(msgspec.Struct):
    """A thread, who is present, everyone's read receipts (furthest read first, at most 200),
    and one page of its history (oldest first). `has_more` says whether older messages exist
    before the page (or newer ones after it, with `after_seq`)."""

    thread: ThreadOut
    presence: list[PresenceOut]
    read_receipts: list[ReceiptOut]
    messages: list[MessageOut]
    has_more: bool
    # Whether the caller may delete anyone's message here (hub.access.may_delete_any), as an
    # owner or admin of the organization that owns the wedding; their own they always may.
    may_delete_any: bool = False


# --- messages ------------------------------------------------------------------------------------


class MessageEditIn(Request):
    """The message's new text (its sender's); its kind, attachments and coordinates stay."""

    body: MessageBody


class MessageChangeOut(msgspec.Struct):
    """A committed edit or deletion of message `seq`: `change_no` orders it among the thread's
    changes (the `message_edited` / `message_deleted` events carry it too); `duplicate` when
    the message had been deleted already (this is that deletion)."""

    thread_id: UUID
    seq: int
    id: int
    change_no: int
    at: datetime
    by: UUID
    deleted: bool
    duplicate: bool = False
    body: str | None = None
    metadata: dict[str, Any] | None = None


class MessageIn(Request):
    """`kind=text` needs a non-empty body; `kind=location` needs latitude and longitude and may
    carry a body as its label; `kind=attachment` needs `attachment_ids` (the sender's unattached
    uploads to this thread, at most 10) and may carry a body as its caption; `kind=change` (a
    change of plan) needs a body and always asks for acknowledgement, as `requires_ack` makes
    any message do. Repeating a `client_msg_id` returns the original message."""

    body: MessageBody = ""
    kind: ClientKind = "text"
    client_msg_id: ClientMsgId | None = None
    reply_to: MessageId | None = None
    metadata: dict[str, Any] = {}
    latitude: Latitude | None = None
    longitude: Longitude | None = None
    attachment_ids: AttachmentIds = []
    requires_ack: bool = False


class MessageAck(msgspec.Struct):
    id: int
    thread_id: UUID
    seq: int
    client_msg_id: str
    created_at: datetime
    duplicate: bool


# --- notification preferences --------------------------------------------------------------------

# 'HH:MM' on a 24-hour clock.
WallTime = Annotated[str, Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
TimeZoneName = text(min_length=1, max_length=64)


class ChannelsIn(Request):
    """Channels left out stay as they are."""

    in_app: bool | UnsetType = UNSET
    email: bool | UnsetType = UNSET
    webhook: bool | UnsetType = UNSET


class QuietHours(Request):
    """Local wall-clock times in the preferences' `time_zone`; `start` after `end` spans
    midnight ('22:00' to '07:00')."""

    start: WallTime
    end: WallTime


class PreferencesIn(Request):
    """Fields left out stay as they are; `quiet_hours: null` removes them. `email_consent`
    records (true) or withdraws (false) the agreement to notification e-mail, which goes out
    only while it stands."""

    channels: ChannelsIn | UnsetType = UNSET
    urgent_only: bool | UnsetType = UNSET
    quiet_hours: QuietHours | UnsetType | None = UNSET
    time_zone: TimeZoneName | UnsetType = UNSET
    mention_alerts: bool | UnsetType = UNSET
    email_consent: bool | UnsetType = UNSET


class ChannelsOut(msgspec.Struct):
    in_app: bool
    email: bool
    webhook: bool


class QuietHoursOut(msgspec.Struct):
    start: str
    end: str


class PreferencesOut(msgspec.Struct):
    """`email_address` is the one the caller's token names (None: none, so no e-mail);
    `email_active` says whether notification e-mail reaches them now: the channel on, consent
    given, an address known, and the hub has an SMTP server."""

    channels: ChannelsOut
    urgent_only: bool
    time_zone: str
    mention_alerts: bool
    email_active: bool
    quiet_hours: QuietHoursOut | None = None
    consent_at: datetime | None = None
    email_address: str | None = None
    updated_at: datetime | None = None


class InboxQuery(Request):
    """`before` is the id of the last notification of the previous page."""

    limit: Limit = 50
    before: Annotated[int, Meta(ge=1, le=2**63 - 1)] | None = None
    unread: bool = False


class NotificationOut(msgspec.Struct):
    """Why the caller is told (`mention`, `org_mention`, `ack_request`, `reminder`,
    `escalation`) about message `seq` of a thread; `preview` is the start of its text."""

    id: int
    reason: str
    urgent: bool
    created_at: datetime
    group_id: UUID
    group_name: str
    thread_id: UUID
    thread_title: str
    seq: int
    read_at: datetime | None = None
    sender_name: str | None = None
    preview: str | None = None


class InboxOut(msgspec.Struct):
    notifications: list[NotificationOut]
    unread_count: int
    has_more: bool


class MarkReadIn(Request):
    """One of: the ids to mark read, `thread_id` (every notification about that thread, as
    opening it does), or `all: true`."""

    ids: Annotated[list[Annotated[int, Meta(ge=1, le=2**63 - 1)]], Meta(max_length=500)] = []
    thread_id: UUID | None = None
    all: bool = False


class MarkedOut(msgspec.Struct):
    marked: int
    unread_count: int


WebhookUrl = text(min_length=1, max_length=2048)
WebhookEvent = Literal["mention", "org_mention", "ack_request", "reminder", "escalation"]


class WebhookIn(Request):
    """`url`: https (http only for a host in HUB_WEBHOOK_ALLOW_HOSTS), never the hub itself,
    a loopback, private or link-local address. `events`: what it is told about (default all)."""

    url: WebhookUrl
    events: Annotated[list[WebhookEvent], Meta(min_length=1, max_length=5)] = msgspec.field(
        default_factory=lambda: ["mention", "org_mention", "ack_request", "reminder", "escalation"]
    )


class WebhookOut(msgspec.Struct, omit_defaults=True):
    """A webhook; `secret` only in the answer to its creation, never again: each delivery's
    `X-Hub-Signature-256` is `sha256=` and the hex HMAC-SHA256, keyed with it, of
    `{X-Hub-Timestamp}.{body}`."""

    id: UUID
    url: str
    events: list[str]
    created_at: datetime
    secret: str | None = None


class WebhookList(msgspec.Struct):
    webhooks: list[WebhookOut]


EscalationMinutes = Annotated[int, Meta(ge=1, le=10_080)]


class EscalationPolicyIn(Request):
    """Fields left out stay as they are. Minutes between reminders by how far the wedding is
    (in `time_zone`): more than a week, within a week, the last two days, the day itself; each
    at most the one before. `escalate_after`: reminders before the organization's owners and
    admins are told too."""

    enabled: bool | UnsetType = UNSET
    time_zone: TimeZoneName | UnsetType = UNSET
    more_than_week_minutes: EscalationMinutes | UnsetType = UNSET
    within_week_minutes: EscalationMinutes | UnsetType = UNSET
    last_two_days_minutes: EscalationMinutes | UnsetType = UNSET
    wedding_day_minutes: EscalationMinutes | UnsetType = UNSET
    escalate_after: Annotated[int, Meta(ge=0, le=100)] | UnsetType = UNSET
    max_reminders_without_date: Annotated[int, Meta(ge=0, le=1000)] | UnsetType = UNSET


class EscalationPolicyOut(msgspec.Struct):
    group_id: UUID
    enabled: bool
    time_zone: str
    more_than_week_minutes: int
    within_week_minutes: int
    last_two_days_minutes: int
    wedding_day_minutes: int
    escalate_after: int
    max_reminders_without_date: int
    # Whether the caller may change it (hub.access.may): the web client offers the form by it.
    may_change: bool = False


# --- retention (docs/privacy.md) -----------------------------------------------------------------

RetentionDays = Annotated[int, Meta(ge=1, le=36_500)]
ArchiveDays = Annotated[int, Meta(ge=0, le=36_500)]
HoldReason = text(min_length=1, max_length=500)


class RetentionIn(Request):
    """Fields left out stay as they are. Days after the wedding (or, without a date, after the
    last message) until the group is archived, and until its messages and files are deleted;
    archiving comes first."""

    retention_days_after_wedding: RetentionDays | UnsetType = UNSET
    archive_days_after_wedding: ArchiveDays | UnsetType = UNSET


class LegalHoldIn(Request):
    """Why the wedding's data must be kept: while held, it is neither archived nor purged."""

    reason: HoldReason


class LegalHoldOut(msgspec.Struct):
    at: datetime
    reason: str
    by: UUID | None = None


class RetentionOut(msgspec.Struct):
    """A group's retention: its days, what they count from (`anchor`: `wedding_date`, or
    `last_activity` without one, at `anchored_at`), when it is archived and purged, and the hold
    that stops both."""

    group_id: UUID
    retention_days_after_wedding: int
    archive_days_after_wedding: int
    anchor: Literal["wedding_date", "last_activity"]
    anchored_at: datetime
    archive_due: datetime
    purge_due: datetime
    status: GroupStatus
    legal_hold: LegalHoldOut | None = None
    archived_at: datetime | None = None
    purged_at: datetime | None = None
    # Whether the caller may change the days and the hold (hub.access.may), once not purged.
    may_change: bool = False


class MuteIn(Request):
    muted: bool


class MuteOut(msgspec.Struct):
    thread_id: UUID
    muted: bool
    muted_at: datetime | None = None


# --- acknowledgements ----------------------------------------------------------------------------


class AcknowledgementOut(msgspec.Struct):
    """An organization's confirmation of a message; `duplicate` when it had confirmed before
    (this is that earlier confirmation)."""

    thread_id: UUID
    seq: int
    org_id: UUID
    user_id: UUID
    at: datetime
    duplicate: bool
    user_name: str | None = None
    org_name: str | None = None


class BoardEntryOut(msgspec.Struct):
    """A member organization on a message's board: `acknowledged` (by `user_id` at `at`),
    `pending`, or `sender` (its organization sent the message)."""

    org_id: UUID
    org_name: str
    state: Literal["acknowledged", "pending", "sender"]
    reminders_sent: int
    user_id: UUID | None = None
    user_name: str | None = None
    at: datetime | None = None


class BoardOut(msgspec.Struct):
    thread_id: UUID
    seq: int
    pending: int
    organizations: list[BoardEntryOut]


# --- attachments ---------------------------------------------------------------------------------


class UploadQuery(Request):
    """`filename` is kept for display only (its last path segment), never used as a path."""

    filename: FileName


class AttachmentOut(msgspec.Struct, omit_defaults=True):
    """An uploaded file. `width` and `height` are an image's (upright); `thumbnail` says
    whether `GET /attachments/{id}/thumbnail` has one. Attach it by sending a message of
    `kind=attachment` with its id in `attachment_ids`. Only its uploader can attach it, so
    `uploader_user_id` and `uploader_name` (their display name now) say who sent it."""

    id: UUID
    thread_id: UUID
    filename: str
    content_type: str
    size: int
    sha256: str
    created_at: datetime
    thumbnail: bool
    uploader_user_id: UUID
    uploader_name: str | None = None
    width: int | None = None
    height: int | None = None
    message_id: int | None = None


class AttachmentQuery(Request):
    limit: Limit = 50
    cursor: Cursor | None = None


class AttachmentPage(msgspec.Struct):
    items: list[AttachmentOut]
    next_cursor: str | None = None


# --- audit ---------------------------------------------------------------------------------------


class AuditQuery(Request):
    group_id: UUID | None = None
    actor: UUID | None = None
    action: AuditAction | None = None
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None
    cursor: Cursor | None = None
    limit: Limit = 50


class AuditOut(msgspec.Struct):
    id: int
    at: datetime
    action: str
    target_type: str
    details: dict[str, Any]
    target_id: str | None = None
    actor_user_id: UUID | None = None
    actor_org_id: UUID | None = None
    group_id: UUID | None = None
    ip: str | None = None
    user_agent: str | None = None


class AuditPage(msgspec.Struct):
    items: list[AuditOut]
    next_cursor: str | None = None


# --- service -------------------------------------------------------------------------------------


class Liveness(msgspec.Struct):
    status: str
    uptime_s: float


class Health(msgspec.Struct, omit_defaults=True):
    status: str
    database: str
    uptime_s: float
    broker: str | None = None  # readiness: "memory" (one process) or "redis"
    degraded: list[str] | None = None
