"""Every error the API returns is JSON in one shape: {"error": {code, message, details}}.

HubErrors map to their status here, once; HTTP errors raised by Quart (404, 405, 413) get the same
shape; anything else is logged with its traceback and answered as a bare `internal` 500.
"""

from __future__ import annotations

import logging
import math

from quart import Response, jsonify
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from hub.errors import HubError, RateLimited

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


def error_response(status: int, code: str, message: str, details: list | None = None) -> Response:
    response = jsonify({"error": {"code": code, "message": message, "details": details or []}})
    response.status_code = status
    return response


def install(app: QuartTrio) -> None:
    @app.errorhandler(HubError)
    async def hub_error(error: HubError) -> Response:
        status = STATUS_BY_CODE.get(error.code, 500)
        message = error.message if status != 500 else "internal error"
        response = error_response(status, error.code, message, error.details)
        if isinstance(error, RateLimited):
            response.headers["Retry-After"] = str(max(1, math.ceil(error.retry_after_s)))
        if error.code == "unauthorized":
            response.headers["WWW-Authenticate"] = 'Bearer realm="vendor-connections"'
        return response

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        code = HTTP_CODES.get(status, "internal" if status >= 500 else "invalid")
        return error_response(status, code, error.description or error.name)

    @app.errorhandler(Exception)
    async def unexpected(error: Exception) -> Response:
        log.exception("unhandled error in a request", exc_info=error)
        return error_response(500, "internal", "internal error")
