-- The leases of the hub's periodic jobs (hub.leases): one row per job, held by one hub process until expires_at
-- (PostgreSQL's clock), renewed by it every third of [leases] ttl_s; token grows by one at each change of holder.
CREATE TABLE hub_leases (
    job text PRIMARY KEY,
    holder text NOT NULL,
    token bigint NOT NULL,
    acquired_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
