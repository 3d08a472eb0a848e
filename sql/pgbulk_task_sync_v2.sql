-- migrate:up
-- pgbulk_on_task_end_v2: when a Procrastinate task ends (or is deleted) while
-- its pgbulk job is still queued, or running atomically, and nobody holds the
-- job's liveness lock, the job can never finish: end it honestly (cancelled if
-- somebody asked it to stop, else failed; an atomic job changed nothing), give
-- it a new run token and release its reservations. A running chunked job is
-- left to the sweep, which resumes it. Tiny, and never raises (it runs inside
-- Procrastinate's own statements).
CREATE OR REPLACE FUNCTION pgbulk_on_task_end_v2() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    task_id bigint := CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END;
    task_status text := CASE WHEN TG_OP = 'DELETE' THEN 'deleted' ELSE NEW.status::text END;
    ended uuid;
BEGIN
    BEGIN
        UPDATE pgbulk_job
        SET status = CASE WHEN cancel_requested OR (task_status = 'cancelled' AND status = 'queued')
                          THEN 'cancelled' ELSE 'failed' END,
            finished_at = now(), attempt = attempt + 1,
            done = CASE WHEN coalesce((params->>'atomic')::boolean, true) THEN 0 ELSE done END,
            message = CASE WHEN cancel_requested THEN 'Cancelled: '
                           ELSE 'Its task ended (' || task_status || ') without finishing the job: ' END
                      || CASE WHEN coalesce((params->>'atomic')::boolean, true) OR done = 0
                              THEN 'nothing was changed.'
                              ELSE to_char(done, 'FM999,999,999,990') || ' of ' || to_char(total, 'FM999,999,999,990') || ' records were changed, the rest were not.' END
        WHERE procrastinate_job_id = task_id
          AND (status = 'queued' OR (status = 'running'
               AND coalesce((params->>'atomic')::boolean, true)))
          AND NOT pgbulk_job_alive_v2(id)
        RETURNING id INTO ended;
        IF ended IS NOT NULL THEN
            DELETE FROM pgbulk_reservation WHERE job_id = ended;
        END IF;
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'pgbulk_on_task_end_v2: % (task %)', SQLERRM, task_id;
    END;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION pgbulk_on_task_end_v2() IS
    'Ends a pgbulk job whose Procrastinate task ended or vanished without finishing it (fenced).';

DROP TRIGGER IF EXISTS pgbulk_task_end ON procrastinate_jobs;
CREATE TRIGGER pgbulk_task_end
AFTER UPDATE OF status ON procrastinate_jobs
FOR EACH ROW WHEN (NEW.status IN ('succeeded', 'failed', 'cancelled', 'aborted'))
EXECUTE FUNCTION pgbulk_on_task_end_v2();
COMMENT ON TRIGGER pgbulk_task_end ON procrastinate_jobs IS
    'Keeps pgbulk jobs in step with the end of their Procrastinate task.';

DROP TRIGGER IF EXISTS pgbulk_task_deleted ON procrastinate_jobs;
CREATE TRIGGER pgbulk_task_deleted
AFTER DELETE ON procrastinate_jobs
FOR EACH ROW EXECUTE FUNCTION pgbulk_on_task_end_v2();
COMMENT ON TRIGGER pgbulk_task_deleted ON procrastinate_jobs IS
    'Keeps pgbulk jobs in step with the deletion of their Procrastinate task.';

-- migrate:down
DROP TRIGGER IF EXISTS pgbulk_task_deleted ON procrastinate_jobs;
DROP TRIGGER IF EXISTS pgbulk_task_end ON procrastinate_jobs;
CREATE TRIGGER pgbulk_task_end
AFTER UPDATE OF status ON procrastinate_jobs
FOR EACH ROW WHEN (NEW.status IN ('succeeded', 'failed', 'cancelled', 'aborted'))
EXECUTE FUNCTION pgbulk_on_task_end();
CREATE TRIGGER pgbulk_task_deleted
AFTER DELETE ON procrastinate_jobs
FOR EACH ROW EXECUTE FUNCTION pgbulk_on_task_end();
DROP FUNCTION IF EXISTS pgbulk_on_task_end_v2();
