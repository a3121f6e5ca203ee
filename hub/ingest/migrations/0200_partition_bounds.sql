-- Monthly partitions for the tables that grow with every sale (issue 13), step 1 of 3: the bound below which the
-- rows already there stay, in the old table attached as one partition (0202). inbox, sales, sale_lines and
-- sale_tenders are partitioned by RANGE (event_id): an event id is a UUIDv7 (novapos.wire.ids), time-ordered
-- by its first 48 bits (milliseconds since 1970), so a month is an id range and every unique key (the event id)
-- still holds across partitions: the inbox's primary key stays the final guard against double application.
-- The bound is the first instant of the month after next (a month of slack before any store's id reaches it),
-- or above the largest id already held (a store whose clock ran ahead, an id that is no UUIDv7).
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

INSERT INTO partition_legacy (relation, bound)
SELECT relation, greatest(uuid7_floor(date_trunc('month', now()) + interval '2 months'),
                          uuid7_floor(date_trunc('month', uuid7_time(held.top)) + interval '1 month'))
FROM unnest(ARRAY['inbox', 'sales', 'sale_lines', 'sale_tenders']) AS relation,
     (SELECT greatest((SELECT event_id FROM inbox ORDER BY event_id DESC LIMIT 1),
                      (SELECT event_id FROM sales ORDER BY event_id DESC LIMIT 1),
                      (SELECT event_id FROM sale_lines ORDER BY event_id DESC LIMIT 1),
                      (SELECT event_id FROM sale_tenders ORDER BY event_id DESC LIMIT 1),
                      '00000000-0000-0000-0000-000000000000'::uuid) AS top) AS held;

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
