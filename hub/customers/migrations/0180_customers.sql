-- Customers of a tenant (hub.customers): the person a sale, a loyalty account, a gift card or a coupon may name.
-- Personal fields (name, phone, email, birthday, notes) live only here; sales, ledgers and events carry the id.
-- Erasure (a data subject request) blanks them and sets erased_at: the row, its id and what points to it stay.
CREATE TABLE customers (
    tenant       text NOT NULL REFERENCES tenants,
    id           uuid NOT NULL,
    card_number  text,
    name         text,
    phone        text,
    email        text,
    birthday     date,
    preferences  jsonb NOT NULL DEFAULT '{}'::jsonb,
    consents     jsonb NOT NULL DEFAULT '{}'::jsonb,
    home_store   text,
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    erased_at    timestamptz,
    PRIMARY KEY (tenant, id),
    CHECK (erased_at IS NULL OR (name IS NULL AND phone IS NULL AND email IS NULL AND birthday IS NULL
                                 AND card_number IS NULL))
);
COMMENT ON COLUMN customers.card_number IS 'the loyalty card''s number (printed, scanned at the till), unique in the tenant';
COMMENT ON COLUMN customers.phone IS 'normalised: + and digits only, so a lookup matches however it was typed';
COMMENT ON COLUMN customers.email IS 'lower-cased';
CREATE UNIQUE INDEX customers_card ON customers (tenant, card_number) WHERE card_number IS NOT NULL;
CREATE INDEX customers_phone ON customers (tenant, phone) WHERE phone IS NOT NULL;
CREATE INDEX customers_email ON customers (tenant, email) WHERE email IS NOT NULL;
