-- migrate:up
-- Liveness is a database fact: a job is alive while some session holds its
-- liveness lock, whatever any heartbeat says (a draining worker stops beating
-- before it finishes its job). These replace the heartbeat-based rule of v1.

-- pgbulk_held_lock_keys: every bigint advisory key held in this database, read
-- from pg_locks once (a sweep decides the liveness of all jobs from one read).
CREATE OR REPLACE FUNCTION pgbulk_held_lock_keys() RETURNS bigint[]
LANGUAGE sql STABLE AS $$
    SELECT coalesce(array_agg((l.classid::bigint << 32) | l.objid::bigint), '{}')
    FROM pg_locks l
    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
$$;
COMMENT ON FUNCTION pgbulk_held_lock_keys() IS
    'Bigint advisory lock keys held by any session of this database (one pg_locks read).';

-- pgbulk_job_alive_v2: a job is alive while its liveness lock is held.
CREATE OR REPLACE FUNCTION pgbulk_job_alive_v2(job_id uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT pgbulk_job_lock_held(job_id)
$$;
COMMENT ON FUNCTION pgbulk_job_alive_v2(uuid) IS
    'True while a session (a runner of the job) holds the job''s liveness lock.';

-- pgbulk_job_alive (v1 signature, kept for callers of the previous release):
-- the heartbeat argument is ignored now; a held lock means alive.
CREATE OR REPLACE FUNCTION pgbulk_job_alive(
    job_id uuid, heartbeat_timeout interval DEFAULT interval '60 seconds'
) RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT pgbulk_job_alive_v2(job_id)
$$;
COMMENT ON FUNCTION pgbulk_job_alive(uuid, interval) IS
    'Deprecated (use pgbulk_job_alive_v2): true while the job''s liveness lock is held.';

-- migrate:down
DROP FUNCTION IF EXISTS pgbulk_job_alive_v2(uuid);
DROP FUNCTION IF EXISTS pgbulk_held_lock_keys();
