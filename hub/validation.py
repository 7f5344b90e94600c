"""What every door checks before a value reaches storage, written once for REST and WebSocket.

The databases refuse some values a JSON client can send: integers beyond a signed 64-bit
`bigint`, U+0000 in text (PostgreSQL cannot store it in `text` or `jsonb`), and JSON nested so
deep that encoding it again recurses past Python's limit. A value like that must be refused at
the door with an error naming its field; if it reached a group commit it would be found only
there (hub.storage.actor isolates such a request, but a clear 422 / `invalid` is the answer a
client can act on).

The rules of a new message live here too (`message_content`), so a message is the same thing
whichever door it comes through: REST's `MessageIn` and the WebSocket's `send_message` share
these types and this function.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from msgspec import Meta

from hub.errors import FieldInvalid

BIGINT_MAX = 2**63 - 1
# Searched with re.search by msgspec: the whole string, free of U+0000.
NO_NUL = r"^[^\x00]*$"
# How deep a free-form JSON object (message metadata, group settings) may nest, and how large
# it may be once encoded: room for any real annotation, far from what recursion or a row can
# choke on.
JSON_MAX_DEPTH = 8
JSON_MAX_BYTES = 16 * 1024

MESSAGE_BODY_MAX = 10_000


def text(*, min_length: int = 0, max_length: int) -> Any:
    """A string type that is bounded and free of U+0000, for a msgspec Struct field."""
    bounds = Meta(min_length=min_length or None, max_length=max_length, pattern=NO_NUL)
    return Annotated[str, bounds]


# Identifiers and counters the databases keep as bigint.
MessageId = Annotated[int, Meta(ge=1, le=BIGINT_MAX)]
Seq = Annotated[int, Meta(ge=0, le=BIGINT_MAX)]
PositiveSeq = Annotated[int, Meta(ge=1, le=BIGINT_MAX)]

MessageBody = text(max_length=MESSAGE_BODY_MAX)
ClientMsgId = text(min_length=1, max_length=100)
# `system` comes from the hub, never from a client. `change` is a change of plan (timeline,
# weather, substitution): a text that every other member organization must acknowledge.
ClientKind = Literal["text", "location", "attachment", "change"]
# At most this many uploads travel in one message (Mattermost's default is 10 too).
ATTACHMENTS_PER_MESSAGE_MAX = 10
AttachmentIds = Annotated[list[UUID], Meta(max_length=ATTACHMENTS_PER_MESSAGE_MAX)]
Latitude = Annotated[float, Meta(ge=-90, le=90)]
Longitude = Annotated[float, Meta(ge=-180, le=180)]

_REGEX_COMPLAINT = re.compile(r"Expected `str` matching regex '[^']*'")
_encode = msgspec.json.Encoder().encode


def readable(message: str) -> str:
    """msgspec's wording for a broken NUL rule, in words a client can act on."""
    return _REGEX_COMPLAINT.sub("must not contain the NUL character (U+0000)", message)


def check_json_object(value: dict[str, Any], field: str) -> None:
    """Refuse a free-form JSON object the databases could not store or encode again: nested
    deeper than JSON_MAX_DEPTH, larger than JSON_MAX_BYTES encoded, or holding U+0000 in a key
    or a string. The walk is iterative, so no input can make it recurse."""
    stack: list[tuple[Any, int, str]] = [(value, 1, field)]
    while stack:
        node, depth, path = stack.pop()
        if isinstance(node, dict | list):
            if depth > JSON_MAX_DEPTH:
                raise FieldInvalid(field, f"is nested deeper than {JSON_MAX_DEPTH} levels")
            if isinstance(node, dict):
                for key, item in node.items():
                    if "\x00" in key:
                        raise FieldInvalid(path, "keys must not contain the NUL character")
                    stack.append((item, depth + 1, f"{path}.{key}"))
            else:
                stack.extend((item, depth + 1, f"{path}[{i}]") for i, item in enumerate(node))
        elif isinstance(node, str) and "\x00" in node:
            raise FieldInvalid(path, "must not contain the NUL character (U+0000)")
    if len(_encode(value)) > JSON_MAX_BYTES:
        raise FieldInvalid(field, f"is larger than {JSON_MAX_BYTES} bytes as JSON")


def message_content(
    kind: str,
    body: str,
    metadata: dict[str, Any],
    latitude: float | None,
    longitude: float | None,
    attachment_ids: list[UUID] | tuple[UUID, ...] = (),
) -> tuple[str, dict[str, Any]]:
    """The body and metadata to store for a new message from a client, or FieldInvalid naming
    the rule it breaks: text needs a body that is not only white space; a location needs both
    coordinates (kept in the metadata) and may carry a body as its label; an attachment needs
    `attachment_ids` and may carry a body as its caption (the door adds what the uploads are,
    as `metadata.attachments`, which a client may not set itself); a change needs a body, as
    text does. `metadata.mentions` is the hub's too (`hub.notifications.mentions`)."""
    if kind not in ("text", "location", "attachment", "change"):
        raise FieldInvalid(
            "kind",
            "must be text, location, attachment or change (system messages come from the hub)",
        )
    check_json_object(metadata, "metadata")
    if "attachments" in metadata:
        raise FieldInvalid("metadata.attachments", "is set by the hub from attachment_ids")
    if "mentions" in metadata:
        raise FieldInvalid("metadata.mentions", "is set by the hub from the body's @mentions")
    metadata = dict(metadata)
    if kind == "attachment":
        if not attachment_ids:
            raise FieldInvalid("attachment_ids", "must name at least one upload")
        for name, value in (("latitude", latitude), ("longitude", longitude)):
            if value is not None:
                raise FieldInvalid(name, "is only allowed when kind is location")
        return body, metadata
    if attachment_ids:
        raise FieldInvalid("attachment_ids", "is only allowed when kind is attachment")
    if kind == "location":
        if latitude is None or longitude is None:
            missing = "latitude" if latitude is None else "longitude"
            raise FieldInvalid(missing, "is required when kind is location")
        metadata["latitude"], metadata["longitude"] = latitude, longitude
        return body, metadata
    if not body.strip():
        raise FieldInvalid("body", f"must not be empty for a {kind} message")
    for name, value in (("latitude", latitude), ("longitude", longitude)):
        if value is not None:
            raise FieldInvalid(name, "is only allowed when kind is location")
    return body, metadata
