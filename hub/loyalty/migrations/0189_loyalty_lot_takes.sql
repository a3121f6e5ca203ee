-- Which lots each debit took from (by the debit's ledger key), so that a credit back (a void, a refund to points,
-- a held redemption that the sale changed) restores the points into those lots with their own expiry instead of a
-- fresh lot: a redeem-then-void never extends expiry. A take is used up as it is restored (or burnt, when its lot
-- expired meanwhile: expired points are not resurrected).
CREATE TABLE loyalty_lot_takes (
    tenant  text NOT NULL,
    key     text NOT NULL,
    lot     uuid NOT NULL,
    points  bigint NOT NULL CHECK (points > 0),
    PRIMARY KEY (tenant, key, lot)
);

-- When the sale of an offline redemption was made (its event's time): the hub counts, against the store's budget
-- and the customer's cap, the points redeemed offline at the store by then that it had not yet received.
ALTER TABLE loyalty_redemptions ADD COLUMN sold_at timestamptz;

-- The most points one console adjustment may add or take (a tenant's program setting).
ALTER TABLE loyalty_programs ADD COLUMN adjust_max_points bigint NOT NULL DEFAULT 100000
    CHECK (adjust_max_points >= 1);

-- What each line of a sale counted toward the customer's tier (its amount without tax, less its share of any
-- points tender), so that a return takes off exactly the returned share of what was counted.
ALTER TABLE loyalty_earnings ADD COLUMN spend_minor bigint NOT NULL DEFAULT 0;

-- A return naming the sale's customer that arrived before its sale (sold offline at one store, returned at another
-- first): kept whole, and applied when the sale arrives, so the sale does not keep the returned items' points.
CREATE TABLE loyalty_pending_returns (
    tenant    text NOT NULL,
    original  uuid NOT NULL,
    event     bytea NOT NULL,
    event_id  uuid NOT NULL,
    PRIMARY KEY (tenant, event_id)
);
CREATE INDEX loyalty_pending_returns_original ON loyalty_pending_returns (tenant, original);
