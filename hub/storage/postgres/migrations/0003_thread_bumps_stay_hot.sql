-- Every append bumps its thread's row (last_seq, last_message_at, updated_at). With
-- last_message_at in an index, PostgreSQL could not update the row in place (a HOT update): each
-- bump wrote new entries into both of the table's indexes and left a dead row version behind.
-- Measured with the storage bench at 10,000 messages/s: 100 threads grew to 760 kB and 25,600
-- dead versions in seconds, and the append's thread lookup (by primary key, through those dead
-- entries) took longer than the insert of the messages themselves. A group holds tens of
-- threads, so listing them by group and sorting them in the query costs nothing noticeable;
-- the room left in each page lets the bumps stay on their page.
DROP INDEX threads_by_group_activity;
CREATE INDEX threads_by_group ON messaging_threads (group_id);
ALTER TABLE messaging_threads SET (fillfactor = 50);
