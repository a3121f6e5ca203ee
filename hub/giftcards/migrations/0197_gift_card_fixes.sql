-- Review fixes (issue 11 is not released: no shipped data to migrate).
-- number_hash is now HMAC-SHA256 of the number keyed with the hub's secret ([gift_cards] key_file), no longer
-- PBKDF2 salted with the tenant: the column keeps its type; cards made before (tests and demos only) are issued again.
COMMENT ON COLUMN gift_cards.number_hash IS 'HMAC-SHA256 of the number keyed with the hub''s [gift_cards] key_file secret (a reader of this table cannot find or redeem a card)';

-- A reversal that overtook its redemption: recorded, so that the redemption arriving later is refused (409).
CREATE TABLE gift_card_tombstones (
    tenant      text NOT NULL REFERENCES tenants,
    redemption  text NOT NULL,
    store       text NOT NULL,
    actor       text NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, redemption)
);
COMMENT ON TABLE gift_card_tombstones IS 'gift_card_reverse of a redemption id the hub had not seen: nothing was taken, and a later gift_card_redeem of the id is 409';

-- A redemption or refund named by a second sale, return or tender: marked for a person.
ALTER TABLE gift_card_ledger ADD COLUMN reused boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN gift_card_ledger.reused IS 'a second sale/return (or a second tender of one) named this redemption: the store may be short';
CREATE INDEX gift_card_ledger_unconfirmed ON gift_card_ledger (tenant, at) WHERE sale_event IS NULL AND kind IN ('redeem', 'refund');
ALTER TABLE gift_card_ledger ADD COLUMN refund_order text;
COMMENT ON COLUMN gift_card_ledger.refund_order IS 'a refund''s original order (hub.sales orders.id as the till names it): refunds of an order are capped at its gift card tenders';
CREATE INDEX gift_card_ledger_order ON gift_card_ledger (tenant, refund_order) WHERE refund_order IS NOT NULL;
