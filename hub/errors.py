"""The hub's one exception hierarchy.

Handlers raise these; the edges (REST, WebSocket) translate them once into an HTTP status or a
WebSocket error code, so no handler decides how a failure looks on the wire.
"""

from __future__ import annotations


class HubError(Exception):
    """A failure the hub can explain to its caller."""

    code = "internal"

    def __init__(self, message: str, *, details: list[dict] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


class Invalid(HubError):
    code = "invalid"


class FieldInvalid(Invalid):
    """A named field of a request failed validation: a 422 over REST with the field in the
    details, `invalid` over WebSocket with the field in the message."""

    status = 422

    def __init__(self, field: str, message: str, *, location: str = "body") -> None:
        super().__init__(
            f"{field}: {message}",
            details=[{"field": field, "in": location, "message": message}],
        )


class Unauthorized(HubError):
    code = "unauthorized"


class Forbidden(HubError):
    code = "forbidden"


class NotFound(HubError):
    code = "not_found"


class Conflict(HubError):
    code = "conflict"


class RateLimited(HubError):
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Overloaded(HubError):
    code = "overloaded"


class PayloadTooLarge(HubError):
    """A request body (an upload) is larger than the hub accepts; REST answers 413."""

    code = "payload_too_large"
    status = 413


class UnsupportedMediaType(HubError):
    """An upload whose contents are not an allowed type, or not the type it claims; 415."""

    code = "unsupported_media_type"
    status = 415


class QuotaExceeded(HubError):
    """An organization's stored attachments would exceed its quota; 507 with the figures."""

    code = "quota_exceeded"
    status = 507


class StorageUnavailable(HubError):
    """The database could not be reached or did not answer in time; nothing was acknowledged."""

    code = "storage_unavailable"


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable and is shown as is."""


class WrongMasterKey(ConfigError):
    """HUB_ENCRYPTION_KEY does not unwrap the data keys stored in the database."""
