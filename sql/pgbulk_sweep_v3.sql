-- migrate:up
-- pgbulk_sweep_v3: the database-side safety net (v2, counting resumes apart from
-- run tokens). (conflict_ttl is accepted for the settings PowerCRUD users carry
-- over; liveness being a database fact, a job nobody runs is dealt with at the
-- first sweep, so it has no effect.) Single-runner (advisory transaction lock),
-- bounded batches, never blocks on a job row somebody holds (SKIP LOCKED) and
-- never touches a live job: a job is alive while its liveness lock is held
-- (pg_locks is read once per sweep, then once per dead candidate).
-- Every job it resumes, fails or cancels gets a new run token (attempt + 1), so
-- a runner of the earlier attempt can commit nothing more (fencing). A chunked
-- job stopped by a worker shutdown (its runner set shutdown_attempt to its
-- attempt) is resumed without counting towards max_resumes: a deploy is not a
-- lost worker. A job past job_retention is kept while an undo of it is queued or
-- running (the undo reads its change log). only_job limits it to one job (the
-- progress probe sweeps a job whose worker it found lost). Returns what it did as
-- jsonb; {"skipped": true} when another sweep holds the lock.
CREATE OR REPLACE FUNCTION pgbulk_sweep_v3(
    conflict_ttl interval DEFAULT interval '3600 seconds',
    progress_ttl interval DEFAULT interval '7200 seconds',
    max_task_duration interval DEFAULT interval '3600 seconds',
    job_retention interval DEFAULT interval '30 days',
    heartbeat_timeout interval DEFAULT interval '60 seconds',
    max_resumes integer DEFAULT 3,
    sync_start_timeout interval DEFAULT interval '60 seconds',
    only_job uuid DEFAULT NULL,
    batch integer DEFAULT 500
) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    held bigint[];
    resumed uuid[] := '{}';
    failed uuid[] := '{}';
    cancelled uuid[] := '{}';
    abandoned uuid[];
    orphaned_jobs uuid[];
    expired_jobs uuid[];
    flagged uuid[];
    released bigint := 0;
    n bigint;
    deleted_progress bigint := 0;
    deleted_jobs bigint := 0;
    dead record;
    new_task bigint;
    new_tasks bigint[];
    was text;
