-- Monthly partitions of the stock ledger, step 2 of 4: the rows written before the month after next (its first
-- instant in UTC, whatever the server's TimeZone: reckoned on a timestamp in UTC, as 0200) stay in the old table,
-- attached in 0206 as stock_movements_legacy (partition_legacy keeps the bound, as the smallest UUIDv7 of that
-- instant, beside the event-id tables'). Enforced for new rows at once (created_at is now(): none is near the
-- bound), checked for the old ones by 0205 without a write lock.
INSERT INTO partition_legacy (relation, bound)
VALUES ('stock_movements',
        uuid7_floor((date_trunc('month', now() AT TIME ZONE 'UTC') + interval '2 months') AT TIME ZONE 'UTC'));

DO $$
BEGIN
    EXECUTE format('ALTER TABLE stock_movements ADD CONSTRAINT stock_movements_before_partitions'
                   ' CHECK (created_at < %L) NOT VALID',
                   (SELECT uuid7_time(bound) FROM partition_legacy WHERE relation = 'stock_movements'));
END
$$;
