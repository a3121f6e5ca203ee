-- The version of a tenant's staff lists (novapos.wire.staff): bumped in the same transaction as any change
-- to its users or their roles, so a store's list only ever moves forward and a store keeps the newest one.
CREATE TABLE staff_versions (
    tenant   text PRIMARY KEY REFERENCES tenants,
    version  bigint NOT NULL
);
-- A store's staff list reads the users holding a role at that store.
CREATE INDEX user_roles_by_user ON user_roles (user_id);
-- Keyset pages of a tenant's users by login (users_by_tenant covers it) need nothing more.
