-- migrate:up
-- pgbulk_job_lock_held: whether some session holds the job's liveness lock.
-- A bigint advisory key shows in pg_locks as classid (high 32 bits), objid
-- (low 32 bits) and objsubid = 1.
CREATE OR REPLACE FUNCTION pgbulk_job_lock_held(job_id uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT 1 FROM pg_locks l
        WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND l.classid::bigint = (pgbulk_job_lock_key(job_id) >> 32) & 4294967295
          AND l.objid::bigint = pgbulk_job_lock_key(job_id) & 4294967295
    )
$$;
COMMENT ON FUNCTION pgbulk_job_lock_held(uuid) IS
    'True while a session (the worker running the job) holds the job''s liveness lock.';

-- pgbulk_task_worker_alive: whether the worker that fetched a Procrastinate
-- task still beats (its heartbeat is younger than heartbeat_timeout).
CREATE OR REPLACE FUNCTION pgbulk_task_worker_alive(
    task_id bigint, heartbeat_timeout interval DEFAULT interval '60 seconds'
) RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT 1 FROM procrastinate_jobs pj
        JOIN procrastinate_workers w ON w.id = pj.worker_id
        WHERE pj.id = task_id AND w.last_heartbeat > now() - heartbeat_timeout
    )
$$;
COMMENT ON FUNCTION pgbulk_task_worker_alive(bigint, interval) IS
    'True while the worker that fetched the task has a fresh heartbeat.';

-- pgbulk_job_alive: a running job is alive while its worker holds the job's
-- liveness lock and (for queued tasks) that worker's heartbeat is fresh.
-- Nothing else makes a job dead.
CREATE OR REPLACE FUNCTION pgbulk_job_alive(
    job_id uuid, heartbeat_timeout interval DEFAULT interval '60 seconds'
) RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT pgbulk_job_lock_held(j.id) AND (
        j.run_mode = 'sync' OR pgbulk_task_worker_alive(j.procrastinate_job_id, heartbeat_timeout)
    )
    FROM pgbulk_job j WHERE j.id = job_id
$$;
COMMENT ON FUNCTION pgbulk_job_alive(uuid, interval) IS
    'True while the job''s worker holds its liveness lock and its heartbeat is fresh.';

-- migrate:down
DROP FUNCTION IF EXISTS pgbulk_job_alive(uuid, interval);
DROP FUNCTION IF EXISTS pgbulk_task_worker_alive(bigint, interval);
DROP FUNCTION IF EXISTS pgbulk_job_lock_held(uuid);
