-- Notifications, acknowledgements and escalation (issue 21; docs/notifications.md).

-- The kind `change` (a change of plan, which always asks for an acknowledgement).
ALTER TABLE thread_messages DROP CONSTRAINT thread_messages_kind_check;
ALTER TABLE thread_messages ADD CONSTRAINT thread_messages_kind_check
    CHECK (kind IN ('text', 'location', 'system', 'attachment', 'change'));
ALTER TABLE thread_messages ADD COLUMN requires_ack boolean NOT NULL DEFAULT false;
ALTER TABLE thread_messages ADD CONSTRAINT change_requires_ack
    CHECK (kind <> 'change' OR requires_ack);

-- Where email goes: the token's `email` claim, kept like the name.
ALTER TABLE user_profiles ADD COLUMN email text;

-- Preferences (0001 made the table; nothing wrote it): webhooks are a channel too, and quiet
-- hours are 'HH:MM' text as in SQLite, so both engines give the same values back.
ALTER TABLE vendor_notification_preferences ADD COLUMN webhook_enabled boolean NOT NULL DEFAULT true;
ALTER TABLE vendor_notification_preferences
    ALTER COLUMN quiet_hours_start TYPE text USING to_char(quiet_hours_start, 'HH24:MI'),
    ALTER COLUMN quiet_hours_end TYPE text USING to_char(quiet_hours_end, 'HH24:MI');

-- How a group reminds the organizations that have not acknowledged (hub.notifications.policy;
-- NULL: the defaults). Its owner sets it.
ALTER TABLE vendor_connection_groups ADD COLUMN escalation_policy jsonb;

CREATE TABLE thread_mutes (
    thread_id uuid NOT NULL REFERENCES messaging_threads (id),
    user_id   uuid NOT NULL REFERENCES user_profiles (id),
    muted_at  timestamptz NOT NULL,
    PRIMARY KEY (thread_id, user_id)
);

-- One organization's confirmation of a message that asked for it: the first of its users to
-- acknowledge speaks for it.
CREATE TABLE message_acknowledgements (
    message_id      bigint NOT NULL REFERENCES thread_messages (id),
    organization_id uuid NOT NULL REFERENCES organizations (id),
    user_id         uuid NOT NULL REFERENCES user_profiles (id),
    acknowledged_at timestamptz NOT NULL,
    PRIMARY KEY (message_id, organization_id)
);

-- What each organization owes: one row per (message, organization) asked to acknowledge,
-- written with the message. The escalation actor works down `next_at`; `targets` are the
-- organization's users the message mentioned (none: all its users).
CREATE TABLE ack_requests (
    message_id      bigint NOT NULL REFERENCES thread_messages (id),
    organization_id uuid NOT NULL REFERENCES organizations (id),
    group_id        uuid NOT NULL REFERENCES vendor_connection_groups (id),
    thread_id       uuid NOT NULL REFERENCES messaging_threads (id),
    targets         jsonb NOT NULL DEFAULT '[]',
    state           text NOT NULL CHECK (state IN ('pending', 'acknowledged', 'expired')),
    reminders_sent  integer NOT NULL DEFAULT 0,
    next_at         timestamptz,
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (message_id, organization_id)
);
CREATE INDEX ack_requests_due ON ack_requests (next_at) WHERE state = 'pending';

-- A user's notifications: the in-app inbox, and what email deliveries are about.
CREATE TABLE user_notifications (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES user_profiles (id),
    group_id   uuid NOT NULL REFERENCES vendor_connection_groups (id),
    thread_id  uuid NOT NULL REFERENCES messaging_threads (id),
    message_id bigint NOT NULL REFERENCES thread_messages (id),
    seq        bigint NOT NULL,
    reason     text NOT NULL CHECK (reason IN ('mention', 'org_mention', 'ack_request',
                                               'reminder', 'escalation')),
    urgent     boolean NOT NULL,
    created_at timestamptz NOT NULL,
    read_at    timestamptz
);
CREATE INDEX user_notifications_by_user ON user_notifications (user_id, id);
CREATE INDEX user_notifications_unread ON user_notifications (user_id) WHERE read_at IS NULL;

-- An organization's webhook receivers. The secret is sealed with the data keys: the hub needs
-- it back to sign every delivery.
CREATE TABLE organization_webhooks (
    id              uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id),
    url             text NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    events          jsonb NOT NULL,
    secret_sealed   text NOT NULL,
    created_by      uuid NOT NULL REFERENCES user_profiles (id),
    created_at      timestamptz NOT NULL,
    deleted_at      timestamptz
);
CREATE INDEX webhooks_by_org ON organization_webhooks (organization_id) WHERE deleted_at IS NULL;

-- The outbox: every delivery a message (or a reminder) causes, written in the transaction that
-- causes it, and worked by the dispatcher at least once. `idempotency_key` is what a receiver
-- deduplicates on.
CREATE TABLE notification_deliveries (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel         text NOT NULL CHECK (channel IN ('in_app', 'email', 'webhook')),
    notification_id bigint REFERENCES user_notifications (id),
    webhook_id      uuid REFERENCES organization_webhooks (id),
    event           text NOT NULL,
    payload         jsonb NOT NULL DEFAULT '{}',
    idempotency_key text NOT NULL UNIQUE,
    urgent          boolean NOT NULL DEFAULT false,
    status          text NOT NULL CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    last_error      text,
    created_at      timestamptz NOT NULL,
    delivered_at    timestamptz,
    CHECK ((channel = 'webhook') = (webhook_id IS NOT NULL)),
    CHECK (channel = 'webhook' OR notification_id IS NOT NULL)
);
CREATE INDEX deliveries_due ON notification_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_dead ON notification_deliveries (id) WHERE status = 'dead';
