-- A client_msg_id is idempotent per (sender, thread), not per sender: a client that reuses its
-- ids across threads (a counter per thread, say) must get a new message in the second thread,
-- not the first thread's message back as a "duplicate" with nothing stored. The new key leads
-- with thread_id like the table's other indexes; every lookup gives all three columns.
ALTER TABLE thread_messages DROP CONSTRAINT thread_messages_client_msg_id_unique;
ALTER TABLE thread_messages ADD CONSTRAINT thread_messages_client_msg_id_unique
    UNIQUE (thread_id, sender_user_id, client_msg_id);
