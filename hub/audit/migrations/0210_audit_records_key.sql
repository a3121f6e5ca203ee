-- migration: no-transaction
-- Monthly partitions of the audit log (issue 13), step 1 of 4: PARTITION BY RANGE (recorded_at), the hub's clock
-- when it wrote the record (its default, never the till's `at`, which may run far behind or ahead). A partitioned
-- table's unique key must hold the partition key: (tenant, seq, recorded_at), built here without a write lock,
-- becomes the legacy partition's key in 0213. A seq is still given once per tenant: by the chain's head row in
-- audit_heads, which every append locks (hub.audit.chain).
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS audit_records_tenant_seq_recorded ON audit_records (tenant, seq, recorded_at);
