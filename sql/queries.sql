-- Named queries used by pgbulk's Python code. Each starts with "-- name: x",
-- then a comment line saying what it does. {selection} is a queryset's SQL.

-- name: defer_task
-- Queue a Procrastinate task in the caller's transaction (Django's connection).
SELECT (procrastinate_defer_jobs_v1(ARRAY[ROW(
    %(queue)s, %(task_name)s, 0, NULL, NULL, %(args)s::jsonb, NULL
)::procrastinate_job_to_defer_v1]))[1];

-- name: isolation_level
-- The isolation level of the current transaction.
SELECT current_setting('transaction_isolation');

-- name: lock_model
-- Serialise reservations of one model until the end of the transaction.
SELECT pg_advisory_xact_lock(pgbulk_model_lock_key(%(model)s));

-- name: reserve_selection
-- Reserve every record of a selection for a job, one row each (keys that are
-- not integers), numbered in key order.
-- params: job_id, seq offset, model, is_target, exclusive, then the selection's.
INSERT INTO pgbulk_reservation (job_id, seq, model, object_pk, is_target, exclusive, created_at)
SELECT %s::uuid, %s + row_number() OVER (ORDER BY s.pk), %s, s.pk::text, %s, %s, now()
FROM (SELECT DISTINCT q.pk FROM ({selection}) AS q(pk)) AS s;

-- name: reserve_spans
-- Reserve every record of a selection with integer keys for a job: runs of
-- consecutive keys (gaps and islands), cut into spans of at most N keys, and also
-- at every C records in the selection's order (so chunks of C records, which are
-- cut at rows, hold exactly C), one row each, numbered by the ordinal of their
-- first record.
-- params: job_id, seq offset, model, is_target, exclusive, C, N, then the selection's.
WITH args AS (
    SELECT %s::uuid AS job_id, %s::bigint AS base, %s::text AS model, %s::boolean AS is_target,
           %s::boolean AS exclusive, %s::bigint AS chunk, %s::bigint AS piece
), keys AS (
    SELECT k, row_number() OVER (ORDER BY k) - 1 AS n
    FROM (SELECT DISTINCT q.pk::bigint AS k FROM ({selection}) AS q(pk)) AS d
), spans AS (
    SELECT min(k.k) AS lo, count(*) AS span, min(k.n) AS first
    FROM keys k CROSS JOIN args a
    GROUP BY k.k - k.n, k.n / a.chunk, mod(k.n, a.chunk) / a.piece
)
INSERT INTO pgbulk_reservation
    (job_id, seq, model, object_pk, key_lo, span, is_target, exclusive, created_at)
SELECT a.job_id, a.base + s.first + 1, a.model, s.lo::text, s.lo, s.span, a.is_target,
       a.exclusive, now()
FROM spans s CROSS JOIN args a;

-- name: reserved_since
-- How many records a job's rows numbered after an offset stand for.
SELECT coalesce(sum(span), 0) FROM pgbulk_reservation
WHERE job_id = %(job_id)s::uuid AND seq > %(offset)s;

-- name: span_overlap
-- Whether spans a job just reserved overlap another job's exclusive ones of the
-- same model (see pgbulk_spans_overlap).
SELECT pgbulk_spans_overlap(%(job_id)s::uuid, %(offset)s, %(reach)s);

-- name: held_by_job_key
-- (A correlated subquery on q.pk) this job reserves the record already.
-- params: job_id, model.
SELECT 1 FROM pgbulk_reservation r
WHERE r.job_id = %s::uuid AND r.model = %s AND r.object_pk = q.pk::text

-- name: held_by_job_span
-- (A correlated subquery on q.pk) one of this job's spans holds the record already.
-- params: job_id, model, reach (most keys of a span less one).
SELECT 1 FROM pgbulk_reservation r
WHERE r.job_id = %s::uuid AND r.model = %s
  AND r.key_lo BETWEEN q.pk::bigint - %s AND q.pk::bigint
  AND r.key_lo + r.span - 1 >= q.pk::bigint

-- name: conflict_report
-- Which other jobs hold exclusive reservations on records of a selection.
-- {user_table}, {user_key}, {username}: the user model's quoted table and columns.
-- params: model, job_id, then the selection's.
SELECT r.job_id, u.{username}, count(*) AS overlap
FROM pgbulk_reservation r
JOIN pgbulk_job j ON j.id = r.job_id
LEFT JOIN {user_table} u ON u.{user_key} = j.user_id
WHERE r.exclusive AND r.model = %s AND r.job_id <> %s::uuid
  AND r.object_pk IN (SELECT q.pk::text FROM ({selection}) AS q(pk))
