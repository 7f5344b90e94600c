"""Rate limits per user and route class, announced in RateLimit-* headers."""

from __future__ import annotations

from tests.factories import new_group, new_member, new_thread


async def test_responses_announce_the_remaining_budget(tight_api):
    api, storage, settings = tight_api
    caller = await new_member(storage, settings)

    reply = await api.get("/groups", as_=caller)

    assert (reply.headers["RateLimit-Limit"], reply.headers["RateLimit-Remaining"]) == ("2", "1")
    assert int(reply.headers["RateLimit-Reset"]) > 0


async def test_over_budget_is_429_with_retry_after(tight_api):
    api, storage, settings = tight_api
    caller = await new_member(storage, settings)
    for _ in range(2):
        assert (await api.get("/groups", as_=caller)).status == 200

    reply = await api.get("/groups", as_=caller)

    assert reply.status == 429
    assert reply.error["code"] == "rate_limited"
    assert int(reply.headers["Retry-After"]) >= 1
    assert reply.headers["RateLimit-Remaining"] == "0"


async def test_reads_writes_and_sends_have_separate_budgets(tight_api):
    api, storage, settings = tight_api
    caller = await new_member(storage, settings)
    thread = await new_thread(storage, await new_group(storage, caller), caller)
    for _ in range(2):
        await api.get("/groups", as_=caller)
    assert (await api.get("/groups", as_=caller)).status == 429

    sent = await api.post(f"/threads/{thread.id}", as_=caller, json={"body": "still allowed"})
    written = await api.put(f"/threads/{thread.id}", as_=caller, json={"priority": "high"})

    assert (sent.status, written.status) == (201, 200)


async def test_one_users_flood_does_not_limit_another_user(tight_api):
    api, storage, settings = tight_api
    flooder, bystander = await new_member(storage, settings), await new_member(storage, settings)
    for _ in range(3):
        await api.get("/groups", as_=flooder)

    assert (await api.get("/groups", as_=bystander)).status == 200
