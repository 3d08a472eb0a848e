-- migrate:up
-- pgbulk_sweep: the database-side safety net. Single-runner (advisory
-- transaction lock), bounded batches, and it never touches a live job
-- (see pgbulk_job_alive). Returns what it did as jsonb; {"skipped": true}
-- when another sweep holds the lock.
CREATE OR REPLACE FUNCTION pgbulk_sweep(
    conflict_ttl interval DEFAULT interval '3600 seconds',
    progress_ttl interval DEFAULT interval '7200 seconds',
    max_task_duration interval DEFAULT interval '3600 seconds',
    job_retention interval DEFAULT interval '30 days',
    heartbeat_timeout interval DEFAULT interval '60 seconds',
    batch integer DEFAULT 500
) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    resumed uuid[] := '{}';
    failed uuid[] := '{}';
    abandoned uuid[];
    flagged uuid[];
    released bigint := 0;
    n bigint;
    deleted_progress bigint;
    deleted_jobs bigint;
    dead record;
    new_task bigint;
BEGIN
    IF NOT pg_try_advisory_xact_lock(pgbulk_model_lock_key('pgbulk.sweep')) THEN
        RETURN jsonb_build_object('skipped', true);
    END IF;

    -- 1. Running jobs whose worker died: chunked ones resume, atomic ones fail
    --    (their data transaction died with the worker).
    FOR dead IN
        SELECT j.id, j.params, j.task_name, j.procrastinate_job_id,
               pj.queue_name, pj.status::text AS task_status
        FROM pgbulk_job j
        LEFT JOIN procrastinate_jobs pj ON pj.id = j.procrastinate_job_id
        WHERE j.status = 'running' AND NOT pgbulk_job_alive(j.id, heartbeat_timeout)
        ORDER BY j.started_at LIMIT batch
        FOR UPDATE OF j SKIP LOCKED
    LOOP
        IF coalesce((dead.params->>'atomic')::boolean, true) OR dead.procrastinate_job_id IS NULL THEN
            UPDATE pgbulk_job SET status = 'failed', finished_at = now(),
                message = 'The worker running this job died; its changes were rolled back.'
            WHERE id = dead.id;
            DELETE FROM pgbulk_reservation WHERE job_id = dead.id;
            GET DIAGNOSTICS n = ROW_COUNT;
            released := released + n;
            failed := failed || dead.id;
        ELSE
            new_task := (procrastinate_defer_jobs_v1(ARRAY[ROW(
                coalesce(dead.queue_name, 'pgbulk'), dead.task_name, 0, NULL, NULL,
                jsonb_build_object('job_id', dead.id::text), NULL
            )::procrastinate_job_to_defer_v1]))[1];
            UPDATE pgbulk_job SET status = 'queued', procrastinate_job_id = new_task,
                message = 'The worker running this job died; resuming where it stopped.'
            WHERE id = dead.id;
            IF dead.task_status = 'doing' THEN
                PERFORM procrastinate_finish_job_v1(dead.procrastinate_job_id, 'failed', false);
            END IF;
            resumed := resumed || dead.id;
        END IF;
    END LOOP;

    -- 1b. Queued jobs whose task a now-dead worker fetched but never started:
    --     put the task back in the queue (nothing was done yet).
    FOR dead IN
        SELECT j.id, j.procrastinate_job_id FROM pgbulk_job j
        JOIN procrastinate_jobs pj ON pj.id = j.procrastinate_job_id
        WHERE j.status = 'queued' AND pj.status = 'doing'
          AND NOT pgbulk_job_lock_held(j.id)
          AND NOT pgbulk_task_worker_alive(pj.id, heartbeat_timeout)
        LIMIT batch FOR UPDATE OF j SKIP LOCKED
    LOOP
        PERFORM procrastinate_retry_job_v2(dead.procrastinate_job_id, now(), NULL, NULL, NULL);
        resumed := resumed || dead.id;
    END LOOP;

    -- 2. Queued jobs whose task can no longer run (cancelled, aborted, failed, deleted).
    WITH gone AS (
        SELECT j.id FROM pgbulk_job j
        LEFT JOIN procrastinate_jobs pj ON pj.id = j.procrastinate_job_id
        WHERE j.status = 'queued' AND j.run_mode = 'async'
          AND (pj.id IS NULL OR pj.status IN ('cancelled', 'aborted', 'failed', 'succeeded'))
          AND NOT pgbulk_job_lock_held(j.id)
        LIMIT batch FOR UPDATE OF j SKIP LOCKED
    ), updated AS (
        UPDATE pgbulk_job j SET status = 'failed', finished_at = now(),
            message = 'Its queued task was cancelled, aborted, failed or deleted before it ran.'
        FROM gone WHERE j.id = gone.id RETURNING j.id
    )
    SELECT coalesce(array_agg(id), '{}') INTO abandoned FROM updated;
    DELETE FROM pgbulk_reservation WHERE job_id = ANY(abandoned);
    GET DIAGNOSTICS n = ROW_COUNT;
    released := released + n;

    -- 3. Jobs running past max_task_duration: ask them to stop, and say so.
    WITH stuck AS (
        UPDATE pgbulk_job SET cancel_requested = true,
            message = 'Running longer than ' || max_task_duration::text || '; asked to stop.'
        WHERE id IN (SELECT id FROM pgbulk_job WHERE status = 'running' AND NOT cancel_requested
                     AND started_at < now() - max_task_duration LIMIT batch)
        RETURNING id
    )
    SELECT coalesce(array_agg(id), '{}') INTO flagged FROM stuck;

    -- 4. Reservations of finished or missing jobs (a finished job holds none), and
    --    reservations older than conflict_ttl of jobs that are neither alive nor waiting.
    DELETE FROM pgbulk_reservation r
    WHERE r.job_id IN (
        SELECT DISTINCT r2.job_id FROM pgbulk_reservation r2
        LEFT JOIN pgbulk_job j ON j.id = r2.job_id
        WHERE j.id IS NULL OR j.status IN ('succeeded', 'failed', 'cancelled')
           OR (r2.created_at < now() - conflict_ttl AND j.status = 'running'
               AND NOT pgbulk_job_alive(j.id, heartbeat_timeout))
        LIMIT batch
    );
    GET DIAGNOSTICS n = ROW_COUNT;
    released := released + n;

    -- 5. Progress rows of jobs finished more than progress_ttl ago, or gone.
    DELETE FROM pgbulk_progress p
    WHERE p.job_id IN (
        SELECT p2.job_id FROM pgbulk_progress p2 LEFT JOIN pgbulk_job j ON j.id = p2.job_id
        WHERE j.id IS NULL OR j.finished_at < now() - progress_ttl LIMIT batch
    );
    GET DIAGNOSTICS deleted_progress = ROW_COUNT;

    -- 6. History past job_retention.
    DELETE FROM pgbulk_job WHERE id IN (
        SELECT id FROM pgbulk_job
        WHERE status IN ('succeeded', 'failed', 'cancelled')
          AND finished_at < now() - job_retention
        LIMIT batch
    );
    GET DIAGNOSTICS deleted_jobs = ROW_COUNT;

    RETURN jsonb_build_object(
        'skipped', false, 'resumed', to_jsonb(resumed),
        'failed', to_jsonb(failed || abandoned), 'flagged', to_jsonb(flagged),
        'released', released, 'deleted_progress', deleted_progress,
        'deleted_jobs', deleted_jobs
    );
END;
$$;
COMMENT ON FUNCTION pgbulk_sweep(interval, interval, interval, interval, interval, integer) IS
    'pgbulk safety net: resume or fail jobs of dead workers, release orphaned locks, expire history.';

-- migrate:down
DROP FUNCTION IF EXISTS pgbulk_sweep(interval, interval, interval, interval, interval, integer);
