-- Review fixes (issue 11 is not released: no shipped data to migrate).
-- A hold is released only once its store has delivered an event stamped (on the store's clock) after the hold's
-- deadline on that clock: a sale that used the coupon would have arrived before it (a store's events arrive in
-- sequence order). A store that stays offline keeps its holds.
ALTER TABLE coupon_redemptions ADD COLUMN till_deadline_ms bigint;
COMMENT ON COLUMN coupon_redemptions.till_deadline_ms IS 'the hold''s end on the till''s clock (its till_ms + the hold; the hub''s clock when the till sent none)';
ALTER TABLE coupon_redemptions ADD COLUMN released_why text CHECK (released_why IN ('void', 'expired'));
ALTER TABLE coupon_redemptions ADD COLUMN reused boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN coupon_redemptions.reused IS 'a second sale (or a second coupon of one) named this use: honoured once, flagged for a person';
ALTER TABLE coupon_redemptions ADD COLUMN batch uuid;
COMMENT ON COLUMN coupon_redemptions.batch IS 'the code''s batch, so that a batch''s per-customer limit counts across its codes';
CREATE INDEX coupon_redemptions_batch ON coupon_redemptions (tenant, batch, customer) WHERE batch IS NOT NULL AND state <> 'released';
ALTER TABLE store_stats ADD COLUMN last_ts_ms bigint;
COMMENT ON COLUMN store_stats.last_ts_ms IS 'the ts (the store''s clock, ms) of its event with the highest sequence number';
