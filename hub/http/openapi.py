"""OpenAPI 3.1 from the same msgspec Structs that validate requests (via quart-schema).

Routes declare what they answer with `responds` (validated and documented) and which errors they
may return with `errors` (documented as the one error shape). Path ids are plain segments parsed
by the views (so a malformed id is a 422 naming it, not a routing 404); the provider documents
them as UUIDs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec
from quart import Response
from quart_schema import QuartSchema
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
    """Document a success answer. Views return that Struct, so the answer matches by
    construction; `_encode_structs` encodes it once, with msgspec (quart's stdlib-json path
    costs several times more on the hot GET/POST of threads)."""

    def decorate(func: F) -> F:
        schemas = getattr(func, QUART_SCHEMA_RESPONSE_ATTRIBUTE, {})
        schemas[status] = (model, None)
        setattr(func, QUART_SCHEMA_RESPONSE_ATTRIBUTE, schemas)
        return func

    return decorate


_encoder = msgspec.json.Encoder()


def _encode_structs(make_response: Callable[..., Any]) -> Callable[..., Any]:
    """Views return Structs (or (Struct, status[, headers])); encode those once with msgspec.
    Anything else goes on to quart-schema's and Quart's usual conversion."""

    async def make(result: Any) -> Any:
        value, rest = (result[0], result[1:]) if isinstance(result, tuple) else (result, ())
        if not isinstance(value, msgspec.Struct):
            return await make_response(result)
        status = rest[0] if rest else 200
        headers = rest[1] if len(rest) > 1 else None
        return Response(
            _encoder.encode(value), status=status, headers=headers, content_type="application/json"
        )

    return make


def errors(*statuses: int) -> Callable[[F], F]:
    """Document error answers without wrapping the view: errors are raised, never returned."""

    def decorate(func: F) -> F:
        schemas = getattr(func, QUART_SCHEMA_RESPONSE_ATTRIBUTE, {})
        for status in (*statuses, *COMMON_ERRORS):
            schemas.setdefault(status, (ErrorBody, None))
        setattr(func, QUART_SCHEMA_RESPONSE_ATTRIBUTE, schemas)
        return func

    return decorate


_RAW = "__hub_raw_answers__"
_BINARY = {"type": "string", "format": "binary"}


def raw(
    answers: dict[int, tuple[str | None, str]], *, request_body: str | None = None
) -> Callable[[F], F]:
    """Document answers that are bytes, not a Struct (a file, a thumbnail, 204, 304): status →
    (content type or None for no body, description); `request_body` describes a raw body
    (an upload). quart-schema knows only models, so `HubOpenAPIProvider` adds these."""

    def decorate(func: F) -> F:
        setattr(func, _RAW, (answers, request_body))
        return func

    return decorate


class HubOpenAPIProvider(OpenAPIProvider):
    def __init__(self, app: Any, extension: QuartSchema) -> None:
        super().__init__(app, extension)
        self.hub_app = app

    def schema(self) -> dict[str, Any]:
        """quart-schema inlines each route's top-level Struct but drops the Structs nested in
        it (its msgspec path keeps only the first component), leaving dangling `$ref`s. Every
        wire type is added here, so each reference resolves. Raw answers (`raw`) are added
        to their operations."""
        document = super().schema()
        _, components = msgspec.json.schema_components(
            wire_types(), ref_template="#/components/schemas/{name}"
        )
        document["components"]["schemas"] = {**components, **document["components"]["schemas"]}
        self._add_raw(document)
        return document

    def _add_raw(self, document: dict[str, Any]) -> None:
        for rule in self.hub_app.url_map.iter_rules():
            found = getattr(self.hub_app.view_functions.get(rule.endpoint), _RAW, None)
            if found is None:
                continue
            answers, request_body = found
            path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
            for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
                operation = document["paths"].get(path, {}).get(method.lower())
                if operation is None:
                    continue
                for status, (content_type, description) in answers.items():
                    answer: dict[str, Any] = {"description": description}
                    if content_type is not None:
                        answer["content"] = {content_type: {"schema": _BINARY}}
                    operation["responses"][status] = answer
                if request_body is not None:
                    operation["requestBody"] = {
                        "required": True,
                        "description": request_body,
                        "content": {"*/*": {"schema": _BINARY}},
                    }

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
    extension = QuartSchema(
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
    app.make_response = _encode_structs(app.make_response)  # type: ignore[method-assign]
    return extension
