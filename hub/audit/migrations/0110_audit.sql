-- The audit log: one append-only hash chain per tenant (hub.audit.chain). Each record's hash is
-- SHA-256(previous record's hash || canonical encoding of the record); the first record's previous
-- hash is 32 zero bytes. audit_heads holds each chain's length and head hash, locked by every append,
-- so a tenant's records are numbered 1, 2, 3... with no gap and no fork.
CREATE TABLE audit_heads (
    tenant  text PRIMARY KEY,
    seq     bigint NOT NULL,
    hash    bytea NOT NULL
);

CREATE TABLE audit_records (
    tenant       text NOT NULL,
    seq          bigint NOT NULL,
    at           timestamptz NOT NULL,           -- when it happened: the hub's clock, or the till's for a store's record
    actor        text NOT NULL,                  -- a user's login, or 'cli:<os user>', or 'system'
    action       text NOT NULL,                  -- what was done: 'login.failed', 'price.set', 'drawer.no_sale'...
    store        text,                           -- the store it concerns; none for the tenant's own matters
    target       text,                           -- what it was done to: an SKU, a user's login, an event id
    details      jsonb NOT NULL DEFAULT '{}',
    prev_hash    bytea NOT NULL,
    hash         bytea NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now(),  -- when the hub wrote it (not in the hash: the order is)
    PRIMARY KEY (tenant, seq)
);

CREATE FUNCTION audit_records_are_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % on audit_records is refused', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'audit records are never changed or removed; record a correcting action instead';
END
$$;
CREATE TRIGGER audit_records_no_update_or_delete BEFORE UPDATE OR DELETE ON audit_records
    FOR EACH ROW EXECUTE FUNCTION audit_records_are_append_only();
CREATE TRIGGER audit_records_no_truncate BEFORE TRUNCATE ON audit_records
    FOR EACH STATEMENT EXECUTE FUNCTION audit_records_are_append_only();
-- Privileges too: a role that is not the table's owner (the hub's, in production) may only add and read.
REVOKE UPDATE, DELETE, TRUNCATE ON audit_records FROM PUBLIC;
