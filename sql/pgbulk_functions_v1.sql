-- migrate:up
-- pgbulk_job_lock_key: the advisory lock key a worker holds while it runs a job
-- (session lock on its side connection). The sweep reads pg_locks for it: a
-- job whose key nobody holds has no live worker.
CREATE OR REPLACE FUNCTION pgbulk_job_lock_key(job_id uuid) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ('x' || substr(md5('pgbulk.job:' || job_id::text), 1, 16))::bit(64)::bigint
$$;
COMMENT ON FUNCTION pgbulk_job_lock_key(uuid) IS
    'Advisory lock key held by the worker running a pgbulk job (liveness).';

-- pgbulk_model_lock_key: the advisory transaction lock that serialises
-- reservations of one model, so overlapping launches never deadlock.
CREATE OR REPLACE FUNCTION pgbulk_model_lock_key(model text) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ('x' || substr(md5('pgbulk.model:' || model), 1, 16))::bit(64)::bigint
$$;
COMMENT ON FUNCTION pgbulk_model_lock_key(text) IS
    'Advisory transaction lock key serialising reservations of one model.';

-- migrate:down
DROP FUNCTION IF EXISTS pgbulk_model_lock_key(text);
DROP FUNCTION IF EXISTS pgbulk_job_lock_key(uuid);
