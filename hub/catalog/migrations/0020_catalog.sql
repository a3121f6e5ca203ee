-- The catalog. Every change bumps the tenant's catalog version (catalog_versions) and stamps the
-- rows it touched with it, so the distributor finds what changed since a version with an index scan.
-- A variant (the sellable item, identified by its SKU) is stamped whenever anything it is sold with
-- changes: its product, barcodes or prices. Nothing is deleted: a variant or product is deactivated,
-- so the change travels to the stores like any other.
CREATE TABLE catalog_versions (
    tenant      text PRIMARY KEY REFERENCES tenants,
    version     bigint NOT NULL DEFAULT 0,
    changed_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tax_classes (
    tenant     text NOT NULL REFERENCES tenants,
    tax_class  text NOT NULL,
    name       text NOT NULL,
    version    bigint NOT NULL,
    PRIMARY KEY (tenant, tax_class)
);

-- A rate in parts per million of the net amount: 20 % = 200000, 8.875 % = 88750.
CREATE TABLE tax_rates (
    tenant     text NOT NULL,
    tax_class  text NOT NULL,
    region     text NOT NULL,
    rate_ppm   integer NOT NULL CHECK (rate_ppm BETWEEN 0 AND 1000000),
    version    bigint NOT NULL,
    PRIMARY KEY (tenant, tax_class, region),
    FOREIGN KEY (tenant, tax_class) REFERENCES tax_classes,
    FOREIGN KEY (tenant, region) REFERENCES regions
);

-- A product names up to three attributes (size, colour, ...); each variant gives a value for each.
CREATE TABLE products (
    tenant      text NOT NULL REFERENCES tenants,
    product     text NOT NULL,
    name        text NOT NULL,
    tax_class   text NOT NULL,
    attributes  text[] NOT NULL DEFAULT '{}' CHECK (cardinality(attributes) <= 3),
    active      boolean NOT NULL DEFAULT true,
    version     bigint NOT NULL,
    PRIMARY KEY (tenant, product),
    FOREIGN KEY (tenant, tax_class) REFERENCES tax_classes
);

CREATE TABLE variants (
    tenant            text NOT NULL,
    sku               text NOT NULL,
    product           text NOT NULL,
    attribute_values  text[] NOT NULL DEFAULT '{}',
    name              text NOT NULL,
    active            boolean NOT NULL DEFAULT true,
    version           bigint NOT NULL,
    PRIMARY KEY (tenant, sku),
    FOREIGN KEY (tenant, product) REFERENCES products
);
CREATE INDEX variants_product ON variants (tenant, product);
CREATE INDEX variants_version ON variants (tenant, version);

-- Several barcodes per variant, each unique within the tenant.
CREATE TABLE barcodes (
    tenant   text NOT NULL,
    barcode  text NOT NULL,
    sku      text NOT NULL,
    PRIMARY KEY (tenant, barcode),
    FOREIGN KEY (tenant, sku) REFERENCES variants
);
CREATE INDEX barcodes_sku ON barcodes (tenant, sku);

-- A tenant price, optionally overridden per region or per store, each effective from a time on.
-- The price of a SKU in store s (of region r) at time t: among the rows of the most specific scope
-- that has one in effect at t (store s, else region r, else the tenant), the latest effective_from <= t
-- (novapos.pricing.effective_price is the same rule, at the till and in replay validation).
CREATE TABLE prices (
    tenant          text NOT NULL,
    sku             text NOT NULL,
    scope           text NOT NULL CHECK (scope IN ('tenant', 'region', 'store')),
    scope_id        text NOT NULL DEFAULT '',
    effective_from  timestamptz NOT NULL,
    amount_minor    bigint NOT NULL CHECK (amount_minor >= 0),
    version         bigint NOT NULL,
    PRIMARY KEY (tenant, sku, scope, scope_id, effective_from),
    FOREIGN KEY (tenant, sku) REFERENCES variants,
    CHECK ((scope = 'tenant') = (scope_id = ''))
);
