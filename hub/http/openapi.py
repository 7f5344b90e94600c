"""OpenAPI 3.1 from the same msgspec Structs that validate requests (via quart-schema).

Routes declare what they answer with `responds` (validated and documented) and which errors they
may return with `errors` (documented as the one error shape). Path ids are plain segments parsed
by the views (so a malformed id is a 422 naming it, not a routing 404); the provider documents
them as UUIDs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import msgspec
from quart_schema import QuartSchema, validate_response
from quart_schema.openapi import OpenAPIProvider
from quart_schema.validation import QUART_SCHEMA_RESPONSE_ATTRIBUTE
from quart_trio import QuartTrio
from werkzeug.routing.converters import BaseConverter

from hub.http import schemas
from hub.http.schemas import ErrorBody

F = TypeVar("F", bound=Callable[..., Any])

# Every protected route can answer these; routes add their own (404, 403, 409, 422...).
COMMON_ERRORS = (401, 413, 429, 500, 503)


def responds(model: type, status: int = 200) -> Callable[[F], F]:
    return validate_response(model, status)  # type: ignore[return-value]


def errors(*statuses: int) -> Callable[[F], F]:
    """Document error answers without wrapping the view: errors are raised, never returned."""

    def decorate(func: F) -> F:
        schemas = getattr(func, QUART_SCHEMA_RESPONSE_ATTRIBUTE, {})
        for status in (*statuses, *COMMON_ERRORS):
            schemas.setdefault(status, (ErrorBody, None))
        setattr(func, QUART_SCHEMA_RESPONSE_ATTRIBUTE, schemas)
        return func

    return decorate


class HubOpenAPIProvider(OpenAPIProvider):
    def schema(self) -> dict[str, Any]:
        """quart-schema inlines each route's top-level Struct but drops the Structs nested in
        it (its msgspec path keeps only the first component), leaving dangling `$ref`s. Every
        wire type is added here, so each reference resolves."""
        document = super().schema()
        _, components = msgspec.json.schema_components(
            wire_types(), ref_template="#/components/schemas/{name}"
        )
        document["components"]["schemas"] = {**components, **document["components"]["schemas"]}
        return document

    def build_path_parameter(self, name: str, converter: BaseConverter) -> dict[str, Any]:
        parameter = super().build_path_parameter(name, converter)
        if name.endswith("_id"):
            parameter["schema"] = {"type": "string", "format": "uuid"}
        return parameter


def wire_types() -> list[type]:
    return [
        value
        for value in vars(schemas).values()
        if isinstance(value, type)
        and issubclass(value, msgspec.Struct)
        and value.__module__ == schemas.__name__
    ]


def install(app: QuartTrio, openapi_path: str) -> QuartSchema:
    return QuartSchema(
        app,
        openapi_path=openapi_path,
        # quart-schema's UI pages load JavaScript from CDNs; the hub serves its own docs page.
        swagger_ui_path=None,
        redoc_ui_path=None,
        scalar_ui_path=None,
        info={
            "title": "Vendor Connections Hub",
            "version": "1.0.0",
            "description": "Groups, invitations, threads and messages for wedding vendors. "
            "Every endpoint except health, this document and the docs page needs "
            "`Authorization: Bearer <JWT>`. Errors are always "
            '`{"error": {"code", "message", "details"}}`.',
        },
        security_schemes={"bearer": {"type": "http", "scheme": "bearer", "bearer_format": "JWT"}},
        security=[{"bearer": []}],
        conversion_preference="msgspec",
        openapi_provider_class=HubOpenAPIProvider,
    )
