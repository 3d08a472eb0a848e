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

-- pgbulk_runner_lock_key: the liveness lock of one runner of a job. A job run
-- by several workers at once (parallel > 1) has one runner per slot; slot 0
-- holds the job's own key (what a single runner, and earlier releases, hold).
CREATE OR REPLACE FUNCTION pgbulk_runner_lock_key(job_id uuid, runner integer) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN runner = 0 THEN pgbulk_job_lock_key(job_id)
           ELSE ('x' || substr(md5('pgbulk.job:' || job_id::text || ':' || runner), 1, 16))
                ::bit(64)::bigint END
$$;
COMMENT ON FUNCTION pgbulk_runner_lock_key(uuid, integer) IS
    'Advisory lock key held by runner N of a pgbulk job (runner 0: the job''s own key).';

-- pgbulk_runners_held: whether any runner of a job holds its lock, given the
-- held keys (so a sweep checks many jobs against one pg_locks read).
CREATE OR REPLACE FUNCTION pgbulk_runners_held(job_id uuid, params jsonb, held bigint[])
RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT EXISTS (
        SELECT 1 FROM generate_series(0, greatest(coalesce((params->>'parallel')::int, 1), 1) - 1) r
        WHERE pgbulk_runner_lock_key(job_id, r) = ANY(held)
    )
$$;
COMMENT ON FUNCTION pgbulk_runners_held(uuid, jsonb, bigint[]) IS
    'True if one of the job''s runner keys is among the held advisory keys.';

-- pgbulk_job_alive_v2: a job is alive while one of its runners holds its lock.
CREATE OR REPLACE FUNCTION pgbulk_job_alive_v2(job_id uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT pgbulk_runners_held(j.id, j.params, pgbulk_held_lock_keys())
                     FROM pgbulk_job j WHERE j.id = job_id), false)
$$;
COMMENT ON FUNCTION pgbulk_job_alive_v2(uuid) IS
    'True while a session (a runner of the job) holds one of the job''s liveness locks.';

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
DROP FUNCTION IF EXISTS pgbulk_runners_held(uuid, jsonb, bigint[]);
DROP FUNCTION IF EXISTS pgbulk_runner_lock_key(uuid, integer);
DROP FUNCTION IF EXISTS pgbulk_held_lock_keys();
