-- Notifications, acknowledgements and escalation (issue 21; docs/notifications.md).
--
-- thread_messages gains the kind `change` (a change of plan, which always asks for an
-- acknowledgement) and `requires_ack`. SQLite cannot alter a CHECK, so the table is made again
-- with the same columns plus the new one, and its rows are put back with their ids. Foreign keys
-- stay on inside a migration's transaction; deferred to its commit, the rows that refer to
-- messages (replies, attachments) are checked once the messages are back, and the commit fails
-- if any were lost. AUTOINCREMENT keeps its high-water mark, so no id is handed out twice.
PRAGMA defer_foreign_keys = ON;
CREATE TEMP TABLE old_messages AS SELECT * FROM thread_messages;
CREATE TEMP TABLE old_message_sequence AS
    SELECT seq FROM sqlite_sequence WHERE name = 'thread_messages';
DROP TABLE thread_messages;

CREATE TABLE thread_messages (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    thread_id       UUID NOT NULL REFERENCES messaging_threads (id),
    seq             bigint NOT NULL,
    sender_user_id  UUID NOT NULL REFERENCES user_profiles (id),
    sender_org_id   UUID NOT NULL REFERENCES organizations (id),
    kind            text NOT NULL DEFAULT 'text'
                    CHECK (kind IN ('text', 'location', 'system', 'attachment', 'change')),
    body_ciphertext BLOB NOT NULL,
    body_nonce      BLOB NOT NULL,
    key_version     integer NOT NULL REFERENCES message_encryption_keys (version),
    client_msg_id   text NOT NULL CHECK (length(client_msg_id) BETWEEN 1 AND 100),
    reply_to        bigint REFERENCES thread_messages (id),
    metadata        JSONB NOT NULL DEFAULT '{}',
    created_at      TIMESTAMPTZ NOT NULL,
    edited_at       TIMESTAMPTZ,
    deleted_at      TIMESTAMPTZ,
    requires_ack    BOOLEAN NOT NULL DEFAULT 0,
    CONSTRAINT thread_messages_seq_unique UNIQUE (thread_id, seq),
    CONSTRAINT thread_messages_client_msg_id_unique
        UNIQUE (thread_id, sender_user_id, client_msg_id),
    CONSTRAINT change_requires_ack CHECK (kind <> 'change' OR requires_ack)
);
CREATE INDEX thread_messages_by_sender ON thread_messages (thread_id, sender_user_id, seq);

INSERT INTO thread_messages
    (id, thread_id, seq, sender_user_id, sender_org_id, kind, body_ciphertext, body_nonce,
     key_version, client_msg_id, reply_to, metadata, created_at, edited_at, deleted_at)
SELECT id, thread_id, seq, sender_user_id, sender_org_id, kind, body_ciphertext, body_nonce,
       key_version, client_msg_id, reply_to, metadata, created_at, edited_at, deleted_at
FROM old_messages ORDER BY id;
DELETE FROM sqlite_sequence WHERE name = 'thread_messages';
INSERT INTO sqlite_sequence (name, seq)
SELECT 'thread_messages', max(seq) FROM (
    SELECT seq FROM old_message_sequence UNION ALL SELECT max(id) FROM thread_messages
) HAVING max(seq) IS NOT NULL;
DROP TABLE old_messages;
DROP TABLE old_message_sequence;

-- Where email goes: the token's `email` claim, kept like the name.
ALTER TABLE user_profiles ADD COLUMN email text;

-- Preferences (0001 made the table; nothing wrote it): webhooks are a channel too. Quiet hours
-- are 'HH:MM' text, as in PostgreSQL since its 0006.
ALTER TABLE vendor_notification_preferences ADD COLUMN webhook_enabled BOOLEAN NOT NULL DEFAULT 1;

-- How a group reminds the organizations that have not acknowledged (hub.notifications.policy;
-- NULL: the defaults). Its owner sets it.
ALTER TABLE vendor_connection_groups ADD COLUMN escalation_policy JSONB;

