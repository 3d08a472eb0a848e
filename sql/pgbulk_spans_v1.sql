-- migrate:up
-- pgbulk_spans_overlap: whether the spans a job reserved after a sequence number
-- overlap another job's exclusive reservations of the same model: its spans, and
-- the one-row-per-key reservations of integer keys that a process of the previous
-- release may still write during an upgrade. A span holds at most reach + 1
-- keys, so each new span is checked with one probe of the (model, key_lo) index.
-- The probes are LATERAL subqueries on purpose: the table was just filled and its
-- statistics are stale, and a plain join would be planned as all against all.
CREATE OR REPLACE FUNCTION pgbulk_spans_overlap(job_id uuid, after bigint, reach integer)
RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT 1 FROM pgbulk_reservation n
        CROSS JOIN LATERAL (
            SELECT 1 FROM pgbulk_reservation r
            WHERE r.model = n.model AND r.key_lo IS NOT NULL
              AND r.key_lo BETWEEN n.key_lo - reach AND n.key_lo + n.span - 1
              AND r.key_lo + r.span - 1 >= n.key_lo
              AND r.exclusive AND r.job_id <> n.job_id
            LIMIT 1
        ) AS hit
        WHERE n.job_id = pgbulk_spans_overlap.job_id AND n.seq > after
          AND n.exclusive AND n.key_lo IS NOT NULL
    ) OR EXISTS (
        SELECT 1 FROM pgbulk_reservation n
        CROSS JOIN LATERAL generate_series(n.key_lo, n.key_lo + n.span - 1) AS k
        JOIN pgbulk_reservation old ON old.model = n.model AND old.object_pk = k::text
         AND old.key_lo IS NULL AND old.exclusive AND old.job_id <> n.job_id
        WHERE n.job_id = pgbulk_spans_overlap.job_id AND n.seq > after
          AND n.exclusive AND n.key_lo IS NOT NULL
          AND EXISTS (SELECT 1 FROM pgbulk_reservation l  -- only while old rows exist
                      WHERE l.model = n.model AND l.key_lo IS NULL AND l.exclusive)
    )
$$;
COMMENT ON FUNCTION pgbulk_spans_overlap(uuid, bigint, integer) IS
    'Whether a job''s new spans overlap another job''s exclusive reservations (index probes).';

-- pgbulk_reservation_key_overlap: a reservation of one integer key written by a
-- process of the previous release (no key_lo) must not overlap a span either: the
-- unique index that process relies on cannot see spans, so this check raises the
-- same unique violation it expects from a conflict.
CREATE OR REPLACE FUNCTION pgbulk_reservation_key_overlap() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    k bigint := NEW.object_pk::bigint;
BEGIN
    IF EXISTS (
        SELECT 1 FROM pgbulk_reservation r
        WHERE r.model = NEW.model AND r.key_lo BETWEEN k - 99 AND k
          AND r.key_lo + r.span - 1 >= k AND r.exclusive AND r.job_id <> NEW.job_id
    ) THEN
        RAISE EXCEPTION 'duplicate key value violates unique constraint "pgbulk_reservation_record_uniq"'
            USING ERRCODE = 'unique_violation', CONSTRAINT = 'pgbulk_reservation_record_uniq';
    END IF;
    RETURN NEW;
END;
$$;
COMMENT ON FUNCTION pgbulk_reservation_key_overlap() IS
    'Refuses a one-key reservation (previous release) that a span of another job covers.';

CREATE TRIGGER pgbulk_reservation_key_overlap
BEFORE INSERT ON pgbulk_reservation
FOR EACH ROW WHEN (NEW.key_lo IS NULL AND NEW.exclusive AND NEW.object_pk ~ '^-?[0-9]{1,18}$')
EXECUTE FUNCTION pgbulk_reservation_key_overlap();
COMMENT ON TRIGGER pgbulk_reservation_key_overlap ON pgbulk_reservation IS
    'Keeps one-key reservations of the previous release and spans exclusive of each other.';

COMMENT ON TABLE pgbulk_reservation IS
    'Conflict locks: spans of consecutive integer keys, or one row per other key, held by a job '
    '(exclusive ones never overlap); vacuumed after every 10000 dead rows.';

-- migrate:down
COMMENT ON TABLE pgbulk_reservation IS
    'Conflict locks: one row per record held by a job (unique per record when exclusive); '
    'vacuumed after every 10000 dead rows.';
DROP TRIGGER IF EXISTS pgbulk_reservation_key_overlap ON pgbulk_reservation;
DROP FUNCTION IF EXISTS pgbulk_reservation_key_overlap();
DROP FUNCTION IF EXISTS pgbulk_spans_overlap(uuid, bigint, integer);
