"""End to end through the real hub: Hypercorn's Trio worker on a loopback port, a real HTTP client
(the standard library's, run in a worker thread), and schemathesis against the served schema."""

from __future__ import annotations

import hypothesis
import schemathesis
import trio
from schemathesis.checks import not_a_server_error, response_schema_conformance

from tests import fuzzcount
from tests.factories import add_member, new_group, new_member, new_thread
from tests.http.blocking import call


async def test_a_message_posted_over_http_is_read_back_by_another_member(hub, settings):
    owner = await new_member(hub.storage, settings)
    vendor = await new_member(hub.storage, settings, role="vendor")
    group = await new_group(hub.storage, owner)
    await add_member(hub.storage, group, vendor, invited_by=owner)
    thread = await new_thread(hub.storage, group, owner)

    status, ack, _ = await call(
        hub, "POST", f"/threads/{thread.id}", vendor, {"body": "On my way", "client_msg_id": "1"}
    )
    _, detail, _ = await call(hub, "GET", f"/threads/{thread.id}", owner)

    assert (status, ack["seq"]) == (201, 1)
    assert [m["body"] for m in detail["messages"]] == ["On my way"]
    assert detail["thread"]["unread_count"] == 1


async def test_the_server_refuses_a_request_without_a_token(hub):
    status, body, headers = await call(hub, "GET", "/groups")

    assert status == 401
    assert body["error"]["code"] == "unauthorized"
    assert headers["WWW-Authenticate"].startswith("Bearer")


async def test_a_group_created_over_http_is_listed_with_its_location(hub, settings):
    owner = await new_member(hub.storage, settings)

    status, created, headers = await call(hub, "POST", "/groups", owner, {"name": "Okafor"})
    _, listing, _ = await call(hub, "GET", "/groups", owner)

    assert status == 201
    assert headers["Location"].endswith(created["id"])
    assert [g["name"] for g in listing["items"]] == ["Okafor"]


async def test_the_served_schema_is_openapi_3_1_with_every_route(hub):
    status, spec, _ = await call(hub, "GET", "/openapi.json")

    assert status == 200
    assert spec["openapi"] == "3.1.0"
    paths = {p.removeprefix("/api/vendor-connections") for p in spec["paths"]}
    assert {
        "/me",
        "/groups",
        "/groups/{group_id}",
        "/invitations",
        "/threads",
        "/threads/{thread_id}",
        "/audit",
    } <= paths
    assert set(spec["paths"]["/api/vendor-connections/threads/{thread_id}"]) == {
        "get",
        "post",
        "put",
        "delete",
    }
    # Answers that are bytes are documented too: a file, a part of one, not modified.
    download = spec["paths"]["/api/vendor-connections/attachments/{attachment_id}"]["get"]
    assert {"200", "206", "304", "404", "416"} <= set(download["responses"])
    assert download["responses"]["206"]["content"]["application/octet-stream"]["schema"] == {
        "type": "string",
        "format": "binary",
    }
    upload = spec["paths"]["/api/vendor-connections/threads/{thread_id}/attachments"]["post"]
    assert upload["requestBody"]["content"]["*/*"]["schema"]["format"] == "binary"
    assert {"201", "413", "415", "507"} <= set(upload["responses"])


def _fuzz(spec: dict, base_url: str, token: str, examples: int) -> tuple[list[str], set[str]]:
    """Run every operation's generated cases; return the failures (empty when all conform) and
    the operations that were really called."""
    schema = schemathesis.openapi.from_dict(spec)
    failures: list[str] = []
    called: set[str] = set()
    for result in schema.get_all_operations():
        run = _operation_test(result.ok(), base_url, token, examples, failures, called)
        try:
            run()
        except (AssertionError, BaseExceptionGroup):
            pass  # recorded in `failures`, with the operation it belongs to
    return failures, called


def _operation_test(operation, base_url, token, examples, failures, called):
    @fuzzcount.against_a_server(examples)
    @hypothesis.given(case=operation.as_strategy())
    def run(case) -> None:
        response = case.call(base_url=base_url, headers={"Authorization": f"Bearer {token}"})
        called.add(operation.label)
        try:
            case.validate_response(
                response, checks=[not_a_server_error, response_schema_conformance]
            )
        except (AssertionError, BaseExceptionGroup) as failure:
            failures.append(f"{operation.label}: {failure}")
            raise

    return run


async def test_schemathesis_finds_no_server_error_and_no_undocumented_response(roomy_hub):
    roomy_hub, settings = roomy_hub
    owner = await new_member(roomy_hub.storage, settings)
    group = await new_group(roomy_hub.storage, owner)
    await new_thread(roomy_hub.storage, group, owner)
    _, spec, _ = await call(roomy_hub, "GET", "/openapi.json")
    base_url = roomy_hub.rest_url.removesuffix("/api/vendor-connections")

    failures, called = await trio.to_thread.run_sync(_fuzz, spec, base_url, owner.token, 12)

    assert failures == []
    assert len(called) == sum(len(operations) for operations in spec["paths"].values())
