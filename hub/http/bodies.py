"""Request bodies as JSON, decoded so that no body can make decoding fail unexplained.

Python's decoder recurses once per level of nesting and raises `RecursionError` near a thousand
levels: a body of a thousand `[` was a 500 with a traceback. Here it is a 400 naming the
problem, like any other body that is not JSON the hub can use. (Free-form objects that are
stored, such as message metadata, are bounded far lower by `hub.validation`.)
"""

from __future__ import annotations

from typing import Any

from quart import Response
from quart.json.provider import JSONProvider
from quart_trio import QuartTrio
from werkzeug.exceptions import BadRequest


class BoundedJSONProvider(JSONProvider):
    """The app's JSON provider as it was (quart-schema's, which knows how to encode msgspec
    Structs), with decoding that turns runaway nesting into a 400."""

    def __init__(self, app: QuartTrio, inner: JSONProvider) -> None:
        super().__init__(app)
        self._inner = inner

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return self._inner.dumps(obj, **kwargs)

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        try:
            return self._inner.loads(s, **kwargs)
        except RecursionError:
            raise BadRequest("the JSON body is nested too deeply") from None

    def response(self, *args: Any, **kwargs: Any) -> Response:
        return self._inner.response(*args, **kwargs)


def install(app: QuartTrio) -> None:
    """Bound decoding of the provider the app has now (call after quart-schema set its own)."""
    app.json = BoundedJSONProvider(app, app.json)
