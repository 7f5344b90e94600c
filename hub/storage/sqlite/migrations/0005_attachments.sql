-- Attachments (issue 20). Nothing ever wrote the table 0001 made, so it is made again in the
-- shape uploads need: the uploader's organization (quota, isolation), the image's size and its
-- thumbnail's blob, and no nonce (each sealed chunk carries its own; hub.attachments.chunks).
-- A row is written only after its blob is complete, so no row names a missing blob; a blob no
-- row names is a stray the sweep collects (hub.attachments.sweeper).
DROP TABLE message_attachments;
CREATE TABLE message_attachments (
    id               UUID PRIMARY KEY,
    thread_id        UUID NOT NULL REFERENCES messaging_threads (id),
    message_id       bigint REFERENCES thread_messages (id),
    uploader_user_id UUID NOT NULL REFERENCES user_profiles (id),
    uploader_org_id  UUID NOT NULL REFERENCES organizations (id),
    -- The display name, sealed like a message body (hub.attachments.names): names say a lot.
    filename_sealed  text NOT NULL,
    content_type     text NOT NULL,
    size_bytes       bigint NOT NULL CHECK (size_bytes >= 0),
    sha256           text NOT NULL CHECK (length(sha256) = 64),
    storage_key      text NOT NULL UNIQUE,
    key_version      integer NOT NULL REFERENCES message_encryption_keys (version),
    width            integer,
    height           integer,
    thumbnail_key    text UNIQUE,
    thumbnail_size   bigint,
    created_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX attachments_by_message ON message_attachments (message_id);
CREATE INDEX attachments_by_thread ON message_attachments (thread_id, created_at);
-- The quota's sum, and the orphan sweep's search for uploads never attached.
CREATE INDEX attachments_by_org ON message_attachments (uploader_org_id);
CREATE INDEX attachments_unattached ON message_attachments (created_at) WHERE message_id IS NULL;
