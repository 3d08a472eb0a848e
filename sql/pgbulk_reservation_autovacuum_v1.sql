-- migrate:up
-- pgbulk_reservation churns: a big job inserts and then deletes every one of its
-- rows. Vacuum it after a fixed number of dead rows (not a fraction of a table
-- that is usually near empty), so the next big launch does not insert into
-- indexes full of dead entries.
ALTER TABLE pgbulk_reservation SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 10000,
    autovacuum_vacuum_insert_scale_factor = 0,
    autovacuum_vacuum_insert_threshold = 10000,
    autovacuum_analyze_scale_factor = 0,
    autovacuum_analyze_threshold = 10000
);
COMMENT ON TABLE pgbulk_reservation IS
    'Conflict locks: one row per record held by a job (unique per record when exclusive); '
    'vacuumed after every 10000 dead rows.';

-- migrate:down
COMMENT ON TABLE pgbulk_reservation IS NULL;
ALTER TABLE pgbulk_reservation RESET (
    autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold,
    autovacuum_vacuum_insert_scale_factor, autovacuum_vacuum_insert_threshold,
    autovacuum_analyze_scale_factor, autovacuum_analyze_threshold
);
