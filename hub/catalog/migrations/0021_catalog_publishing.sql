-- What the catalog publisher needs: the version of the tenant's settings (currency, whether shelf prices
-- include tax), the version each tenant's catalog stream holds, and a notification on every version bump.

ALTER TABLE catalog_versions ADD COLUMN settings_version bigint NOT NULL DEFAULT 0;

-- Written by the publisher once JetStream acknowledged every message of the version, never before: a
-- publisher that dies mid-way republishes from here (the stream keeps one message per subject, so a
-- message published twice is harmless).
CREATE TABLE catalog_published (
    tenant        text PRIMARY KEY REFERENCES tenants,
    version       bigint NOT NULL,
    published_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX tax_classes_version ON tax_classes (tenant, version);
CREATE INDEX products_version ON products (tenant, version);

-- Every hub process's publisher LISTENs here: a change made by any process wakes them at its commit.
CREATE FUNCTION catalog_version_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('novapos_catalog', NEW.tenant);
    RETURN NULL;
END $$;

CREATE TRIGGER catalog_version_notify AFTER INSERT OR UPDATE ON catalog_versions
    FOR EACH ROW EXECUTE FUNCTION catalog_version_notify();
