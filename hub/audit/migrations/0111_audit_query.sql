-- Searching the audit log (GET /api/audit): newest first by seq, filtered by store, actor, action or time,
-- each filter served by an index that ends in seq, so a page is an index range read backwards, never a
-- scan of the tenant's whole history.
CREATE INDEX audit_records_by_store ON audit_records (tenant, store, seq);
CREATE INDEX audit_records_by_actor ON audit_records (tenant, actor, seq);
CREATE INDEX audit_records_by_action ON audit_records (tenant, action, seq);
CREATE INDEX audit_records_by_time ON audit_records (tenant, at);

-- Personal data kept beside the chain (P2-03): a personal field's value never enters a hashed record; the
-- record holds a salted commitment "sha256:<hex of SHA-256(salt || value's JSON text)>" and this table the
-- value and its salt, until retention purges it or an erasure deletes it. Deleting here changes no
-- record, so the chain verifies before and after; a kept value can be proven to be the one committed.
CREATE TABLE audit_personal (
    tenant  text NOT NULL,
    seq     bigint NOT NULL,
    field   text NOT NULL,
    value   jsonb NOT NULL,
    salt    bytea NOT NULL,
    at      timestamptz NOT NULL,   -- the record's time: retention counts from it
    PRIMARY KEY (tenant, seq, field),
    FOREIGN KEY (tenant, seq) REFERENCES audit_records (tenant, seq)
);
CREATE INDEX audit_personal_by_time ON audit_personal (at);
