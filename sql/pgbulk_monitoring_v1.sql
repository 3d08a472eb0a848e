-- migrate:up
-- pgbulk_active_jobs: jobs not finished yet, with live progress and liveness.
CREATE OR REPLACE VIEW pgbulk_active_jobs AS
SELECT j.id, j.kind, j.model, j.status, j.user_id, j.total,
       greatest(j.done, coalesce(p.done, 0)) AS done,
       greatest(j.failed_count, coalesce(p.failed_count, 0)) AS failed_count,
       round(100.0 * greatest(j.done, coalesce(p.done, 0)) / nullif(j.total, 0), 1) AS percent,
       j.created_at, j.started_at, now() - j.started_at AS running_for,
       j.cancel_requested, j.procrastinate_job_id, pj.worker_id,
       CASE WHEN j.status = 'running' THEN pgbulk_job_alive(j.id) END AS alive
FROM pgbulk_job j
LEFT JOIN pgbulk_progress p ON p.job_id = j.id
LEFT JOIN procrastinate_jobs pj ON pj.id = j.procrastinate_job_id
WHERE j.status IN ('queued', 'running');
COMMENT ON VIEW pgbulk_active_jobs IS 'pgbulk jobs queued or running, with progress and liveness.';

-- pgbulk_lock_summary: who holds how many records of which model.
CREATE OR REPLACE VIEW pgbulk_lock_summary AS
SELECT r.job_id, j.status, j.user_id, r.model,
       count(*) FILTER (WHERE r.is_target) AS targets,
       count(*) FILTER (WHERE NOT r.is_target) AS descendants,
       bool_and(r.exclusive) AS exclusive, min(r.created_at) AS since
FROM pgbulk_reservation r LEFT JOIN pgbulk_job j ON j.id = r.job_id
GROUP BY r.job_id, j.status, j.user_id, r.model;
COMMENT ON VIEW pgbulk_lock_summary IS 'Reserved records per job and model.';

-- pgbulk_stale_jobs: what the sweep would act on, and why.
CREATE OR REPLACE VIEW pgbulk_stale_jobs AS
SELECT j.id, j.status, j.model, j.started_at, j.params->>'atomic' AS atomic,
       CASE
         WHEN j.status = 'running' AND NOT pgbulk_job_alive(j.id) THEN 'worker died'
         WHEN j.status = 'running' THEN 'running too long'
         ELSE 'queued task gone'
       END AS reason
FROM pgbulk_job j
LEFT JOIN procrastinate_jobs pj ON pj.id = j.procrastinate_job_id
WHERE (j.status = 'running' AND NOT pgbulk_job_alive(j.id))
   OR (j.status = 'running' AND j.started_at < now() - interval '3600 seconds')
   OR (j.status = 'queued' AND j.run_mode = 'async'
       AND (pj.id IS NULL OR pj.status IN ('cancelled', 'aborted', 'failed', 'succeeded')));
COMMENT ON VIEW pgbulk_stale_jobs IS
    'Jobs whose worker died, that run too long (default 1 h), or whose queued task is gone.';

-- migrate:down
DROP VIEW IF EXISTS pgbulk_stale_jobs;
DROP VIEW IF EXISTS pgbulk_lock_summary;
DROP VIEW IF EXISTS pgbulk_active_jobs;
