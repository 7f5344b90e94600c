-- Initial schema of the Vendor Connections Hub (SQLite).

CREATE TABLE organizations (
    id              UUID PRIMARY KEY,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    vendor_type     text NOT NULL DEFAULT 'other',
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);

CREATE TABLE user_profiles (
    id              UUID PRIMARY KEY,
    organization_id UUID NOT NULL REFERENCES organizations (id),
    username        text NOT NULL,
    display_name    text NOT NULL,
    role            text NOT NULL CHECK (role IN ('owner', 'admin', 'manager', 'vendor')),
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    last_seen_at    TIMESTAMPTZ
);
CREATE INDEX user_profiles_by_organization ON user_profiles (organization_id);

CREATE TABLE clients (
    id               UUID PRIMARY KEY,
    organization_id  UUID NOT NULL REFERENCES organizations (id),
    partner_one_name text NOT NULL,
    partner_two_name text,
    email            text,
    phone            text,
    wedding_date     DATE,
    venue_name       text,
    venue_address    text,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX clients_by_organization ON clients (organization_id);

CREATE TABLE vendor_connection_groups (
    id                    UUID PRIMARY KEY,
    owner_organization_id UUID NOT NULL REFERENCES organizations (id),
    client_id             UUID REFERENCES clients (id),
    name                  text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description           text,
    wedding_date          DATE,
    status                text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'archived')),
    settings              JSONB NOT NULL DEFAULT '{}',
    created_by            UUID NOT NULL REFERENCES user_profiles (id),
    created_at            TIMESTAMPTZ NOT NULL,
    updated_at            TIMESTAMPTZ NOT NULL,
    archived_at           TIMESTAMPTZ
);
CREATE INDEX groups_by_owner ON vendor_connection_groups (owner_organization_id, status);
CREATE INDEX groups_by_wedding_date ON vendor_connection_groups (wedding_date);

CREATE TABLE vendor_connections (
    group_id        UUID NOT NULL REFERENCES vendor_connection_groups (id),
    organization_id UUID NOT NULL REFERENCES organizations (id),
    vendor_type     text NOT NULL DEFAULT 'other',
    role            text NOT NULL CHECK (role IN ('owner', 'admin', 'manager', 'vendor')),
    status          text NOT NULL CHECK (status IN ('invited', 'active', 'declined', 'removed')),
    invited_by      UUID REFERENCES user_profiles (id),
    invited_at      TIMESTAMPTZ NOT NULL,
    joined_at       TIMESTAMPTZ,
    updated_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (group_id, organization_id)
);
-- "Groups of an organization": every access check and the group list start here.
CREATE INDEX vendor_connections_by_organization ON vendor_connections (organization_id, status);

CREATE TABLE messaging_threads (
    id              UUID PRIMARY KEY,
    group_id        UUID NOT NULL REFERENCES vendor_connection_groups (id),
    title           text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    thread_type     text NOT NULL DEFAULT 'general'
                    CHECK (thread_type IN ('general', 'timeline', 'logistics', 'emergency')),
    priority        text NOT NULL DEFAULT 'normal'
                    CHECK (priority IN ('urgent', 'high', 'normal', 'low')),
    status          text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved', 'archived')),
    created_by      UUID NOT NULL REFERENCES user_profiles (id),
    last_seq        bigint NOT NULL DEFAULT 0,
    last_message_at TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    archived_at     TIMESTAMPTZ
);
CREATE INDEX threads_by_group_activity ON messaging_threads (group_id, last_message_at DESC);

CREATE TABLE message_encryption_keys (
    version     integer PRIMARY KEY,
    wrapped_key BLOB NOT NULL,
    algorithm   text NOT NULL DEFAULT 'AES-256-GCM',
    status      text NOT NULL CHECK (status IN ('active', 'retired')),
    created_at  TIMESTAMPTZ NOT NULL,
    retired_at  TIMESTAMPTZ
);
CREATE UNIQUE INDEX one_active_encryption_key ON message_encryption_keys (status)
    WHERE status = 'active';

