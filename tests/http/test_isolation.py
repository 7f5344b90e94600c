"""The isolation matrix: for every endpoint that names a group or thread, a user of an unrelated
organization gets 404 (ids cannot be probed) and a member without the role gets 403. Nothing
changes in the database either way."""

from __future__ import annotations

import uuid

import pytest

from hub.storage.groups import get_group
from hub.storage.messages import count_messages
from hub.storage.threads import get_thread
from tests.queries import group_members

# (method, path, body): {g} is the group id, {t} the thread id, {o} a member organization id.
ENDPOINTS = [
    ("GET", "/groups/{g}", None),
    ("PUT", "/groups/{g}", {"name": "x"}),
    ("DELETE", "/groups/{g}", None),
    ("POST", "/groups/{g}", {"organization_id": "{new}"}),
    ("DELETE", "/groups/{g}/members/{o}", None),
    ("GET", "/threads/{t}", None),
    ("PUT", "/threads/{t}", {"priority": "urgent"}),
    ("DELETE", "/threads/{t}", None),
    ("POST", "/threads/{t}", {"body": "probe"}),
    ("POST", "/threads", {"group_id": "{g}", "title": "probe"}),
    ("GET", "/threads?group_id={g}", None),
    ("GET", "/audit?group_id={g}", None),
]

# What a vendor-role member of the group may not do.
VENDOR_FORBIDDEN = [
    ("PUT", "/groups/{g}", {"name": "x"}),
    ("DELETE", "/groups/{g}", None),
    ("POST", "/groups/{g}", {"organization_id": "{new}"}),
    ("DELETE", "/groups/{g}/members/{o}", None),
    ("PUT", "/threads/{t}", {"priority": "urgent"}),
    ("DELETE", "/threads/{t}", None),
    ("GET", "/audit?group_id={g}", None),
]


def fill(template, group, thread, member_org, new_org):
    def sub(text: str) -> str:
        return (
            text.replace("{g}", str(group.id))
            .replace("{t}", str(thread.id))
            .replace("{o}", str(member_org))
            .replace("{new}", str(new_org))
        )

    if template is None:
        return None
    if isinstance(template, str):
        return sub(template)
    return {key: sub(value) for key, value in template.items()}


async def call(api, member, method, path, body):
    path, _, query = path.partition("?")
    params = dict(part.split("=") for part in query.split("&")) if query else None
    return await api.request(method, path, as_=member, json=body, query=params)


async def snapshot(storage, group, thread):
    return (
        await storage.read(get_group(group.id)),
        await storage.read(get_thread(thread.id)),
        await storage.read(group_members(group.id)),
        await storage.read(count_messages(thread.id)),
    )


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
async def test_an_unrelated_organization_gets_404(
    api, storage, outsider, group, thread, vendor, method, path, body
):
    before = await snapshot(storage, group, thread)

    reply = await call(
        api,
        outsider,
        method,
        fill(path, group, thread, vendor.org_id, uuid.uuid4()),
        fill(body, group, thread, vendor.org_id, uuid.uuid4()),
    )

    assert reply.status == 404, reply.json
    assert reply.error["code"] == "not_found"
    assert await snapshot(storage, group, thread) == before


@pytest.mark.parametrize(("method", "path", "body"), VENDOR_FORBIDDEN)
async def test_a_vendor_member_without_the_role_gets_403(
    api, storage, vendor, group, thread, method, path, body
):
    before = await snapshot(storage, group, thread)

    reply = await call(
        api,
        vendor,
        method,
        fill(path, group, thread, vendor.org_id, uuid.uuid4()),
        fill(body, group, thread, vendor.org_id, uuid.uuid4()),
    )

    assert reply.status == 403, reply.json
    assert reply.error["code"] == "forbidden"
    assert await snapshot(storage, group, thread) == before
