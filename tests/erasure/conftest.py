"""Erasure runs on the notification tests' wedding (a planner's group with a florist shop of two
users, a DJ and an outsider), over real sockets on both backends."""

from tests.notifications.conftest import (  # noqa: F401 (fixtures, used by name)
    hub,
    notification_overrides,
    settings,
    wedding,
)
