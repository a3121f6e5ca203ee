-- migration: no-transaction
-- A customer's own audit records (target = their id), read by their export and deleted beside by their erasure
-- (hub.customers.privacy): (tenant, target, seq) reads them in order from each partition instead of scanning every
-- month of the tenant's history. Built partition by partition without a write lock (hub.db); months made later get
-- it as they are attached.
CREATE INDEX CONCURRENTLY IF NOT EXISTS audit_records_by_target ON audit_records (tenant, target, seq);