CREATE TABLE thread_messages (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    thread_id       UUID NOT NULL REFERENCES messaging_threads (id),
    seq             bigint NOT NULL,
    sender_user_id  UUID NOT NULL REFERENCES user_profiles (id),
    sender_org_id   UUID NOT NULL REFERENCES organizations (id),
    kind            text NOT NULL DEFAULT 'text'
                    CHECK (kind IN ('text', 'location', 'system', 'attachment')),
    body_ciphertext BLOB NOT NULL,
    body_nonce      BLOB NOT NULL,
    key_version     integer NOT NULL REFERENCES message_encryption_keys (version),
    client_msg_id   text NOT NULL CHECK (length(client_msg_id) BETWEEN 1 AND 100),
    reply_to        bigint REFERENCES thread_messages (id),
    metadata        JSONB NOT NULL DEFAULT '{}',
    created_at      TIMESTAMPTZ NOT NULL,
    edited_at       TIMESTAMPTZ,
    deleted_at      TIMESTAMPTZ,
    CONSTRAINT thread_messages_seq_unique UNIQUE (thread_id, seq),
    CONSTRAINT thread_messages_client_msg_id_unique UNIQUE (sender_user_id, client_msg_id)
);

CREATE TABLE message_attachments (
    id               UUID PRIMARY KEY,
    thread_id        UUID NOT NULL REFERENCES messaging_threads (id),
    message_id       bigint REFERENCES thread_messages (id),
    uploader_user_id UUID NOT NULL REFERENCES user_profiles (id),
    filename         text NOT NULL CHECK (length(filename) BETWEEN 1 AND 255),
    content_type     text NOT NULL,
    size_bytes       bigint NOT NULL CHECK (size_bytes >= 0),
    sha256           text NOT NULL,
    storage_key      text NOT NULL UNIQUE,
    key_version      integer NOT NULL REFERENCES message_encryption_keys (version),
    nonce            BLOB NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX attachments_by_message ON message_attachments (message_id);
CREATE INDEX attachments_by_thread ON message_attachments (thread_id, created_at);

CREATE TABLE thread_presence (
    thread_id    UUID NOT NULL REFERENCES messaging_threads (id),
    user_id      UUID NOT NULL REFERENCES user_profiles (id),
    status       text NOT NULL CHECK (status IN ('online', 'away', 'busy', 'offline')),
    last_seen_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (thread_id, user_id)
);

CREATE TABLE message_read_receipts (
    thread_id     UUID NOT NULL REFERENCES messaging_threads (id),
    user_id       UUID NOT NULL REFERENCES user_profiles (id),
    last_read_seq bigint NOT NULL CHECK (last_read_seq >= 0),
    read_at       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (thread_id, user_id)
);
CREATE INDEX read_receipts_by_user ON message_read_receipts (user_id);

CREATE TABLE vendor_notification_preferences (
    user_id           UUID PRIMARY KEY REFERENCES user_profiles (id),
    email_enabled     BOOLEAN NOT NULL DEFAULT 1,
    sms_enabled       BOOLEAN NOT NULL DEFAULT 0,
    push_enabled      BOOLEAN NOT NULL DEFAULT 1,
    in_app_enabled    BOOLEAN NOT NULL DEFAULT 1,
    urgent_only       BOOLEAN NOT NULL DEFAULT 0,
    quiet_hours_start TEXT,
    quiet_hours_end   TEXT,
    time_zone         text NOT NULL DEFAULT 'UTC',
    mention_alerts    BOOLEAN NOT NULL DEFAULT 1,
    consent_at        TIMESTAMPTZ,
    updated_at        TIMESTAMPTZ NOT NULL
);

-- No foreign keys: the audit trail must outlive whatever it talks about.
CREATE TABLE vendor_communication_audit (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    at            TIMESTAMPTZ NOT NULL,
    actor_user_id UUID,
    actor_org_id  UUID,
    action        text NOT NULL,
    target_type   text NOT NULL,
    target_id     text,
    group_id      UUID,
    ip            text,
    user_agent    text,
    details       JSONB NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_by_group_time ON vendor_communication_audit (group_id, at);
CREATE INDEX audit_by_time ON vendor_communication_audit (at);
