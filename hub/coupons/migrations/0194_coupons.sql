-- Coupon codes (hub.coupons): codes of a code_only promotion, each with how often it may be used, and the uses
-- reserved by tills (held until the sale confirms them or the hold ends) and confirmed by sales.
-- A code's promotion is hub.promotions' (its latest revision says whether it is code_only); a use names the
-- promotion as the sale did (text, no foreign key: a sale is never refused).
CREATE TABLE coupon_codes (
    tenant        text NOT NULL REFERENCES tenants,
    code          text NOT NULL CHECK (code ~ '^[A-Z0-9][A-Z0-9-]{2,31}$'),
    promotion     uuid NOT NULL,
    batch         uuid,
    max_uses      integer NOT NULL CHECK (max_uses >= 1),
    per_customer  integer CHECK (per_customer >= 1),
    uses          integer NOT NULL DEFAULT 0 CHECK (uses >= 0),
    expires_at    timestamptz,
    active        boolean NOT NULL DEFAULT true,
    created_by    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, code),
    FOREIGN KEY (tenant, promotion) REFERENCES promotions (tenant, id)
);
COMMENT ON COLUMN coupon_codes.code IS 'upper-case; a batch''s single-use codes use an alphabet without 0/O/1/I';
COMMENT ON COLUMN coupon_codes.batch IS 'the batch of single-use codes it was made in (max_uses 1); null: a code made alone';
COMMENT ON COLUMN coupon_codes.uses IS 'uses held or confirmed (not released): a reservation takes one only while uses < max_uses; a sale confirming a use after its hold ended may take it past';
CREATE INDEX coupon_codes_promotion ON coupon_codes (tenant, promotion);
CREATE INDEX coupon_codes_batch ON coupon_codes (tenant, batch) WHERE batch IS NOT NULL;

CREATE TABLE coupon_redemptions (
    tenant        text NOT NULL REFERENCES tenants,
    redemption    text NOT NULL,
    code          text NOT NULL,
    promotion     text NOT NULL,
    customer      uuid,
    store         text NOT NULL,
    till          text,
    actor         text,
    state         text NOT NULL CHECK (state IN ('held', 'used', 'released')),
    offline       boolean NOT NULL DEFAULT false,
    held_until    timestamptz,
    sale_event    uuid,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, redemption)
);
COMMENT ON TABLE coupon_redemptions IS 'one use of a code, keyed by the till''s redemption id: held by coupon_reserve, used once a sale names it (or made used by the sale of a public code taken offline), released by a void or when held_until passes';
CREATE INDEX coupon_redemptions_code ON coupon_redemptions (tenant, code, customer) WHERE state <> 'released';
CREATE INDEX coupon_redemptions_held ON coupon_redemptions (held_until) WHERE state = 'held';
CREATE INDEX coupon_redemptions_customer ON coupon_redemptions (tenant, customer) WHERE customer IS NOT NULL;
