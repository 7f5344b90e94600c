-- Unread counts are computed as (thread last_seq - the reader's last_read_seq) minus the
-- reader's own messages after that mark: seqs are gap-free, so only the reader's own messages
-- need counting, and this index answers that from the index alone instead of visiting every
-- message after the mark (which grew with the thread and dominated thread and list reads).
CREATE INDEX thread_messages_by_sender ON thread_messages (thread_id, sender_user_id, seq);
