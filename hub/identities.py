"""Users and organizations from verified tokens, written on first sight.

The identity provider is external: a token's claims are the truth about a user, and the rows the
hub keeps (foreign keys of messages, groups, audit) are created or refreshed from them. REST and
WebSocket both call `ensure` before acting for a caller; a bounded, short-lived memory of what
was written recently keeps a burst of requests or a reconnect storm from becoming a write storm,
while `last_seen_at`, a new name or a new role still reach the database within `ttl_s`.

An erased user's token is refused here, the one place both doors pass (401, "this user was
erased"): the upsert leaves their pseudonymised row alone and says so. A node that erases a
user forgets them at once (`forget`); another node that saw them within `ttl_s` accepts their
token until its memory of them expires, and refuses it from then on.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any
from uuid import UUID

from hub.auth import Principal
from hub.errors import Unauthorized
from hub.storage import Storage
from hub.storage.bulk import Identity
from hub.storage.orgerasure import organization_erased

ERASED = "this user was erased; their tokens are no longer accepted"


class Identities:
    def __init__(
        self,
        storage: Storage,
        *,
        max_entries: int = 10_000,
        ttl_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._storage = storage
        self._seen: OrderedDict[tuple[Any, ...], float] = OrderedDict()
        self._max_entries = max_entries
        self._ttl_s = ttl_s
        self._clock = clock

    def __len__(self) -> int:
        return len(self._seen)

    def forget_organization(self, organization_id: UUID) -> None:
        """Its users are checked again at their next request (it was erased)."""
        for key in [k for k in self._seen if k[1] == organization_id]:
            del self._seen[key]

    async def ensure(self, principal: Principal) -> None:
        """Make sure the caller's user and organization rows exist and are current; Unauthorized
        for a user who was erased (never remembered, so every token of theirs asks again)."""
        key = (principal.user_id, principal.org_id, principal.role, principal.name, principal.email)
        seen_at = self._seen.get(key)
        if seen_at is not None and self._clock() - seen_at <= self._ttl_s:
            self._seen.move_to_end(key)
            return
        if await self._storage.read(organization_erased(principal.org_id)):
            # Its names stay pseudonymised: a new token must not write them back.
            raise Unauthorized(f"organization {principal.org_id} was erased")
        erased = await self._storage.write_bulk(
            "identity",
            Identity(
                user_id=principal.user_id,
                organization_id=principal.org_id,
                username=str(principal.user_id),
                display_name=principal.name,
                role=principal.role,
                email=principal.email,
            ),
        )
        if erased:
            raise Unauthorized(ERASED)
        self._seen[key] = self._clock()
        self._seen.move_to_end(key)
        while len(self._seen) > self._max_entries:
            self._seen.popitem(last=False)

    def forget(self, user_id: UUID) -> None:
        """Drop what was remembered of the user (just erased), so their next request asks the
        database and is refused."""
        for key in [key for key in self._seen if key[0] == user_id]:
            del self._seen[key]