GROUP BY r.job_id, u.{username}
ORDER BY overlap DESC;

-- name: conflict_report_spans
-- Which other jobs hold exclusive reservations on records of a selection (integer
-- keys). Each selected key probes the (model, key_lo) index for a span holding it and
-- the (model, object_pk) index for a one-key row, so the cost follows the selection's
-- size whatever the statistics of a freshly filled reservation table say (expanding
-- the held spans and joining them to the selection could be planned as a nested loop:
-- minutes for 100k held records). params: the selection's, then model, reach (most
-- keys of a span less one), job_id, model, job_id.
WITH sel AS MATERIALIZED (
    SELECT DISTINCT q.pk::bigint AS k FROM ({selection}) AS q(pk)  -- a join repeats keys
), hits AS (
    SELECT h.job_id FROM sel CROSS JOIN LATERAL (
        SELECT r.job_id FROM pgbulk_reservation r
        WHERE r.model = %s AND r.key_lo BETWEEN sel.k - %s AND sel.k
          AND r.key_lo + r.span - 1 >= sel.k AND r.exclusive AND r.job_id <> %s::uuid
        UNION ALL
        SELECT r.job_id FROM pgbulk_reservation r
        WHERE r.model = %s AND r.key_lo IS NULL AND r.exclusive
          AND r.object_pk = sel.k::text AND r.job_id <> %s::uuid
    ) h
)
SELECT h.job_id, u.{username}, count(*) AS overlap
FROM hits h
JOIN pgbulk_job j ON j.id = h.job_id
LEFT JOIN {user_table} u ON u.{user_key} = j.user_id
GROUP BY h.job_id, u.{username}
ORDER BY overlap DESC;

-- name: next_seq
-- The ordinal of a job's last reserved record (its rows are numbered after it).
SELECT coalesce((SELECT seq + span - 1 FROM pgbulk_reservation WHERE job_id = %(job_id)s::uuid
                 ORDER BY seq DESC LIMIT 1), 0);

-- name: release_chunk
-- Release the target reservations of one finished chunk (how many: the caller
-- checks they were all still there).
DELETE FROM pgbulk_reservation
WHERE job_id = %(job_id)s::uuid AND seq BETWEEN %(first)s AND %(last)s AND is_target;

-- name: release_job
-- Release every reservation of a job.
DELETE FROM pgbulk_reservation WHERE job_id = %(job_id)s::uuid;

-- name: claim_job
-- Mark a job running under a run token and return the token (its attempt). A
-- queued job keeps the attempt the sweep gave it, and so does a running job that
-- another live runner holds (several runners share one attempt). A running job
-- nobody else holds is taken over: its earlier runner is gone, so the attempt
-- is raised to fence that runner out.
WITH peers AS (
    SELECT EXISTS (
        SELECT 1 FROM pgbulk_job j,
             generate_series(0, greatest(coalesce((j.params->>'parallel')::int, 1), 1) - 1) r
        WHERE j.id = %(job_id)s::uuid AND r <> %(runner)s
          AND pgbulk_runner_lock_key(j.id, r) = ANY(pgbulk_held_lock_keys())
    ) AS alive
)
UPDATE pgbulk_job
SET status = 'running', started_at = coalesce(started_at, now()),
    attempt_started_at = CASE WHEN status = 'running' AND peers.alive
                              THEN attempt_started_at ELSE now() END,
    attempt = attempt + CASE WHEN status = 'running' AND NOT peers.alive THEN 1 ELSE 0 END
FROM peers
WHERE id = %(job_id)s::uuid AND status IN ('queued', 'running') AND NOT cancel_requested
RETURNING attempt;

-- name: try_job_lock
-- Take a runner's liveness lock (session-level) if no live runner holds it.
SELECT pg_try_advisory_lock(pgbulk_runner_lock_key(%(job_id)s::uuid, %(runner)s));

-- name: try_job_xact_lock
-- Take the job's liveness lock until the end of the current transaction (a job
-- run synchronously inside its caller's transaction).
SELECT pg_try_advisory_xact_lock(pgbulk_runner_lock_key(%(job_id)s::uuid, %(runner)s));

