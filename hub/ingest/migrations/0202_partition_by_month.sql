-- Monthly partitions, step 3 of 3: each table becomes a partitioned table of the same name, PARTITION BY RANGE
-- (event_id), with the old table (renamed <name>_legacy) attached as its first partition, FROM MINVALUE to 0200's
-- bound, and a <name>_default partition for an id above every month made so far (a store clock far ahead, an id
-- that is no UUIDv7). hub.partitions makes the months from the bound on, ahead of time, and retires old ones.
-- One transaction: each rename takes ACCESS EXCLUSIVE for a moment (lock_timeout, retried by hub.db), ATTACH reads
-- 0201's validated CHECK instead of the rows, and the indexes below are the old table's own, matched by definition
-- (ATTACH adopts an equivalent index instead of building one). The previous release's SQL names the same tables,
-- columns and keys, so it runs on unchanged.
--
-- Foreign keys that named these tables went in 0200 (before the rows above the bound were moved aside): they would
-- name the legacy partition alone (a new row in a month partition would be refused), and a key from a table kept for
-- good (returns, drawer sessions) would forbid the inbox's retention. Each of those rows is written by its applier in the inbox's transaction, for an event the
-- inbox has just let through, as sales' own rows have been since 0061 (tests/test_ingest_exactly_once.py).

-- lock-ok: contract: the name is taken over in this transaction by the partitioned table, same columns and keys
ALTER TABLE inbox RENAME TO inbox_legacy;
-- lock-ok: contract: the key's name moves to the partitioned table (the index stays, attached to its key)
ALTER TABLE inbox_legacy RENAME CONSTRAINT inbox_pkey TO inbox_legacy_pkey;
ALTER INDEX inbox_store_seq RENAME TO inbox_legacy_store_seq;
CREATE TABLE inbox (LIKE inbox_legacy INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMMENTS)
    PARTITION BY RANGE (event_id);
ALTER TABLE inbox DROP CONSTRAINT inbox_before_partitions;
ALTER TABLE inbox ADD CONSTRAINT inbox_pkey PRIMARY KEY (event_id);
CREATE INDEX inbox_store_seq ON inbox (tenant, store, seq);
CREATE TABLE inbox_default PARTITION OF inbox DEFAULT;

-- lock-ok: contract: the name is taken over in this transaction by the partitioned table, same columns and keys
ALTER TABLE sales RENAME TO sales_legacy;
-- lock-ok: contract: the key's name moves to the partitioned table (the index stays, attached to its key)
ALTER TABLE sales_legacy RENAME CONSTRAINT sales_pkey TO sales_legacy_pkey;
ALTER INDEX sales_tenant_received RENAME TO sales_legacy_tenant_received;
ALTER INDEX sales_store_received RENAME TO sales_legacy_store_received;
ALTER INDEX sales_till_received RENAME TO sales_legacy_till_received;
ALTER INDEX sales_customer RENAME TO sales_legacy_customer;
CREATE TABLE sales (LIKE sales_legacy INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMMENTS)
    PARTITION BY RANGE (event_id);
ALTER TABLE sales DROP CONSTRAINT sales_before_partitions;
ALTER TABLE sales ADD CONSTRAINT sales_pkey PRIMARY KEY (event_id);
CREATE INDEX sales_tenant_received ON sales (tenant, received_at, event_id);
CREATE INDEX sales_store_received ON sales (tenant, store, received_at, event_id);
CREATE INDEX sales_till_received ON sales (tenant, store, till, received_at, event_id);
CREATE INDEX sales_customer ON sales (tenant, customer_id, received_at DESC, event_id DESC) WHERE customer_id IS NOT NULL;
CREATE TABLE sales_default PARTITION OF sales DEFAULT;

-- lock-ok: contract: the name is taken over in this transaction by the partitioned table, same columns and keys
ALTER TABLE sale_lines RENAME TO sale_lines_legacy;
-- lock-ok: contract: the key's name moves to the partitioned table (the index stays, attached to its key)
ALTER TABLE sale_lines_legacy RENAME CONSTRAINT sale_lines_pkey TO sale_lines_legacy_pkey;
CREATE TABLE sale_lines (LIKE sale_lines_legacy INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMMENTS)
    PARTITION BY RANGE (event_id);
ALTER TABLE sale_lines DROP CONSTRAINT sale_lines_before_partitions;
ALTER TABLE sale_lines ADD CONSTRAINT sale_lines_pkey PRIMARY KEY (event_id, line_no);
CREATE TABLE sale_lines_default PARTITION OF sale_lines DEFAULT;

-- lock-ok: contract: the name is taken over in this transaction by the partitioned table, same columns and keys
ALTER TABLE sale_tenders RENAME TO sale_tenders_legacy;
-- lock-ok: contract: the key's name moves to the partitioned table (the index stays, attached to its key)
ALTER TABLE sale_tenders_legacy RENAME CONSTRAINT sale_tenders_pkey TO sale_tenders_legacy_pkey;
CREATE TABLE sale_tenders (LIKE sale_tenders_legacy INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMMENTS)
    PARTITION BY RANGE (event_id);
ALTER TABLE sale_tenders DROP CONSTRAINT sale_tenders_before_partitions;
ALTER TABLE sale_tenders ADD CONSTRAINT sale_tenders_pkey PRIMARY KEY (event_id, tender_no);
CREATE TABLE sale_tenders_default PARTITION OF sale_tenders DEFAULT;

-- The bound is 0200's, so it is written by EXECUTE.
DO $$
DECLARE
    legacy record;
BEGIN
    FOR legacy IN SELECT relation, bound FROM partition_legacy ORDER BY relation LOOP
        EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (MINVALUE) TO (%L)',
                       legacy.relation, legacy.relation || '_legacy', legacy.bound);
    END LOOP;
END
$$;
