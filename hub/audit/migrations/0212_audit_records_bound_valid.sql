-- Monthly partitions of the audit log, step 3 of 4: the old records checked against 0211's bound, under SHARE UPDATE
-- EXCLUSIVE (appends and the console's searches go on).
ALTER TABLE audit_records VALIDATE CONSTRAINT audit_records_before_partitions;
