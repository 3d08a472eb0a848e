-- migrate:up
-- pgbulk_spans_overlap: whether the spans a job reserved after a sequence number
-- overlap another job's exclusive spans of the same model. A span holds at most
-- reach + 1 keys, so each new span is checked with one probe of the
-- (model, key_lo) index. The probe is a LATERAL subquery on purpose: the table
-- was just filled and its statistics are stale, and a plain join would then be
-- planned as every span against every span.
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
    )
$$;
COMMENT ON FUNCTION pgbulk_spans_overlap(uuid, bigint, integer) IS
    'Whether a job''s new spans overlap another job''s exclusive spans (index probes only).';

-- migrate:down
DROP FUNCTION IF EXISTS pgbulk_spans_overlap(uuid, bigint, integer);