BEGIN
    IF NOT pg_try_advisory_xact_lock(pgbulk_model_lock_key('pgbulk.sweep')) THEN
        RETURN jsonb_build_object('skipped', true);
    END IF;
    held := pgbulk_held_lock_keys();

    -- 1. Running jobs nobody holds: cancel those asked to stop, fail atomic and
    --    synchronous ones (their data transaction died with them) and those
    --    resumed max_resumes times already (after lost workers; a shutdown's
    --    stop is not counted), resume the other chunked ones.
    FOR dead IN
        SELECT j.id, j.params, j.task_name, j.procrastinate_job_id, j.attempt, j.message,
               j.cancel_requested, j.done, j.failed_count, j.total, j.resumes,
               j.shutdown_attempt IS NOT DISTINCT FROM j.attempt AS shut_down,
               coalesce((j.params->>'atomic')::boolean, true) AS atomic,
               pj.queue_name
        FROM pgbulk_job j
        LEFT JOIN procrastinate_jobs pj ON pj.id = j.procrastinate_job_id
        WHERE j.status = 'running' AND NOT pgbulk_runners_held(j.id, j.params, held)
          AND (only_job IS NULL OR j.id = only_job)
        ORDER BY j.started_at LIMIT batch
        FOR UPDATE OF j SKIP LOCKED
    LOOP
        -- Fresh read: a runner may have claimed the job since pg_locks was read.
        CONTINUE WHEN pgbulk_job_alive_v2(dead.id);
        was := CASE WHEN dead.atomic THEN 'nothing was changed'
                    ELSE to_char(dead.done, 'FM999,999,999,990') || ' of ' || to_char(dead.total, 'FM999,999,999,990') || ' records were changed' END;
        IF dead.cancel_requested THEN
            UPDATE pgbulk_job SET status = 'cancelled', finished_at = now(), attempt = attempt + 1,
                done = CASE WHEN dead.atomic THEN 0 ELSE done END,
                message = 'Cancelled; its worker was lost before it stopped: ' || was || '.'
            WHERE id = dead.id;
            cancelled := cancelled || dead.id;
        ELSIF dead.atomic OR dead.procrastinate_job_id IS NULL OR (dead.resumes >= max_resumes AND NOT dead.shut_down) THEN
            UPDATE pgbulk_job SET status = 'failed', finished_at = now(), attempt = attempt + 1,
                done = CASE WHEN dead.atomic THEN 0 ELSE done END,
                message = CASE
                    WHEN dead.atomic THEN 'The worker running this job was lost; its changes were rolled back: nothing was changed.'
                    WHEN dead.procrastinate_job_id IS NULL THEN 'The process running this job was lost: ' || was || ', the rest were not.'
                    ELSE 'The worker running this job was lost ' || (dead.resumes + 1) || ' times; stopped: '
                         || was || ', the rest were not. Last: ' || dead.message
                END
            WHERE id = dead.id;
            failed := failed || dead.id;
        ELSE
            -- One task per runner slot (runner 0's is the job's own task).
            new_tasks := procrastinate_defer_jobs_v1(ARRAY(
                SELECT ROW(coalesce(dead.queue_name, dead.params->>'queue', 'pgbulk'), dead.task_name, 0, NULL, NULL,
                           CASE WHEN r = 0 THEN jsonb_build_object('job_id', dead.id::text)
                                ELSE jsonb_build_object('job_id', dead.id::text, 'runner', r) END,
                           NULL)::procrastinate_job_to_defer_v1
                FROM generate_series(0, greatest(coalesce((dead.params->>'parallel')::int, 1), 1) - 1) r
                ORDER BY r
            ));
            SELECT t.id INTO new_task FROM procrastinate_jobs t
            WHERE t.id = ANY(new_tasks) AND NOT t.args ? 'runner';
            UPDATE pgbulk_job SET status = 'queued', procrastinate_job_id = new_task,
                attempt = attempt + 1,
                resumes = resumes + CASE WHEN dead.shut_down THEN 0 ELSE 1 END,
                message = CASE WHEN dead.shut_down THEN 'Stopped by a worker shutdown after ' ELSE 'Worker lost after ' END
                          || to_char(dead.done, 'FM999,999,999,990') || ' of ' || to_char(dead.total, 'FM999,999,999,990')
                          || ' records; resuming where it stopped'
                          || CASE WHEN dead.shut_down THEN '.'
                                  ELSE ' (resume ' || (dead.resumes + 1) || ' of ' || max_resumes || ').' END
            WHERE id = dead.id;
            -- End its old task unless its worker is ending it right now (that one's
            -- end trigger then finds the job moved on to the new task).
            PERFORM 1 FROM procrastinate_jobs
            WHERE id = dead.procrastinate_job_id AND status = 'doing' FOR UPDATE SKIP LOCKED;
            IF FOUND THEN
                PERFORM procrastinate_finish_job_v1(dead.procrastinate_job_id, 'failed', false);
            END IF;
            resumed := resumed || dead.id;
            CONTINUE;
        END IF;
        WITH gone AS (DELETE FROM pgbulk_reservation WHERE job_id = dead.id RETURNING span)
        SELECT coalesce(sum(span), 0) INTO n FROM gone;  -- records, not rows (spans)
        released := released + n;
    END LOOP;

    IF only_job IS NOT NULL THEN
        RETURN jsonb_build_object(
            'skipped', false, 'resumed', to_jsonb(resumed), 'failed', to_jsonb(failed),
            'cancelled', to_jsonb(cancelled), 'flagged', '[]'::jsonb, 'released', released,
            'deleted_progress', 0, 'deleted_jobs', 0);
    END IF;

    -- 1b. Queued jobs whose task a now-dead worker fetched but never started:
    --     put the task back in the queue (nothing was done yet).
    FOR dead IN
        SELECT j.id, j.procrastinate_job_id FROM pgbulk_job j
        JOIN procrastinate_jobs pj ON pj.id = j.procrastinate_job_id
        WHERE j.status = 'queued' AND pj.status = 'doing'
          AND NOT pgbulk_runners_held(j.id, j.params, held)
          AND NOT pgbulk_task_worker_alive(pj.id, heartbeat_timeout)
        LIMIT batch FOR UPDATE OF j SKIP LOCKED
    LOOP
        CONTINUE WHEN pgbulk_job_alive_v2(dead.id);
        PERFORM procrastinate_retry_job_v2(dead.procrastinate_job_id, now(), NULL, NULL, NULL);
        resumed := resumed || dead.id;
    END LOOP;

    -- 2. Queued jobs that can no longer start: their task was cancelled, aborted,
    --    failed or deleted; or, run synchronously, their process died before it
    --    claimed them (nobody holds them sync_start_timeout after the launch).
    WITH gone AS (
        SELECT j.id FROM pgbulk_job j
        LEFT JOIN procrastinate_jobs pj ON pj.id = j.procrastinate_job_id
        WHERE j.status = 'queued' AND NOT pgbulk_runners_held(j.id, j.params, held)
          AND ((j.run_mode = 'async'
                AND (pj.id IS NULL OR pj.status IN ('cancelled', 'aborted', 'failed', 'succeeded')))
               OR (j.run_mode = 'sync' AND j.created_at < now() - sync_start_timeout))
        LIMIT batch FOR UPDATE OF j SKIP LOCKED
    ), updated AS (
        UPDATE pgbulk_job j SET status = 'failed', finished_at = now(), attempt = attempt + 1,
            message = CASE WHEN j.run_mode = 'sync'
                    THEN 'The process that launched this job stopped before running it: '
                    ELSE 'Its queued task was cancelled, aborted, failed or deleted before it ran: ' END
                || CASE WHEN j.done = 0 THEN 'nothing was changed.'
                        ELSE to_char(j.done, 'FM999,999,999,990') || ' of ' || to_char(j.total, 'FM999,999,999,990') || ' records were changed, the rest were not.' END
        FROM gone WHERE j.id = gone.id AND NOT pgbulk_job_alive_v2(j.id) RETURNING j.id
    )
    SELECT coalesce(array_agg(id), '{}') INTO abandoned FROM updated;
    WITH gone AS (DELETE FROM pgbulk_reservation WHERE job_id = ANY(abandoned) RETURNING span)
    SELECT coalesce(sum(span), 0) INTO n FROM gone;  -- records, not rows (spans)
    released := released + n;

    -- 3. Jobs whose current attempt runs past max_task_duration: ask them to stop.
    WITH stuck AS (
        SELECT id FROM pgbulk_job
        WHERE status = 'running' AND NOT cancel_requested
          AND coalesce(attempt_started_at, started_at) < now() - max_task_duration
        LIMIT batch FOR UPDATE SKIP LOCKED
    ), asked AS (
        UPDATE pgbulk_job j SET cancel_requested = true,
            message = 'Running longer than ' || max_task_duration::text || '; asked to stop.'
        FROM stuck WHERE j.id = stuck.id RETURNING j.id
    )
    SELECT coalesce(array_agg(id), '{}') INTO flagged FROM asked;

    -- 4. Reservations of finished or missing jobs: decided per job (a skip scan
    --    of the primary key finds the distinct jobs), deleted by job through that
    --    index. A running job's reservations are never touched here: step 1 ends
    --    or resumes a job nobody runs, under its row lock and a new run token.
    WITH RECURSIVE holders(job_id) AS (
        (SELECT r.job_id FROM pgbulk_reservation r ORDER BY r.job_id LIMIT 1)
        UNION ALL
        SELECT (SELECT r.job_id FROM pgbulk_reservation r WHERE r.job_id > h.job_id
                ORDER BY r.job_id LIMIT 1)
        FROM holders h WHERE h.job_id IS NOT NULL
    ), orphaned AS (
        SELECT h.job_id FROM holders h LEFT JOIN pgbulk_job j ON j.id = h.job_id
        WHERE h.job_id IS NOT NULL
          AND (j.id IS NULL OR j.status IN ('succeeded', 'failed', 'cancelled'))
        LIMIT batch
    )
    SELECT coalesce(array_agg(job_id), '{}') INTO orphaned_jobs FROM orphaned;
    WITH gone AS (DELETE FROM pgbulk_reservation WHERE job_id = ANY(orphaned_jobs) RETURNING span)
    SELECT coalesce(sum(span), 0) INTO n FROM gone;  -- records, not rows (spans)
    released := released + n;

    -- 5. Progress rows of jobs finished more than progress_ttl ago, or gone.
    DELETE FROM pgbulk_progress p
    WHERE p.job_id IN (
        SELECT p2.job_id FROM pgbulk_progress p2 LEFT JOIN pgbulk_job j ON j.id = p2.job_id
        WHERE j.id IS NULL OR j.finished_at < now() - progress_ttl LIMIT batch
    );
    GET DIAGNOSTICS deleted_progress = ROW_COUNT;
    DELETE FROM pgbulk_runner_progress p
    WHERE p.job_id IN (
        SELECT p2.job_id FROM pgbulk_runner_progress p2 LEFT JOIN pgbulk_job j ON j.id = p2.job_id
        WHERE j.id IS NULL OR j.status IN ('succeeded', 'failed', 'cancelled') LIMIT batch
    );

    -- 6. History past job_retention (with its per-record errors and, by trigger, its
    --    change log), but not a job a queued or running undo still reads.
    SELECT coalesce(array_agg(id), '{}') INTO expired_jobs FROM (
        SELECT j.id FROM pgbulk_job j
        WHERE j.status IN ('succeeded', 'failed', 'cancelled')
          AND j.finished_at < now() - job_retention
          AND NOT EXISTS (SELECT 1 FROM pgbulk_job u WHERE u.undo_of_id = j.id
                          AND u.status IN ('queued', 'running'))
        LIMIT batch
        FOR UPDATE OF j SKIP LOCKED  -- an undo being launched holds the row
    ) expired;
    DELETE FROM pgbulk_job_error WHERE job_id = ANY(expired_jobs);
    DELETE FROM pgbulk_job WHERE id = ANY(expired_jobs);
    GET DIAGNOSTICS deleted_jobs = ROW_COUNT;

    -- 7. The sweep's own finished periodic tasks, an hour after they ran (it runs
    --    every few seconds; Procrastinate keeps finished tasks by default).
    DELETE FROM procrastinate_jobs pj
    WHERE pj.id IN (
        SELECT t.id FROM procrastinate_jobs t
        WHERE t.task_name = 'pgbulk.tasks.sweep' AND t.status IN ('succeeded', 'failed')
          AND t.scheduled_at IS NULL
          AND NOT EXISTS (SELECT 1 FROM procrastinate_periodic_defers d WHERE d.job_id = t.id)
          AND EXISTS (SELECT 1 FROM procrastinate_events e WHERE e.job_id = t.id
                      AND e.at < now() - interval '1 hour')
        LIMIT batch
    );

    RETURN jsonb_build_object(
        'skipped', false, 'resumed', to_jsonb(resumed),
        'failed', to_jsonb(failed || abandoned),
        'cancelled', to_jsonb(cancelled), 'flagged', to_jsonb(flagged),
        'released', released, 'deleted_progress', deleted_progress,
        'deleted_jobs', deleted_jobs
    );
