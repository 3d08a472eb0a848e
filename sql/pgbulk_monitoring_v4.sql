-- migrate:up
-- pgbulk_active_jobs: jobs not finished yet, with live progress and liveness. The
-- records done are those committed plus those the live runners have processed in
-- their open transactions (pgbulk_runner_progress), as the job pages count them:
-- an atomic job read 0 until it ended.
CREATE OR REPLACE VIEW pgbulk_active_jobs AS
SELECT j.id, j.kind, j.model, j.status, j.user_id, j.total,
       j.done + coalesce(f.done, 0) AS done,
       j.failed_count + coalesce(f.failed_count, 0) AS failed_count,
       round(100.0 * (j.done + coalesce(f.done, 0)) / nullif(j.total, 0), 1) AS percent,
       j.created_at, j.started_at, now() - j.started_at AS running_for,
       j.cancel_requested, j.procrastinate_job_id, pj.worker_id,
       CASE WHEN j.status = 'running' THEN pgbulk_job_alive(j.id) END AS alive
FROM pgbulk_job j
LEFT JOIN LATERAL (
    SELECT sum(p.done)::bigint AS done, sum(p.failed_count)::bigint AS failed_count
    FROM pgbulk_runner_progress p
    WHERE p.job_id = j.id AND j.status = 'running'
      AND pgbulk_runner_lock_key(p.job_id, p.runner) = ANY(pgbulk_held_lock_keys())
) f ON true
LEFT JOIN procrastinate_jobs pj ON pj.id = j.procrastinate_job_id
WHERE j.status IN ('queued', 'running');
COMMENT ON VIEW pgbulk_active_jobs IS 'pgbulk jobs queued or running, with progress and liveness.';

-- migrate:down
-- pgbulk_active_jobs as pgbulk_monitoring_v1.sql defined it.
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
