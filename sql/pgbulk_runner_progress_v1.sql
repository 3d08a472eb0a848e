-- migrate:up
-- pgbulk_runner_progress: what each runner of a job has processed in the
-- transaction it has open (its chunk, or an atomic job's whole run), written
-- beside that transaction a few times a second. The committed figures are on
-- pgbulk_job; a reader adds the in-flight counts of the runners still alive, so
-- several workers on one job add up, and a runner that died counts for nothing.
-- UNLOGGED: cheap, and rightly empty after a crash.
CREATE UNLOGGED TABLE IF NOT EXISTS pgbulk_runner_progress (
    job_id uuid NOT NULL,
    runner integer NOT NULL,
    done bigint NOT NULL DEFAULT 0,
    failed_count bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, runner)
);
COMMENT ON TABLE pgbulk_runner_progress IS
    'Records each live runner of a job has processed but not committed yet (UNLOGGED).';

-- migrate:down
DROP TABLE IF EXISTS pgbulk_runner_progress;