CREATE TABLE thread_mutes (
    thread_id UUID NOT NULL REFERENCES messaging_threads (id),
    user_id   UUID NOT NULL REFERENCES user_profiles (id),
    muted_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (thread_id, user_id)
);

-- One organization's confirmation of a message that asked for it: the first of its users to
-- acknowledge speaks for it.
CREATE TABLE message_acknowledgements (
    message_id      bigint NOT NULL REFERENCES thread_messages (id),
    organization_id UUID NOT NULL REFERENCES organizations (id),
    user_id         UUID NOT NULL REFERENCES user_profiles (id),
    acknowledged_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (message_id, organization_id)
);

-- What each organization owes: one row per (message, organization) asked to acknowledge,
-- written with the message. The escalation actor works down `next_at`; `targets` are the
-- organization's users the message mentioned (none: all its users).
CREATE TABLE ack_requests (
    message_id      bigint NOT NULL REFERENCES thread_messages (id),
    organization_id UUID NOT NULL REFERENCES organizations (id),
    group_id        UUID NOT NULL REFERENCES vendor_connection_groups (id),
    thread_id       UUID NOT NULL REFERENCES messaging_threads (id),
    targets         JSONB NOT NULL DEFAULT '[]',
    state           text NOT NULL CHECK (state IN ('pending', 'acknowledged', 'expired')),
    reminders_sent  integer NOT NULL DEFAULT 0,
    next_at         TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (message_id, organization_id)
);
CREATE INDEX ack_requests_due ON ack_requests (next_at) WHERE state = 'pending';

-- A user's notifications: the in-app inbox, and what email deliveries are about.
CREATE TABLE user_notifications (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    UUID NOT NULL REFERENCES user_profiles (id),
    group_id   UUID NOT NULL REFERENCES vendor_connection_groups (id),
    thread_id  UUID NOT NULL REFERENCES messaging_threads (id),
    message_id bigint NOT NULL REFERENCES thread_messages (id),
    seq        bigint NOT NULL,
    reason     text NOT NULL CHECK (reason IN ('mention', 'org_mention', 'ack_request',
                                               'reminder', 'escalation')),
    urgent     BOOLEAN NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    read_at    TIMESTAMPTZ
);
CREATE INDEX user_notifications_by_user ON user_notifications (user_id, id);
CREATE INDEX user_notifications_unread ON user_notifications (user_id) WHERE read_at IS NULL;

-- An organization's webhook receivers. The secret is sealed with the data keys: the hub needs
-- it back to sign every delivery.
CREATE TABLE organization_webhooks (
    id              UUID PRIMARY KEY,
    organization_id UUID NOT NULL REFERENCES organizations (id),
    url             text NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    events          JSONB NOT NULL,
    secret_sealed   text NOT NULL,
    created_by      UUID NOT NULL REFERENCES user_profiles (id),
    created_at      TIMESTAMPTZ NOT NULL,
    deleted_at      TIMESTAMPTZ
);
CREATE INDEX webhooks_by_org ON organization_webhooks (organization_id) WHERE deleted_at IS NULL;

-- The outbox: every delivery a message (or a reminder) causes, written in the transaction that
-- causes it, and worked by the dispatcher at least once. `idempotency_key` is what a receiver
-- deduplicates on.
CREATE TABLE notification_deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    channel         text NOT NULL CHECK (channel IN ('in_app', 'email', 'webhook')),
    notification_id bigint REFERENCES user_notifications (id),
    webhook_id      UUID REFERENCES organization_webhooks (id),
    event           text NOT NULL,
    payload         JSONB NOT NULL DEFAULT '{}',
    idempotency_key text NOT NULL UNIQUE,
    urgent          BOOLEAN NOT NULL DEFAULT 0,
    status          text NOT NULL CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    last_error      text,
    created_at      TIMESTAMPTZ NOT NULL,
    delivered_at    TIMESTAMPTZ,
    CHECK ((channel = 'webhook') = (webhook_id IS NOT NULL)),
    CHECK (channel = 'webhook' OR notification_id IS NOT NULL)
);
CREATE INDEX deliveries_due ON notification_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_dead ON notification_deliveries (id) WHERE status = 'dead';
