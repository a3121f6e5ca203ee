-- Whether a store runs its own NATS leaf node (novapos.leaf), set by `novapos hub store leaf TENANT STORE on|off`
-- (audited store.leaf_on / store.leaf_off): its NATS user logs in as a leaf node, and the hub's events stream
-- sources its local stream (hub.ingest.leaf_sources reads it every round, so every hub process agrees at once).
-- A constant default: PostgreSQL records it in the catalog, no rewrite, a moment's lock.
ALTER TABLE stores ADD COLUMN leaf boolean NOT NULL DEFAULT false;
