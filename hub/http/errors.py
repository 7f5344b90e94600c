"""Every error the API returns is JSON in one shape: {"error": {code, message, details}}.

HubErrors map to their status here, once; HTTP errors raised by Quart (404, 405, 413) and
quart-schema's validation errors get the same shape; anything else is logged with its traceback
and answered as a bare `internal` 500.

Status choices: 422 when a field of a well-formed request fails validation (the details name the
field and where it was: body, query or path); 400 when the body is not JSON at all, or when a
valid request breaks a rule only the data can tell (a reply to a message of another thread).
"""

from __future__ import annotations

import logging
import math
import re
from typing import Any

from quart import Response, jsonify
from quart_schema import RequestSchemaValidationError
from quart_schema.validation import QuerystringValidationError
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from hub.auth import TokenExpired
from hub.errors import HubError, RateLimited
from hub.validation import readable

log = logging.getLogger(__name__)

STATUS_BY_CODE = {
    "invalid": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
    "rate_limited": 429,
    "overloaded": 503,
    "storage_unavailable": 503,
    "internal": 500,
}

HTTP_CODES = {
    400: "invalid",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
}

REALM = 'Bearer realm="vendor-connections"'


def error_response(status: int, code: str, message: str, details: list | None = None) -> Response:
    response = jsonify({"error": {"code": code, "message": message, "details": details or []}})
    response.status_code = status
    return response


# msgspec says e.g. "Expected `str` of length <= 200 - at `$.title`" or
# "Object contains unknown field `colour` - at `$.client`".
_AT = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_NAMED_FIELD = re.compile(r"(?:unknown|missing required) field `([^`]+)`")


def validation_details(error: Exception, location: str) -> tuple[str, list[dict[str, Any]]]:
    """Turn a msgspec validation message into (message, details naming the field)."""
    text = readable(str(error)) or "invalid request"
    match = _AT.match(text)
    what = match.group("what") if match else text
    path = (match.group("path") or "") if match else ""
    field = path.lstrip(".")
    named = _NAMED_FIELD.search(what)
    if named:
        field = f"{field}.{named.group(1)}" if field else named.group(1)
    if text.startswith("Expected `object`, got `null`") and location == "body":
        what = "the request body must be a JSON object (Content-Type: application/json)"
    field = field or "(body)" if location == "body" else field or "(query)"
    message = f"{field}: {what}"
    return message, [{"field": field, "in": location, "message": what}]


def install(app: QuartTrio) -> None:
    @app.errorhandler(HubError)
    async def hub_error(error: HubError) -> Response:
        status = getattr(error, "status", None) or STATUS_BY_CODE.get(error.code, 500)
        message = error.message if status != 500 else "internal error"
        response = error_response(status, error.code, message, error.details)
        if isinstance(error, RateLimited):
            response.headers["Retry-After"] = str(max(1, math.ceil(error.retry_after_s)))
        if error.code == "unauthorized":
            if isinstance(error, TokenExpired):
                response.headers["WWW-Authenticate"] = (
                    f'{REALM}, error="invalid_token", error_description="the token has expired"'
                )
            else:
                response.headers["WWW-Authenticate"] = REALM
        return response

    @app.errorhandler(RequestSchemaValidationError)
    async def schema_error(error: RequestSchemaValidationError) -> Response:
        location = "query" if isinstance(error, QuerystringValidationError) else "body"
        message, details = validation_details(error.validation_error, location)
        return error_response(422, "invalid", message, details)

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        code = HTTP_CODES.get(status, "internal" if status >= 500 else "invalid")
        message = error.description or error.name
        if status == 413:
            message = "the request body is larger than the 1 MiB limit"
        response = error_response(status, code, message)
        if status == 405 and error.response is None:
            allowed = getattr(error, "valid_methods", None)
            if allowed:
                response.headers["Allow"] = ", ".join(sorted(allowed))
        return response

    @app.errorhandler(Exception)
    async def unexpected(error: Exception) -> Response:
        log.exception("unhandled error in a request", exc_info=error)
        return error_response(500, "internal", "internal error")