-- name: unlock_job
-- Give up a runner's liveness lock without ending its session (a nested run).
SELECT pg_advisory_unlock(pgbulk_runner_lock_key(%(job_id)s::uuid, %(runner)s));

-- name: register_guard
-- Wait at most this long for locks in the rest of the current transaction.
SELECT set_config('lock_timeout', %(wait)s, true);

-- name: runner_current
-- Whether a runner's attempt is still current (kept so until the transaction ends).
SELECT 1 FROM pgbulk_job
WHERE id = %(job_id)s::uuid AND status = 'running' AND attempt = %(attempt)s FOR SHARE;

-- name: lock_job_seq
-- Serialise the numbering of one job's reservations (its runners may register
-- records at the same time) until the end of the transaction.
SELECT pg_advisory_xact_lock(hashtext('pgbulk.seq:' || %(job_id)s), 0);

-- name: next_target_seq
-- The first target record of a job not yet done after a sequence number.
SELECT seq FROM pgbulk_reservation
WHERE job_id = %(job_id)s::uuid AND seq > %(after)s AND is_target
ORDER BY seq LIMIT 1;

-- name: claim_chunk
-- Claim chunk N of a job for the current transaction: an advisory transaction
-- lock (a runner that holds it is working on that chunk; others skip it).
SELECT pg_try_advisory_xact_lock(hashtext('pgbulk.chunk:' || %(job_id)s), %(chunk)s);

