"""Bad input and failures: always the one JSON error shape, naming the field, never a traceback."""

from __future__ import annotations

import uuid

from hub.auth import TokenVerifier
from hub.http.app import create_app
from tests.http.conftest import Api


def assert_error_shape(reply, status: int) -> None:
    assert reply.status == status
    assert set(reply.json) == {"error"}
    assert set(reply.error) == {"code", "message", "details"}


async def test_an_unknown_route_is_a_json_404(api, owner):
    reply = await api.get("/nothing-here", as_=owner)

    assert_error_shape(reply, 404)
    assert reply.error["code"] == "not_found"


async def test_a_wrong_method_is_a_json_405(api, owner):
    reply = await api.request("PATCH", "/groups", as_=owner, json={})

    assert_error_shape(reply, 405)
    assert reply.error["code"] == "method_not_allowed"


async def test_a_body_over_one_mebibyte_is_413(api, owner, thread):
    reply = await api.post(
        f"/threads/{thread.id}",
        as_=owner,
        data=b'{"body": "' + b"x" * (1024 * 1024) + b'"}',
        headers={"Content-Type": "application/json"},
    )

    assert_error_shape(reply, 413)
    assert reply.error["code"] == "payload_too_large"


async def test_malformed_json_is_400(api, owner):
    reply = await api.post(
        "/groups", as_=owner, data=b'{"name": ', headers={"Content-Type": "application/json"}
    )

    assert_error_shape(reply, 400)


async def test_an_unknown_field_is_422_naming_it(api, owner):
    reply = await api.post("/groups", as_=owner, json={"name": "Lee", "colour": "teal"})

    assert_error_shape(reply, 422)
    assert reply.error["details"][0]["field"] == "colour"


async def test_a_wrong_type_is_422_naming_the_field(api, owner):
    reply = await api.post("/groups", as_=owner, json={"name": 42})

    assert_error_shape(reply, 422)
    assert reply.error["details"][0] == {
        "field": "name",
        "in": "body",
        "message": "Expected `str`, got `int`",
    }


async def test_a_missing_required_field_is_422_naming_it(api, owner):
    reply = await api.post("/groups", as_=owner, json={"description": "no name"})

    assert_error_shape(reply, 422)
    assert reply.error["details"][0]["field"] == "name"


async def test_a_title_over_200_characters_is_422(api, owner, group):
    reply = await api.post(
        "/threads", as_=owner, json={"group_id": str(group.id), "title": "t" * 201}
    )

    assert_error_shape(reply, 422)
    assert reply.error["details"][0]["field"] == "title"


async def test_a_body_over_10000_characters_is_422(api, owner, thread):
    reply = await api.post(f"/threads/{thread.id}", as_=owner, json={"body": "b" * 10_001})

    assert_error_shape(reply, 422)
    assert reply.error["details"][0]["field"] == "body"


async def test_a_bad_uuid_in_the_body_is_422_naming_the_field(api, owner):
    reply = await api.post("/threads", as_=owner, json={"group_id": "not-a-uuid", "title": "x"})

    assert_error_shape(reply, 422)
    assert reply.error["details"][0]["field"] == "group_id"


async def test_a_bad_uuid_in_the_path_is_422_naming_the_segment(api, owner):
    reply = await api.get("/groups/12345", as_=owner)

    assert_error_shape(reply, 422)
    assert reply.error["details"][0] == {
        "field": "group_id",
        "in": "path",
        "message": "must be a UUID",
    }


async def test_a_bad_enum_value_is_422_naming_the_field(api, owner, group):
    reply = await api.post(
        "/threads",
        as_=owner,
        json={"group_id": str(group.id), "title": "x", "priority": "whenever"},
    )

    assert_error_shape(reply, 422)
    assert reply.error["details"][0]["field"] == "priority"


async def test_a_limit_over_200_is_422_naming_the_query_parameter(api, owner):
    reply = await api.get("/groups", as_=owner, query={"limit": "201"})

    assert_error_shape(reply, 422)
    assert reply.error["details"][0]["field"] == "limit"
    assert reply.error["details"][0]["in"] == "query"


async def test_an_unknown_query_parameter_is_422(api, owner):
    reply = await api.get("/threads", as_=owner, query={"sort_by": "title"})

    assert_error_shape(reply, 422)
    assert reply.error["details"][0]["field"] == "sort_by"


async def test_a_forged_cursor_is_422_naming_the_cursor(api, owner):
    reply = await api.get("/groups", as_=owner, query={"cursor": "bm90LWEtY3Vyc29y"})

    assert_error_shape(reply, 422)
    assert reply.error["details"][0]["field"] == "cursor"


async def test_a_non_json_body_is_422_asking_for_a_json_object(api, owner):
    reply = await api.post(
        "/groups", as_=owner, data=b"name=Lee", headers={"Content-Type": "text/plain"}
    )

    assert_error_shape(reply, 422)
    assert "JSON object" in reply.error["message"]


class ExplodingRouter:
    async def post(self, principal, message, *, audit=None, timing=None):
        raise RuntimeError("secret connection string postgres://admin:hunter2@db")


async def test_an_unexpected_failure_is_a_bare_500_without_internals(
    settings, storage, owner, thread
):
    app = create_app(settings, storage, TokenVerifier(settings), router=ExplodingRouter())

    reply = await Api(app).post(f"/threads/{thread.id}", as_=owner, json={"body": "hello"})

    assert_error_shape(reply, 500)
    assert reply.error == {"code": "internal", "message": "internal error", "details": []}


async def test_an_unknown_id_is_404_in_the_error_shape(api, owner):
    reply = await api.get(f"/threads/{uuid.uuid4()}", as_=owner)

    assert_error_shape(reply, 404)
