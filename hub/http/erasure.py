"""Erasing a user over REST (GDPR article 17; docs/privacy.md, "Erasing a user"):
`POST /me/erase` for the caller themselves, `POST /users/{id}/erase` for an owner or admin of
the user's organization (`hub.access.may_erase_user`). Both ask for `{"confirm": "erase"}`:
there is no undoing it. The work is `hub.privacy.erasure`'s, as for `hub erase user`.
"""

from __future__ import annotations

from uuid import UUID

from quart import Blueprint, current_app
from quart_schema import validate_request

from hub.access import may_erase_user
from hub.http.identity import audit, current_principal, current_router, current_storage
from hub.http.openapi import errors, responds
from hub.http.params import path_id
from hub.http.schemas import EraseIn, ErasureOut
from hub.privacy.erasure import erase_user, find_user

blueprint = Blueprint("erasure", __name__)


@blueprint.post("/me/erase")
@errors(422)
@responds(ErasureOut)
@validate_request(EraseIn)
async def erase_me(data: EraseIn) -> ErasureOut:
    """Erase the caller: their messages become tombstones (other people's stay, their sender
    now "Erased user"), their files, read marks, presence, preferences, mutes and
    notifications go, their profile is pseudonymised and their tokens are refused from now on
    (401). What their organization holds (its confirmations, webhooks, groups) stays."""
    return await _erase(current_principal().user_id)


@blueprint.post("/users/<user_id>/erase")
@errors(403, 404, 422)
@responds(ErasureOut)
@validate_request(EraseIn)
async def erase_other(user_id: str, data: EraseIn) -> ErasureOut:
    """Erase a user of the caller's organization, as `/me/erase` erases oneself: for its owners
    (anyone) and admins (anyone but an owner); 403 for other roles, 404 for a user of another
    organization or one the hub never saw."""
    uid = path_id("user_id", user_id)
    principal = current_principal()
    may_erase_user(principal, await find_user(current_storage(), uid), uid)
    return await _erase(uid)


async def _erase(user_id: UUID) -> ErasureOut:
    hub = current_app.extensions["hub"]
    principal = current_principal()
    entry = audit("privacy.erase_user", "user", user_id, group_id=None, details={"via": "api"})
    report = await erase_user(
        current_storage(),
        current_router(),
        user_id,
        entry,
        erased_by=principal.user_id,
        remove_blobs=hub["attachments"].remove_blobs,
    )
    # This door's own memory of identities (the sockets' is the router's).
    hub["identities"].forget(user_id)
    return ErasureOut(user_id=user_id, username=report.username, counts=report.counts())
