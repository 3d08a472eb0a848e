-- migrate:up
-- pgbulk_progress is UNLOGGED: progress ticks are frequent and disposable.
-- After a crash it is empty and progress is rebuilt from pgbulk_job.
ALTER TABLE pgbulk_progress SET UNLOGGED;
COMMENT ON TABLE pgbulk_progress IS
    'Live progress per job (UNLOGGED: emptied after a crash, rebuilt from pgbulk_job).';

-- migrate:down
ALTER TABLE pgbulk_progress SET LOGGED;
