-- migrate:up
-- pgbulk_stale_jobs_v1: what the sweep would act on with the given ages, and why
-- (a running job is judged on its current attempt; liveness is its lock alone).
-- A view cannot read the project's settings: pgbulk_status passes them here. The
-- defaults repeat pgbulk's (MAX_TASK_DURATION, SYNC_START_TIMEOUT).
CREATE OR REPLACE FUNCTION pgbulk_stale_jobs_v1(
    max_task_duration interval DEFAULT interval '3600 seconds',
    sync_start_timeout interval DEFAULT interval '60 seconds'
) RETURNS TABLE (
    id uuid, status text, model text, started_at timestamptz, atomic text, reason text,
    attempt_running_for interval
) LANGUAGE sql STABLE AS $$
    SELECT j.id, j.status::text, j.model::text, j.started_at, j.params->>'atomic',
           CASE
             WHEN j.status = 'running' AND NOT pgbulk_job_alive_v2(j.id) THEN 'worker died'
             WHEN j.status = 'running' THEN 'running too long'
             WHEN j.run_mode = 'sync' THEN 'launching process died'
             ELSE 'queued task gone'
           END,
           CASE WHEN j.status = 'running'
                THEN now() - coalesce(j.attempt_started_at, j.started_at) END
    FROM pgbulk_job j
    LEFT JOIN procrastinate_jobs pj ON pj.id = j.procrastinate_job_id
    WHERE (j.status = 'running' AND NOT pgbulk_job_alive_v2(j.id))
       OR (j.status = 'running'
           AND coalesce(j.attempt_started_at, j.started_at) < now() - max_task_duration)
       OR (j.status = 'queued' AND j.run_mode = 'async'
           AND (pj.id IS NULL OR pj.status IN ('cancelled', 'aborted', 'failed', 'succeeded')))
       OR (j.status = 'queued' AND j.run_mode = 'sync' AND NOT pgbulk_job_alive_v2(j.id)
           AND j.created_at < now() - sync_start_timeout)
$$;
COMMENT ON FUNCTION pgbulk_stale_jobs_v1(interval, interval) IS
    'Jobs whose worker died, whose attempt runs past max_task_duration, or that can no longer start.';

-- pgbulk_stale_jobs: the same with the default ages, for psql (its columns as
-- before, plus attempt_running_for).
DROP VIEW IF EXISTS pgbulk_stale_jobs;
CREATE VIEW pgbulk_stale_jobs AS SELECT * FROM pgbulk_stale_jobs_v1();
COMMENT ON VIEW pgbulk_stale_jobs IS
    'pgbulk_stale_jobs_v1() with the default ages (1 h, 60 s); pgbulk_status uses the settings.';

-- migrate:down
-- (the previous view is restored by re-running pgbulk_monitoring_v2.sql)
DROP VIEW IF EXISTS pgbulk_stale_jobs;
DROP FUNCTION IF EXISTS pgbulk_stale_jobs_v1(interval, interval);