END;
$$;
COMMENT ON FUNCTION pgbulk_sweep_v3(interval, interval, interval, interval, interval, integer, interval, uuid, integer) IS
    'pgbulk safety net: resume, fail or cancel jobs nobody runs (fenced), release orphaned locks, expire history.';

-- The earlier signatures, kept for workers of previous releases that are still
-- draining: v2 and v1 (pgbulk_sweep) delegate to v3.
CREATE OR REPLACE FUNCTION pgbulk_sweep_v2(
    conflict_ttl interval DEFAULT interval '3600 seconds',
    progress_ttl interval DEFAULT interval '7200 seconds',
    max_task_duration interval DEFAULT interval '3600 seconds',
    job_retention interval DEFAULT interval '30 days',
    heartbeat_timeout interval DEFAULT interval '60 seconds',
    max_resumes integer DEFAULT 3,
    sync_start_timeout interval DEFAULT interval '60 seconds',
    only_job uuid DEFAULT NULL,
    batch integer DEFAULT 500
) RETURNS jsonb LANGUAGE sql AS $$
    SELECT pgbulk_sweep_v3(conflict_ttl, progress_ttl, max_task_duration, job_retention,
                           heartbeat_timeout, max_resumes, sync_start_timeout, only_job, batch)
$$;
COMMENT ON FUNCTION pgbulk_sweep_v2(interval, interval, interval, interval, interval, integer, interval, uuid, integer) IS
    'Deprecated (use pgbulk_sweep_v3): delegates to it.';

CREATE OR REPLACE FUNCTION pgbulk_sweep(
    conflict_ttl interval DEFAULT interval '3600 seconds',
    progress_ttl interval DEFAULT interval '7200 seconds',
    max_task_duration interval DEFAULT interval '3600 seconds',
    job_retention interval DEFAULT interval '30 days',
    heartbeat_timeout interval DEFAULT interval '60 seconds',
    batch integer DEFAULT 500
) RETURNS jsonb LANGUAGE sql AS $$
    SELECT pgbulk_sweep_v3(conflict_ttl, progress_ttl, max_task_duration, job_retention,
                           heartbeat_timeout, batch => batch)
$$;
COMMENT ON FUNCTION pgbulk_sweep(interval, interval, interval, interval, interval, integer) IS
    'Deprecated (use pgbulk_sweep_v3): the v3 sweep with default resume cap and sync timeout.';

-- migrate:down
-- (The migration restores pgbulk_sweep_v2.sql first: v2 and v1 get their bodies back.)
DROP FUNCTION IF EXISTS pgbulk_sweep_v3(interval, interval, interval, interval, interval, integer, interval, uuid, integer);
