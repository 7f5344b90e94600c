"""Crossing nodes: what one hub process tells the others, and what they share.

PostgreSQL is the log and the only source of truth; the broker carries what makes N processes
behave as one hub: committed messages and ephemeral thread events (typing, receipts, presence)
to the nodes that have subscribers, revocations to every node, and the per-user state that must
hold across nodes (presence, connection and message limits). `memory` serves one process (and
in-process test clusters); `redis` serves several, over coredis.
"""
