-- A client_msg_id is idempotent per (sender, thread), not per sender (see PostgreSQL's 0004).
-- SQLite cannot drop a table's UNIQUE constraint, so thread_messages is made again with the
-- same columns in the same order and its rows copied back with their ids. Foreign keys stay on
-- inside a migration's transaction (PRAGMA foreign_keys cannot change there), and dropping a
-- table that rows still refer to fails: so the rows are first set aside in temporary tables,
-- the references to them (replies, attachments) cleared, and all of it put back once the new
-- table exists. AUTOINCREMENT keeps its high-water mark, so no id is ever handed out twice.
CREATE TEMP TABLE old_messages AS SELECT * FROM thread_messages;
CREATE TEMP TABLE old_message_sequence AS
    SELECT seq FROM sqlite_sequence WHERE name = 'thread_messages';
CREATE TEMP TABLE old_attachment_links AS
    SELECT id, message_id FROM message_attachments WHERE message_id IS NOT NULL;
UPDATE message_attachments SET message_id = NULL WHERE message_id IS NOT NULL;
UPDATE thread_messages SET reply_to = NULL WHERE reply_to IS NOT NULL;
DROP TABLE thread_messages;

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
    CONSTRAINT thread_messages_client_msg_id_unique
        UNIQUE (thread_id, sender_user_id, client_msg_id)
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
UPDATE message_attachments
SET message_id = (SELECT l.message_id FROM old_attachment_links AS l WHERE l.id = message_attachments.id)
WHERE id IN (SELECT id FROM old_attachment_links);

DROP TABLE old_messages;
DROP TABLE old_message_sequence;
DROP TABLE old_attachment_links;
