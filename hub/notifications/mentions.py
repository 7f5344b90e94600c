"""Mentions: `@name` of a member user and `@org` of a member organization, found in a message's
text when it is stored. Pure: no I/O (the names come from `hub.storage.notifications`).

Names here are display names, which have spaces ("@Marta Lopez", "@Bloom & Co"): a mention is
an `@` at the start of a word followed by a member's name, compared without regard to case, and
ending where a word ends. When several names match at one `@` ("@Marta" and "@Marta Lopez"),
the longest wins; a user and an organization of the same length both match, since nobody can
tell which was meant and telling both is the safer mistake. E-mail addresses (`a@b.com`) are not
mentions: their `@` follows a letter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

# Bounds what one message can make the hub do: a body of 10,000 `@` signs stops here.
MENTIONS_MAX = 50


@dataclass(frozen=True, slots=True)
class Named:
    """A member user (with their organization) or a member organization (`org_id` None)."""

    id: UUID
    name: str
    org_id: UUID | None = None


def _word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


def find_mentions(
    body: str, users: Sequence[Named], orgs: Sequence[Named]
) -> tuple[list[Named], list[Named]]:
    """The users and organizations `body` mentions, each once, in order of first mention."""
    if "@" not in body:
        return [], []
    folded = body.casefold()
    candidates = [
        (name.casefold(), entry, is_user)
        for entries, is_user in ((users, True), (orgs, False))
        for entry in entries
        if (name := entry.name.strip())
    ]
    found_users: dict[UUID, Named] = {}
    found_orgs: dict[UUID, Named] = {}
    at = folded.find("@")
    while at != -1 and len(found_users) + len(found_orgs) < MENTIONS_MAX:
        if at == 0 or not _word_char(folded[at - 1]):
            best: list[tuple[Named, bool]] = []
            best_length = 0
            for name, entry, is_user in candidates:
                end = at + 1 + len(name)
                if not folded.startswith(name, at + 1):
                    continue
                if end < len(folded) and _word_char(folded[end]) and _word_char(name[-1]):
                    continue  # "@Martadiaz" is not "@Marta"
                if len(name) > best_length:
                    best, best_length = [(entry, is_user)], len(name)
                elif len(name) == best_length:
                    best.append((entry, is_user))
            for entry, is_user in best:
                (found_users if is_user else found_orgs).setdefault(entry.id, entry)
        at = folded.find("@", at + 1)
    return list(found_users.values()), list(found_orgs.values())


def mentions_metadata(users: Sequence[Named], orgs: Sequence[Named]) -> dict[str, list]:
    """What a message keeps of its mentions (`metadata.mentions`, sealed with it): who, by id
    and by the name they had then."""
    return {
        "users": [{"id": str(u.id), "name": u.name, "org_id": str(u.org_id)} for u in users],
        "orgs": [{"id": str(o.id), "name": o.name} for o in orgs],
    }
