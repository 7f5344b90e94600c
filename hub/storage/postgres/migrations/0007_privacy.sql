-- Privacy and retention (issue 22): a message's edits and its deletion are changes numbered per
-- thread (change_no, from messaging_threads.last_change), so a client that was away asks for
-- the changes since the last one it saw; a deleted message keeps its row and seq (a tombstone)
-- with its ciphertext overwritten. A group's retention is anchored to its wedding date, and a
-- legal hold stops both archiving and purging.
ALTER TABLE thread_messages ADD COLUMN deleted_by uuid REFERENCES user_profiles (id);
ALTER TABLE thread_messages ADD COLUMN change_no bigint NOT NULL DEFAULT 0;
CREATE INDEX thread_messages_changes ON thread_messages (thread_id, change_no) WHERE change_no > 0;
ALTER TABLE messaging_threads ADD COLUMN last_change bigint NOT NULL DEFAULT 0;

ALTER TABLE vendor_connection_groups ADD COLUMN retention_days_after_wedding integer NOT NULL
    DEFAULT 365 CHECK (retention_days_after_wedding BETWEEN 1 AND 36500);
ALTER TABLE vendor_connection_groups ADD COLUMN archive_days_after_wedding integer NOT NULL
    DEFAULT 30 CHECK (archive_days_after_wedding BETWEEN 0 AND 36500);
ALTER TABLE vendor_connection_groups ADD COLUMN legal_hold_at timestamptz;
ALTER TABLE vendor_connection_groups ADD COLUMN legal_hold_by uuid REFERENCES user_profiles (id);
ALTER TABLE vendor_connection_groups ADD COLUMN legal_hold_reason text
    CHECK (legal_hold_reason IS NULL OR length(legal_hold_reason) <= 500);
ALTER TABLE vendor_connection_groups ADD COLUMN purged_at timestamptz;
