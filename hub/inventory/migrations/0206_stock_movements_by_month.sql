-- Monthly partitions of the stock ledger, step 4 of 4 (as 0202 for the event-id tables): stock_movements becomes
-- PARTITION BY RANGE (created_at), the old table attached as stock_movements_legacy (FROM MINVALUE to 0204's bound,
-- ATTACH trusting the validated check) with its indexes adopted as they are, and stock_movements_default. Ids go
-- on from the old table's last one (the partitioned table's identity). The key is (id, created_at): an id is
-- still given once, by the identity; nothing refers to a movement by id alone (no foreign key, no ON CONFLICT).
-- The ledger is kept for good (its movements add up to the balances): hub.partitions makes months, retires none.
-- lock-ok: contract: the name is taken over in this transaction by the partitioned table, same columns
ALTER TABLE stock_movements RENAME TO stock_movements_legacy;
ALTER TABLE stock_movements_legacy ADD CONSTRAINT stock_movements_legacy_key UNIQUE USING INDEX stock_movements_id_created;
ALTER INDEX stock_movements_location_sku RENAME TO stock_movements_legacy_location_sku;
ALTER INDEX stock_movements_review RENAME TO stock_movements_legacy_review;
CREATE TABLE stock_movements (LIKE stock_movements_legacy INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING IDENTITY
                              INCLUDING STORAGE INCLUDING COMMENTS)
    PARTITION BY RANGE (created_at);
ALTER TABLE stock_movements DROP CONSTRAINT stock_movements_before_partitions;
ALTER TABLE stock_movements ADD CONSTRAINT stock_movements_key UNIQUE (id, created_at);
ALTER TABLE stock_movements ADD FOREIGN KEY (location_id) REFERENCES locations;
CREATE INDEX stock_movements_location_sku ON stock_movements (location_id, sku, id);
CREATE INDEX stock_movements_review ON stock_movements (tenant, id) WHERE flags <> '{}';
CREATE TABLE stock_movements_default PARTITION OF stock_movements DEFAULT;

DO $$
BEGIN
    EXECUTE format('ALTER TABLE stock_movements ATTACH PARTITION stock_movements_legacy FOR VALUES FROM (MINVALUE)'
                   ' TO (%L)', (SELECT uuid7_time(bound) FROM partition_legacy WHERE relation = 'stock_movements'));
    PERFORM setval(pg_get_serial_sequence('stock_movements', 'id'),
                   greatest((SELECT max(id) FROM stock_movements_legacy), 1),
                   (SELECT max(id) FROM stock_movements_legacy) IS NOT NULL);
END
$$;
