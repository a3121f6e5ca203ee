-- Monthly partitions of the audit log, step 2 of 4: the records written before the month after next (its first
-- instant in UTC, whatever the server's TimeZone: reckoned as 0200 and 0204 do) stay in the old table, attached in
-- 0213 as audit_records_legacy (partition_legacy keeps the bound, as the smallest UUIDv7 of that instant). Enforced
-- for new records at once (recorded_at is now(): none is near the bound), checked for the old ones by 0212 without
-- a write lock.
INSERT INTO partition_legacy (relation, bound)
VALUES ('audit_records',
        uuid7_floor((date_trunc('month', now() AT TIME ZONE 'UTC') + interval '2 months') AT TIME ZONE 'UTC'));

DO $$
BEGIN
    EXECUTE format('ALTER TABLE audit_records ADD CONSTRAINT audit_records_before_partitions'
                   ' CHECK (recorded_at < %L) NOT VALID',
                   (SELECT uuid7_time(bound) FROM partition_legacy WHERE relation = 'audit_records'));
END
$$;

-- A foreign key may only name a unique key, and the partitioned table's is (tenant, seq, recorded_at): the one from
-- audit_personal to (tenant, seq) goes (it would name the legacy partition alone, refusing every personal value of
-- a newer record). Nothing is lost: a personal value is written by the same statement as its record (hub.audit.chain)
-- and a record is never removed (the append-only triggers, the privileges).
ALTER TABLE audit_personal DROP CONSTRAINT audit_personal_tenant_seq_fkey;
