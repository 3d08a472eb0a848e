-- migrate:up
-- pgbulk_lock_summary: who holds how many records of which model (a row holds
-- `span` records: a run of consecutive integer keys, or one record).
CREATE OR REPLACE VIEW pgbulk_lock_summary AS
SELECT r.job_id, j.status, j.user_id, r.model,
       coalesce(sum(r.span) FILTER (WHERE r.is_target), 0) AS targets,
       coalesce(sum(r.span) FILTER (WHERE NOT r.is_target), 0) AS descendants,
       bool_and(r.exclusive) AS exclusive, min(r.created_at) AS since
FROM pgbulk_reservation r LEFT JOIN pgbulk_job j ON j.id = r.job_id
GROUP BY r.job_id, j.status, j.user_id, r.model;
COMMENT ON VIEW pgbulk_lock_summary IS 'Reserved records per job and model.';

-- migrate:down
DROP VIEW IF EXISTS pgbulk_lock_summary;
CREATE VIEW pgbulk_lock_summary AS
SELECT r.job_id, j.status, j.user_id, r.model,
       count(*) FILTER (WHERE r.is_target) AS targets,
       count(*) FILTER (WHERE NOT r.is_target) AS descendants,
       bool_and(r.exclusive) AS exclusive, min(r.created_at) AS since
FROM pgbulk_reservation r LEFT JOIN pgbulk_job j ON j.id = r.job_id
GROUP BY r.job_id, j.status, j.user_id, r.model;
COMMENT ON VIEW pgbulk_lock_summary IS 'Reserved records per job and model.';
