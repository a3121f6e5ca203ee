-- Monthly partitions for the tables that grow with every sale (issue 13), step 1 of 3: the bound below which the
-- rows already there stay, in the old table attached as one partition (0202). inbox, sales, sale_lines and
-- sale_tenders are partitioned by RANGE (event_id): an event id is a UUIDv7 (novapos.wire.ids), time-ordered
-- by its first 48 bits (milliseconds since 1970), so a month is an id range and every unique key (the event id)
-- still holds across partitions: the inbox's primary key stays the final guard against double application.
-- The bound is the first instant (UTC, whatever the server's TimeZone) of the month after next: a month of slack
-- before any store's id reaches it. A row already held above it (a store clock far ahead, an id that is no UUIDv7)
-- does not push the bound out (one such id would leave every row in the legacy partition for years): it is moved
-- aside here, into partition_held_<table>, and put back through the partitioned table by 0207 (into its default
-- partition, or its month's). The foreign keys naming these tables go first, here rather than in 0202, so that a
-- row moved aside may have others naming it (see 0202 for why they go).
CREATE FUNCTION uuid7_floor(t timestamptz) RETURNS uuid LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (lpad(to_hex(floor(extract(epoch FROM t) * 1000)::bigint), 12, '0') || '00000000000000000000')::uuid
$$;
COMMENT ON FUNCTION uuid7_floor(timestamptz) IS 'the smallest UUIDv7 of that millisecond: a partition bound';

CREATE FUNCTION uuid7_time(id uuid) RETURNS timestamptz LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT to_timestamp(('x' || substr(replace(id::text, '-', ''), 1, 12))::bit(48)::bigint / 1000.0)
$$;
COMMENT ON FUNCTION uuid7_time(uuid) IS 'the time a UUIDv7 carries (its first 48 bits)';

CREATE TABLE partition_legacy (
    relation  text PRIMARY KEY,
    bound     uuid NOT NULL,
    made_at   timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE partition_legacy IS
    'each partitioned table''s rows from before partitioning: its _legacy partition holds every id below bound';

-- The four tables locked at once, in ingest's order (inbox, sales, lines, tenders: no deadlock with it), for the
-- rest of this short transaction: dropping a key, moving the few rows above the bound (by the key's index) and
-- adding a NOT VALID check read nothing else. Ingest waits for it (lock_timeout, retried by hub.db).
-- lock-ok: table-rewrite: held for this short transaction only (no scan, no build), in ingest's order
LOCK TABLE inbox, sales, sale_lines, sale_tenders IN ACCESS EXCLUSIVE MODE;
ALTER TABLE store_seq_reuses DROP CONSTRAINT store_seq_reuses_event_id_fkey;
ALTER TABLE drawer_sessions DROP CONSTRAINT drawer_sessions_event_id_fkey;
ALTER TABLE drawer_moves DROP CONSTRAINT drawer_moves_event_id_fkey;
ALTER TABLE z_reports DROP CONSTRAINT z_reports_event_id_fkey;
ALTER TABLE drawer_sales DROP CONSTRAINT drawer_sales_event_id_fkey;
ALTER TABLE returns DROP CONSTRAINT returns_event_id_fkey;
ALTER TABLE promotion_diffs DROP CONSTRAINT promotion_diffs_event_id_fkey;
ALTER TABLE sale_price_diffs DROP CONSTRAINT sale_price_diffs_event_id_line_no_fkey;

-- Reckoned on a timestamp in UTC: on a timestamptz, date_trunc and + interval '2 months' count in the session's
-- TimeZone (in Berlin the bound came out an hour before the month in UTC, and hub.partitions' months overlapped it).
INSERT INTO partition_legacy (relation, bound)
SELECT relation,
       uuid7_floor((date_trunc('month', now() AT TIME ZONE 'UTC') + interval '2 months') AT TIME ZONE 'UTC')
FROM unnest(ARRAY['inbox', 'sales', 'sale_lines', 'sale_tenders']) AS relation;

-- The rows above the bound, moved aside (lines and tenders first: they name their sale, which names its event).
DO $$
DECLARE
    name text;
    moved bigint;
BEGIN
    FOREACH name IN ARRAY ARRAY['sale_lines', 'sale_tenders', 'sales', 'inbox'] LOOP
        EXECUTE format('CREATE TABLE %I (LIKE %I)', 'partition_held_' || name, name);
        EXECUTE format('WITH moved AS (DELETE FROM %I WHERE event_id >= %L RETURNING *)'
                       ' INSERT INTO %I SELECT * FROM moved', name,
                       (SELECT bound FROM partition_legacy WHERE relation = name), 'partition_held_' || name);
        GET DIAGNOSTICS moved = ROW_COUNT;
        IF moved > 0 THEN
            RAISE NOTICE '% row(s) of % have an event id above the partition bound (a store clock far ahead or an id '
                         'that is no UUIDv7): moved aside, put back by migration 0207', moved, name;
        END IF;
    END LOOP;
END
$$;

-- Enforced for new rows at once, checked for the old ones by 0201 (VALIDATE: no write lock); ATTACH (0202) then
-- trusts it instead of scanning the table under an exclusive lock. A bound in a literal needs EXECUTE.
DO $$
DECLARE
    name text;
BEGIN
    FOR name IN SELECT relation FROM partition_legacy LOOP
        EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (event_id < %L) NOT VALID', name,
                       name || '_before_partitions', (SELECT bound FROM partition_legacy WHERE relation = name));
    END LOOP;
END
$$;
