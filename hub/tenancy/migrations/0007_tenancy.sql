-- Tenants, regions, stores and locations. Names (tenant, region, store, location) are tokens
-- (novapos.validators.token): they appear in NATS subjects, URLs and file names.
CREATE TABLE tenants (
    tenant              text PRIMARY KEY,
    name                text NOT NULL,
    currency            char(3) NOT NULL,
    prices_include_tax  boolean NOT NULL DEFAULT true,
    created_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE regions (
    tenant  text NOT NULL REFERENCES tenants,
    region  text NOT NULL,
    name    text NOT NULL,
    PRIMARY KEY (tenant, region)
);

-- A store's NATS user is an NKEY: the hub keeps the public key only, the seed lives in the store's
-- credentials file. A revoked store keeps its record (its sales stay attributable) but loses its user.
CREATE TABLE stores (
    tenant                 text NOT NULL,
    store                  text NOT NULL,
    region                 text NOT NULL,
    name                   text NOT NULL,
    status                 text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
    nkey_public            text UNIQUE,
    credentials_issued_at  timestamptz,
    created_at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, store),
    FOREIGN KEY (tenant, region) REFERENCES regions
);

-- Where stock is kept. A store has a floor (its tills sell from it) and usually a back room; a
-- warehouse has no store. "Nearby" locations of a store are the others of its region.
CREATE TABLE locations (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant    text NOT NULL,
    location  text NOT NULL,
    kind      text NOT NULL CHECK (kind IN ('floor', 'back_room', 'warehouse')),
    store     text,
    region    text NOT NULL,
    name      text NOT NULL,
    UNIQUE (tenant, location),
    FOREIGN KEY (tenant, store) REFERENCES stores,
    FOREIGN KEY (tenant, region) REFERENCES regions,
    CHECK ((kind = 'warehouse') = (store IS NULL))
);
CREATE UNIQUE INDEX locations_one_floor_per_store ON locations (tenant, store) WHERE kind = 'floor';
