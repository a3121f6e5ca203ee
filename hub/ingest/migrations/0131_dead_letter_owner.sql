-- Whose a dead letter is, for the console to show each user only their stores' letters and to authorize a
-- re-drive at the letter's store: the tenant and store of its subject (novapos.<tenant>.<store>.evt.<type>),
-- which NATS permissions confine a store to. A subject of another shape leaves both NULL: such a letter is
-- the operator's (`novapos hub dead-letters`), no console user's.
ALTER TABLE dead_letters
    ADD COLUMN tenant text GENERATED ALWAYS AS (substring(subject FROM '^novapos\.([^.]+)\.[^.]+\.evt\.')) STORED,
    ADD COLUMN store text GENERATED ALWAYS AS (substring(subject FROM '^novapos\.[^.]+\.([^.]+)\.evt\.')) STORED;
CREATE INDEX dead_letters_by_tenant ON dead_letters (tenant, id);
CREATE INDEX dead_letters_by_store ON dead_letters (tenant, store, id);
