-- Monthly partitions of the audit log, step 4 of 4 (as 0202 and 0206): audit_records becomes PARTITION BY RANGE
-- (recorded_at), the old table attached as audit_records_legacy (FROM MINVALUE to 0211's bound, ATTACH trusting the
-- validated check) with its indexes adopted as they are, and audit_records_default. hub.partitions makes the months
-- ahead and retires none: audit records are evidence, and a chain verifies from its first record.
--
-- The key is (tenant, seq, recorded_at) (a partitioned table's unique key must hold its partition key): it no longer
-- proves by itself that a tenant's seq is given once. The chain does: every append reads and bumps the tenant's
-- audit_heads row under FOR UPDATE in one statement (hub.audit.chain), so appends to a tenant are serialised and
-- each takes the seq after the last one (tests/test_audit_partitions.py runs concurrent writers), and verify.py
-- names any seq that is missing or out of order. The legacy partition keeps its own (tenant, seq) key too.
-- The append-only trigger lets one delete through: hub.partitions moving a record from the default partition into
-- the month it makes (both in one statement, the record unchanged: a hub clock run past every month made, or the
-- upkeep stopped for months), which it says with novapos.partition_move for that transaction. Only the default
-- partition, only that (the owner could switch the triggers off anyway; verify.py proves nothing went missing).
CREATE OR REPLACE FUNCTION audit_records_are_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND TG_TABLE_NAME = 'audit_records_default'
       AND current_setting('novapos.partition_move', true) = 'audit_records' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'the audit log is append-only: % on audit_records is refused', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'audit records are never changed or removed; record a correcting action instead';
END
$$;

-- lock-ok: contract: the name is taken over in this transaction by the partitioned table, same columns
ALTER TABLE audit_records RENAME TO audit_records_legacy;
ALTER TABLE audit_records_legacy ADD CONSTRAINT audit_records_legacy_key UNIQUE USING INDEX audit_records_tenant_seq_recorded;
-- lock-ok: contract: the old key's name moves to the partitioned table's (the index stays, the legacy partition's own)
ALTER TABLE audit_records_legacy RENAME CONSTRAINT audit_records_pkey TO audit_records_legacy_pkey;
ALTER INDEX audit_records_by_store RENAME TO audit_records_legacy_by_store;
ALTER INDEX audit_records_by_actor RENAME TO audit_records_legacy_by_actor;
ALTER INDEX audit_records_by_action RENAME TO audit_records_legacy_by_action;
ALTER INDEX audit_records_by_time RENAME TO audit_records_legacy_by_time;
-- The partitioned table's row trigger is cloned onto every partition, the legacy one included: its own goes, in this
-- transaction (no moment without one). Its TRUNCATE trigger stays (statement triggers are not cloned).
DROP TRIGGER audit_records_no_update_or_delete ON audit_records_legacy;
ALTER TRIGGER audit_records_no_truncate ON audit_records_legacy RENAME TO audit_records_legacy_no_truncate;

CREATE TABLE audit_records (LIKE audit_records_legacy INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE
                            INCLUDING COMMENTS)
    PARTITION BY RANGE (recorded_at);
ALTER TABLE audit_records DROP CONSTRAINT audit_records_before_partitions;
ALTER TABLE audit_records ADD CONSTRAINT audit_records_pkey PRIMARY KEY (tenant, seq, recorded_at);
CREATE INDEX audit_records_by_store ON audit_records (tenant, store, seq);
CREATE INDEX audit_records_by_actor ON audit_records (tenant, actor, seq);
CREATE INDEX audit_records_by_action ON audit_records (tenant, action, seq);
CREATE INDEX audit_records_by_time ON audit_records (tenant, at);
CREATE TRIGGER audit_records_no_update_or_delete BEFORE UPDATE OR DELETE ON audit_records
    FOR EACH ROW EXECUTE FUNCTION audit_records_are_append_only();
CREATE TRIGGER audit_records_no_truncate BEFORE TRUNCATE ON audit_records
    FOR EACH STATEMENT EXECUTE FUNCTION audit_records_are_append_only();
REVOKE UPDATE, DELETE, TRUNCATE ON audit_records FROM PUBLIC;
CREATE TABLE audit_records_default PARTITION OF audit_records DEFAULT;
CREATE TRIGGER audit_records_default_no_truncate BEFORE TRUNCATE ON audit_records_default
    FOR EACH STATEMENT EXECUTE FUNCTION audit_records_are_append_only();

-- The grants the old table had (the hub's role: SELECT, INSERT) are given on the partitioned table, which every
-- statement names; the bound is 0211's, so both are written by EXECUTE.
DO $$
DECLARE
    granted record;
BEGIN
    FOR granted IN SELECT a.privilege_type, a.grantee FROM pg_class c, aclexplode(c.relacl) a
                   WHERE c.oid = 'audit_records_legacy'::regclass AND a.grantee <> c.relowner LOOP
        EXECUTE format('GRANT %s ON audit_records TO %s', granted.privilege_type,
                       CASE granted.grantee WHEN 0 THEN 'PUBLIC' ELSE quote_ident(granted.grantee::regrole::text) END);
    END LOOP;
    EXECUTE format('ALTER TABLE audit_records ATTACH PARTITION audit_records_legacy FOR VALUES FROM (MINVALUE) TO (%L)',
                   (SELECT uuid7_time(bound) FROM partition_legacy WHERE relation = 'audit_records'));
END
$$;
