"""A group's escalation policy: `GET`/`PUT /groups/{id}/escalation-policy`.

How often the organizations that have not acknowledged a message are reminded, by how close the
wedding is, and after how many reminders their owners and admins are told
(`hub.notifications.policy`). Every member may read it; the group's owner organization's owners
and admins set it, as they update the group itself.
"""

from __future__ import annotations

from msgspec import UNSET, structs
from quart import Blueprint
from quart_schema import validate_request

from hub.access import authorize_group, may
from hub.http.identity import audit, current_principal, current_storage
from hub.http.openapi import errors, responds
from hub.http.params import path_id
from hub.http.schemas import EscalationPolicyIn, EscalationPolicyOut
from hub.notifications.policy import EscalationPolicy, check_policy, policy_of
from hub.storage.groups import escalation_policy_of, set_escalation_policy

blueprint = Blueprint("escalation", __name__)


def _out(group_id, policy: EscalationPolicy, may_change: bool) -> EscalationPolicyOut:
    return EscalationPolicyOut(group_id=group_id, may_change=may_change, **structs.asdict(policy))


@blueprint.get("/groups/<group_id>/escalation-policy")
@errors(404, 422)
@responds(EscalationPolicyOut)
async def get_policy(group_id: str) -> EscalationPolicyOut:
    """The group's escalation policy (the defaults until its owner changes one)."""
    gid = path_id("group_id", group_id)
    storage = current_storage()
    principal = current_principal()
    access = await authorize_group(storage, principal, gid, "read")
    policy = policy_of(await storage.read(escalation_policy_of(gid)))
    return _out(gid, policy, may(principal, access.group, "update_group"))


@blueprint.put("/groups/<group_id>/escalation-policy")
@errors(403, 404, 409, 422)
@responds(EscalationPolicyOut)
@validate_request(EscalationPolicyIn)
async def put_policy(group_id: str, data: EscalationPolicyIn) -> EscalationPolicyOut:
    """Change the group's escalation policy (its owner organization's owners and admins).
    Fields left out stay as they are. Reminders already scheduled keep their time; the next
    ones follow the new policy."""
    gid = path_id("group_id", group_id)
    storage = current_storage()
    await authorize_group(storage, current_principal(), gid, "update_group")
    changes = {k: v for k, v in structs.asdict(data).items() if v is not UNSET}
    current = policy_of(await storage.read(escalation_policy_of(gid)))
    policy = check_policy(structs.replace(current, **changes))
    stored = structs.asdict(policy)
    entry = audit("group.escalation_policy", "group", gid, group_id=gid, details={"set": changes})
    await storage.write(lambda now: set_escalation_policy(gid, stored, now), audit=[entry])
    return _out(gid, policy, True)
