-- Users of the console and the tills. A login is unique across the hub (one sign-in form for every
-- tenant). Passwords and till PINs are kept only as slow salted verifiers (hub.identity.passwords);
-- a user without a password cannot sign in to the console, one without a PIN cannot log in at a till.
CREATE TABLE users (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant          text NOT NULL REFERENCES tenants,
    login           text NOT NULL UNIQUE,
    name            text NOT NULL,
    password_hash   text,
    pin_verifier    text,
    active          boolean NOT NULL DEFAULT true,
    failed_logins   integer NOT NULL DEFAULT 0,
    locked_until    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX users_by_tenant ON users (tenant, login);

-- A role held over the tenant (no region, no store), one region, or one store (novapos.roles.SCOPE_OF).
CREATE TABLE user_roles (
    user_id  bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    tenant   text NOT NULL,
    role     text NOT NULL CHECK (role IN ('tenant_admin', 'regional_admin', 'store_manager', 'supervisor', 'cashier')),
    region   text,
    store    text,
    CHECK (CASE role WHEN 'tenant_admin' THEN region IS NULL AND store IS NULL
                     WHEN 'regional_admin' THEN region IS NOT NULL AND store IS NULL
                     ELSE store IS NOT NULL AND region IS NULL END),
    FOREIGN KEY (tenant, region) REFERENCES regions,
    FOREIGN KEY (tenant, store) REFERENCES stores
);
CREATE UNIQUE INDEX user_roles_once ON user_roles (user_id, role, coalesce(region, ''), coalesce(store, ''));
CREATE INDEX user_roles_by_store ON user_roles (tenant, store) WHERE store IS NOT NULL;

-- A console sign-in. The browser holds the token; the hub keeps only its SHA-256, so a leaked table
-- signs nobody in. The CSRF token is sent back by the page in a header on every change.
CREATE TABLE console_sessions (
    token_hash    bytea PRIMARY KEY,
    user_id       bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    csrf          text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);
CREATE INDEX console_sessions_by_user ON console_sessions (user_id);
CREATE INDEX console_sessions_by_expiry ON console_sessions (expires_at);