-- name: chunk_rows
-- The target rows of a chunk (those whose first record's ordinal is in a range)
-- not done yet: (seq, first key, how many consecutive keys).
SELECT seq, object_pk, span FROM pgbulk_reservation
WHERE job_id = %(job_id)s::uuid AND seq BETWEEN %(first)s AND %(last)s AND is_target
ORDER BY seq;

-- name: commit_chunk
-- Add a committed chunk's counts to its job, and its new errors to the job's
-- capped list, only while the runner's attempt is current; reset the runner's
-- in-flight counts in the same transaction (its row stays: updated_at says when it
-- last made progress). Returns the job's id (none: fenced).
WITH job AS (
    UPDATE pgbulk_job
    SET done = done + %(done)s, failed_count = failed_count + %(failed)s,
        skipped_count = skipped_count + %(skipped)s,
        errors = CASE WHEN jsonb_array_length(%(errors)s::jsonb) = 0 THEN errors ELSE (
            SELECT coalesce(jsonb_agg(e.value ORDER BY e.n), '[]'::jsonb)
            FROM (SELECT value, n FROM jsonb_array_elements(errors || %(errors)s::jsonb)
                  WITH ORDINALITY AS x(value, n) ORDER BY n LIMIT %(cap)s) e) END
    WHERE id = %(job_id)s::uuid AND status = 'running' AND attempt = %(attempt)s
    RETURNING id
), reset AS (
    UPDATE pgbulk_runner_progress SET done = 0, failed_count = 0, updated_at = now()
    WHERE job_id = %(job_id)s::uuid AND runner = %(runner)s AND EXISTS (SELECT 1 FROM job)
)
SELECT id FROM job;

-- name: write_in_flight
-- What a runner has processed in its open transaction (written beside it).
INSERT INTO pgbulk_runner_progress (job_id, runner, done, failed_count, updated_at)
VALUES (%(job_id)s::uuid, %(runner)s, %(done)s, %(failed)s, now())
ON CONFLICT (job_id, runner) DO UPDATE
SET done = EXCLUDED.done, failed_count = EXCLUDED.failed_count, updated_at = now();

-- name: in_flight
-- A job's committed counts and the in-flight counts of its runners that are
-- alive (a dead one's counted records rolled back with it), read together so a
-- chunk committing meanwhile is counted once; and the seconds since one of them
-- last reported progress (a runner reports when it starts), by the database's clock
-- (the one that stamped it); NULL when none has a row (a runner of an older release).
SELECT j.done, j.failed_count, coalesce(sum(p.done), 0)::bigint,
       coalesce(sum(p.failed_count), 0)::bigint, count(p.runner),
       extract(epoch FROM now() - max(p.updated_at))::float
FROM pgbulk_job j
LEFT JOIN pgbulk_runner_progress p ON p.job_id = j.id
 AND pgbulk_runner_lock_key(p.job_id, p.runner) = ANY(pgbulk_held_lock_keys())
WHERE j.id = %(job_id)s::uuid
GROUP BY j.id;

-- name: forget_in_flight
-- A finished job's runners have nothing in flight.
DELETE FROM pgbulk_runner_progress WHERE job_id = %(job_id)s::uuid;

-- name: runner_state
-- Whether a job was asked to stop, and whether a runner's attempt is still current.
SELECT cancel_requested, status = 'running' AND attempt = %(attempt)s
FROM pgbulk_job WHERE id = %(job_id)s::uuid;

-- name: outer_stop_wanted
-- Whether the runs nested in a job's run should stop: the job, still running, was
-- asked to stop, or another attempt took it over (a job that ended under this
-- attempt is no reason: its listeners may start jobs of their own).
SELECT (status = 'running' AND cancel_requested) OR attempt IS DISTINCT FROM %(attempt)s
FROM pgbulk_job WHERE id = %(job_id)s::uuid;

-- name: upsert_progress
-- Write a job's progress row (one per job, UNLOGGED table): its total and
-- latest message while it runs, its exact figures once it ends.
INSERT INTO pgbulk_progress (job_id, total, done, failed_count, message, started_at, updated_at)
VALUES (%(job_id)s::uuid, %(total)s, %(done)s, %(failed)s, %(message)s, now(), now())
ON CONFLICT (job_id) DO UPDATE
SET total = EXCLUDED.total, done = EXCLUDED.done, failed_count = EXCLUDED.failed_count,
    message = EXCLUDED.message, updated_at = now();

-- name: chunk_keys
-- The typed keys of one chunk ({key_type} is the model's key type), as a subquery.
-- params: job_id, first seq, last seq.
SELECT object_pk::{key_type} FROM pgbulk_reservation
WHERE job_id = %s::uuid AND seq BETWEEN %s AND %s AND is_target

-- name: chunk_span_keys
-- The integer keys of one chunk's spans ({key_type}: the model's), as a subquery.
-- params: job_id, first seq, last seq.
SELECT k::{key_type} FROM pgbulk_reservation r
CROSS JOIN LATERAL generate_series(coalesce(r.key_lo, r.object_pk::bigint),
                                   coalesce(r.key_lo, r.object_pk::bigint) + r.span - 1) AS k
WHERE r.job_id = %s::uuid AND r.seq BETWEEN %s AND %s AND r.is_target

-- name: holders_of_keys
-- Which job reserves each of these records (keys as text).
SELECT r.object_pk, r.job_id FROM pgbulk_reservation r
WHERE r.model = %(model)s AND r.object_pk = ANY(%(keys)s);

-- name: holders_of_spans
-- Which job reserves each of these records (integer keys, given as text).
SELECT k.key, r.job_id FROM unnest(%(keys)s::text[]) AS k(key)
JOIN pgbulk_reservation r ON r.model = %(model)s
 AND r.key_lo BETWEEN k.key::bigint - %(reach)s AND k.key::bigint
 AND r.key_lo + r.span - 1 >= k.key::bigint;

-- name: sweep
-- Run the safety-net sweep with the given ages in seconds (only_job: one job).
SELECT pgbulk_sweep_v3(
    conflict_ttl => make_interval(secs => %(conflict_ttl)s),
    progress_ttl => make_interval(secs => %(progress_ttl)s),
    max_task_duration => make_interval(secs => %(max_task_duration)s),
    job_retention => make_interval(secs => %(job_retention)s),
    heartbeat_timeout => make_interval(secs => %(heartbeat_timeout)s),
    max_resumes => %(max_resumes)s,
    sync_start_timeout => make_interval(secs => %(sync_start_timeout)s),
    only_job => %(only_job)s::uuid
);

-- name: job_probe
-- For one unfinished job: whether it runs with no live runner (worker lost), and
-- how many waiting tasks of its queue come before its task (queue position).
SELECT j.status = 'running' AND NOT pgbulk_job_alive_v2(j.id) AS worker_lost,
       CASE WHEN j.status = 'queued' AND pj.status = 'todo' THEN (
           SELECT count(*) FROM procrastinate_jobs ahead
           WHERE ahead.queue_name = pj.queue_name AND ahead.status = 'todo'
             AND (ahead.priority > pj.priority
                  OR (ahead.priority = pj.priority AND ahead.id < pj.id))
       ) END AS queue_position
FROM pgbulk_job j
LEFT JOIN procrastinate_jobs pj ON pj.id = j.procrastinate_job_id
WHERE j.id = %(job_id)s::uuid;

-- name: live_workers
-- How many Procrastinate workers beat within the last heartbeat_timeout seconds.
SELECT count(*) FROM procrastinate_workers
WHERE last_heartbeat > now() - make_interval(secs => %(heartbeat_timeout)s);

-- name: backend_pid
-- The server process of this session (two sessions on PostgreSQL never share one).
SELECT pg_backend_pid();

-- name: schema_present
-- Whether pgbulk's table and sweep, and Procrastinate's jobs table, exist (NULL: missing).
SELECT to_regclass('pgbulk_job') AS pgbulk_job, to_regproc('pgbulk_sweep') AS pgbulk_sweep,
       to_regclass('procrastinate_jobs') AS procrastinate_jobs;

-- name: not_yet_held
-- Narrow a selection to the records a job does not hold already: it wraps the
-- selection's SQL, and held_by_job_key or held_by_job_span as the subquery.
-- params: the selection's, then the subquery's.
SELECT q.pk FROM ({selection}) AS q(pk) WHERE NOT EXISTS ({held})

-- name: status_active_jobs
-- pgbulk_status: jobs queued or running, with progress and liveness.
SELECT id, kind, model, status, done, total, percent, alive, worker_id, running_for
FROM pgbulk_active_jobs ORDER BY created_at;

-- name: status_locks
-- pgbulk_status: reserved records per job and model.
SELECT job_id, status, model, targets, descendants FROM pgbulk_lock_summary
ORDER BY job_id, model;

-- name: status_stale_jobs
-- pgbulk_status: what the sweep would act on with the project's ages (seconds).
SELECT id, status, model, reason, attempt_running_for
FROM pgbulk_stale_jobs_v1(make_interval(secs => %(max_task_duration)s),
                          make_interval(secs => %(sync_start_timeout)s));

-- name: status_workers
-- pgbulk_status: Procrastinate workers and the age of their last heartbeat.
SELECT id, last_heartbeat, now() - last_heartbeat AS age
FROM procrastinate_workers ORDER BY id;

-- name: change_log_before
-- Log the values of records about to be changed (the snapshot: key, key as text,
-- values; see pgbulk.changelog). params: job_id, then the snapshot's.
INSERT INTO pgbulk_change (job_id, object_pk, before)
SELECT %s::uuid, s."_pgbulk_key", s."_pgbulk_values" FROM ({snapshot}) s

-- name: change_log_after
-- Complete the log rows of changed records with their values now, each found by the
-- log's primary key (an upsert, so the plan cannot degrade into comparing every
-- record with every log row, whatever the statistics say of a fresh job); returns
-- the keys of records whose logged values did not change (they already held the new
-- values), for change_log_drop. A record not logged before (none should be) comes
-- back unchanged too. params: job_id, then the snapshot's.
WITH completed AS (
    INSERT INTO pgbulk_change AS c (job_id, object_pk, before, after)
    SELECT %s::uuid, s."_pgbulk_key", s."_pgbulk_values", s."_pgbulk_values"
    FROM ({snapshot}) s
    ON CONFLICT (job_id, object_pk) DO UPDATE SET after = EXCLUDED.after
    RETURNING c.object_pk, c.before IS NOT DISTINCT FROM c.after AS unchanged
)
SELECT object_pk FROM completed WHERE unchanged

-- name: change_log_drop
-- Forget logged records whose change failed (rolled back). params: job_id, keys.
DELETE FROM pgbulk_change WHERE job_id = %s::uuid AND object_pk = ANY(%s::text[])

-- name: change_log_update
-- The set-based strategy's logged UPDATE, one statement: the records with their values
-- as read (key, key as text, logged values, row address, each logged column), then
-- the SET part of the UPDATE, applied to them by row address (a TID scan); a record
-- changed meanwhile is left out (the condition is re-checked on the newer row, whose
-- address differs). Logs both sides of the records whose logged values changed, and
-- returns how many records were updated. params: the records', the SET part's, job_id.
WITH pgbulk_old AS MATERIALIZED ({old}),
pgbulk_new AS (
    {update}
    FROM pgbulk_old o
    WHERE {table}.ctid = ANY(ARRAY(SELECT "_pgbulk_ctid" FROM pgbulk_old))
      AND {table}.ctid = o."_pgbulk_ctid" AND ROW({now}) IS NOT DISTINCT FROM ROW({then})
    RETURNING o."_pgbulk_key" AS key, o."_pgbulk_values" AS before,
              jsonb_build_object({after}) AS after
),
pgbulk_logged AS (
    INSERT INTO pgbulk_change (job_id, object_pk, before, after)
    SELECT %s::uuid, n.key, n.before, n.after FROM pgbulk_new n
    WHERE n.before IS DISTINCT FROM n.after
)
SELECT count(*) FROM pgbulk_new

-- name: change_log_plan
-- Undo: each record's logged values and whether it still holds what the job left.
-- Each record's log row is looked up by the log's primary key (a LATERAL with LIMIT
-- is not flattened into a join, so a poor row estimate cannot make the planner
-- compare every record with every log row). params: the snapshot's, then the undone
-- job's id.
SELECT s."_pgbulk_pk", s."_pgbulk_key", c.before, c.after,
       c.after IS NOT DISTINCT FROM s."_pgbulk_values", s."_pgbulk_values"
FROM ({snapshot}) s
CROSS JOIN LATERAL (
    SELECT before, after FROM pgbulk_change
    WHERE job_id = %s::uuid AND object_pk = s."_pgbulk_key" LIMIT 1
) c

-- name: change_log_purge
-- Delete the change logs of (at most "batch") jobs finished more than "retention"
-- seconds ago, marking those jobs' logs expired; a log a queued or running undo
-- still reads is kept until it ends (one being launched holds the job's row).
WITH expired AS (
    UPDATE pgbulk_job SET change_log = 'expired'
    WHERE id IN (
        SELECT j.id FROM pgbulk_job j
        WHERE j.change_log = 'kept'
          AND j.finished_at < now() - make_interval(secs => %(retention)s)
          AND NOT EXISTS (SELECT 1 FROM pgbulk_job u WHERE u.undo_of_id = j.id
                          AND u.status IN ('queued', 'running'))
        LIMIT %(batch)s
        FOR UPDATE OF j SKIP LOCKED
    )
    RETURNING id
)
DELETE FROM pgbulk_change WHERE job_id IN (SELECT id FROM expired)

-- name: change_log_keys
-- The typed keys of the records a job's change log names ({key_type}: the model's key
-- type), as a subquery. params: job_id.
SELECT object_pk::{key_type} FROM pgbulk_change WHERE job_id = %s::uuid

-- name: undo_has_work
-- Undo: is there a record an undo of a job could put back: one its log names, that
-- the job did change (before differs from after) and that still exists? Stops at
-- the first. {table}, {key}: the model's quoted table and key column; {key_type}:
-- the key's type. params: job_id.
SELECT EXISTS (
    SELECT 1 FROM pgbulk_change c JOIN {table} t ON t.{key} = c.object_pk::{key_type}
    WHERE c.job_id = %(job_id)s::uuid AND c.before IS DISTINCT FROM c.after
)

-- name: undo_forecast
-- Undo's confirmation: of the records a job's log names that still exist (the
-- snapshot of their values now, see pgbulk.changelog), how many an undo would put
-- back (they hold what the job left) and how many it would skip (changed since),
-- decided (and looked up) as change_log_plan does. params: the snapshot's, then
-- job_id.
SELECT count(*) FILTER (WHERE c.after IS NOT DISTINCT FROM s."_pgbulk_values"),
       count(*) FILTER (WHERE c.after IS DISTINCT FROM s."_pgbulk_values")
FROM ({snapshot}) s
CROSS JOIN LATERAL (
    SELECT after FROM pgbulk_change
    WHERE job_id = %s::uuid AND object_pk = s."_pgbulk_key" LIMIT 1
) c

-- name: key_texts
-- Keys as PostgreSQL writes them as text, in the order given ({key_type}: the
-- model's key type): how reservations and the change log hold them (a date-time
-- key reads '2020-01-01 00:00:00+00' there, not Python's '+00:00'). params: keys.
SELECT k::text FROM unnest(%s::{key_type}[]) WITH ORDINALITY AS u(k, n) ORDER BY n;
