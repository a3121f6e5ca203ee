-- The version of a tenant's staff lists (novapos.wire.staff): bumped in the same transaction as any change
-- to its users or their roles, so a store's list only ever moves forward and a store keeps the newest one.
-- (A store's list reads user_roles_by_store; a user's roles, user_roles_once, which starts with user_id.)
CREATE TABLE staff_versions (
    tenant   text PRIMARY KEY REFERENCES tenants,
    version  bigint NOT NULL
);
