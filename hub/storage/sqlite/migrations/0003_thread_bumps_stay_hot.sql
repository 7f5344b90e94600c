-- The same index as PostgreSQL's (see its 0003): threads are found by group and sorted in the
-- query, so a thread's bump on every append no longer rewrites an index entry too.
DROP INDEX threads_by_group_activity;
CREATE INDEX threads_by_group ON messaging_threads (group_id);
