-- migrate:up
-- A job's undo link lets go when the job it points at is deleted (by the SQL sweep
-- past JOB_RETENTION too, which knows nothing of Django's on_delete=SET_NULL).
DO $$
DECLARE name text;
BEGIN
    SELECT c.conname INTO name FROM pg_constraint c
    JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey)
    WHERE c.conrelid = 'pgbulk_job'::regclass AND c.contype = 'f' AND a.attname = 'undo_of_id';
    EXECUTE format('ALTER TABLE pgbulk_job DROP CONSTRAINT %I', name);
END $$;
ALTER TABLE pgbulk_job ADD CONSTRAINT pgbulk_job_undo_of_fk FOREIGN KEY (undo_of_id)
    REFERENCES pgbulk_job (id) ON DELETE SET NULL DEFERRABLE INITIALLY DEFERRED;

-- The change log of deleted jobs goes with them, whoever deletes them (the log has
-- no foreign key: a per-row check would slow its inserts).
CREATE FUNCTION pgbulk_drop_change_log_v1() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM pgbulk_change WHERE job_id IN (SELECT id FROM gone);
    RETURN NULL;
END $$;
CREATE TRIGGER pgbulk_job_drop_change_log AFTER DELETE ON pgbulk_job
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT
    EXECUTE FUNCTION pgbulk_drop_change_log_v1();

COMMENT ON CONSTRAINT pgbulk_job_undo_of_fk ON pgbulk_job IS
    'An undo job''s link to the job it undoes; let go when that job is deleted.';
COMMENT ON FUNCTION pgbulk_drop_change_log_v1() IS
    'Trigger function: deletes the change log of deleted jobs.';
COMMENT ON TRIGGER pgbulk_job_drop_change_log ON pgbulk_job IS
    'Deleting jobs deletes their change log (pgbulk_change has no foreign key).';
COMMENT ON TABLE pgbulk_change IS
    'The change log: one row per record an update job changed, its changed fields '
    'before and after (jsonb), written in the transaction that changed it.';

-- migrate:down
DROP TRIGGER pgbulk_job_drop_change_log ON pgbulk_job;
DROP FUNCTION pgbulk_drop_change_log_v1();
ALTER TABLE pgbulk_job DROP CONSTRAINT pgbulk_job_undo_of_fk;
ALTER TABLE pgbulk_job ADD CONSTRAINT pgbulk_job_undo_of_fk FOREIGN KEY (undo_of_id)
    REFERENCES pgbulk_job (id) DEFERRABLE INITIALLY DEFERRED;
