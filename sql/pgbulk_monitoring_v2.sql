-- migrate:up
-- pgbulk_stale_jobs: what the sweep would act on, and why (a running job is
-- judged on its current attempt; liveness is its lock alone).
CREATE OR REPLACE VIEW pgbulk_stale_jobs AS
SELECT j.id, j.status, j.model, j.started_at, j.params->>'atomic' AS atomic,
       CASE
         WHEN j.status = 'running' AND NOT pgbulk_job_alive_v2(j.id) THEN 'worker died'
         WHEN j.status = 'running' THEN 'running too long'
         WHEN j.run_mode = 'sync' THEN 'launching process died'
         ELSE 'queued task gone'
       END AS reason
FROM pgbulk_job j
LEFT JOIN procrastinate_jobs pj ON pj.id = j.procrastinate_job_id
WHERE (j.status = 'running' AND NOT pgbulk_job_alive_v2(j.id))
   OR (j.status = 'running'
       AND coalesce(j.attempt_started_at, j.started_at) < now() - interval '3600 seconds')
   OR (j.status = 'queued' AND j.run_mode = 'async'
       AND (pj.id IS NULL OR pj.status IN ('cancelled', 'aborted', 'failed', 'succeeded')))
   OR (j.status = 'queued' AND j.run_mode = 'sync' AND NOT pgbulk_job_alive_v2(j.id)
       AND j.created_at < now() - interval '60 seconds');
COMMENT ON VIEW pgbulk_stale_jobs IS
    'Jobs whose worker died, whose attempt runs too long (default 1 h), or that can no longer start.';

-- migrate:down
-- (the previous definition is restored by re-running pgbulk_monitoring_v1.sql)
SELECT 1;
