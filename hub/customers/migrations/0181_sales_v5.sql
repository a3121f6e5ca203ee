-- sale.completed v5 and return.completed v3 (issue 11): a sale keeps the customer it was made for (an id only:
-- personal data lives in customers), the promotions version the till evaluated and the coupons used; each line
-- what each promotion took off it; a tender paid by points or gift card its details. A return keeps the original
-- sale's customer. No foreign key to customers: a store's sale is never refused (the store has sold already), and
-- a customer id the hub does not know is kept as sent (text) for a person to look at.
ALTER TABLE sales
    ADD COLUMN customer_id         text,
    ADD COLUMN promotions_version  bigint CHECK (promotions_version >= 0),
    ADD COLUMN coupons             jsonb NOT NULL DEFAULT '[]'::jsonb;
CREATE INDEX sales_customer ON sales (tenant, customer_id, received_at DESC, event_id DESC)
    WHERE customer_id IS NOT NULL;

ALTER TABLE sale_lines
    ADD COLUMN promotions        jsonb NOT NULL DEFAULT '[]'::jsonb,
    ADD COLUMN promotions_minor  bigint NOT NULL DEFAULT 0 CHECK (promotions_minor >= 0);

ALTER TABLE sale_tenders
    ADD COLUMN points_customer       text,
    ADD COLUMN points_points         bigint CHECK (points_points > 0),
    ADD COLUMN points_redemption     text,
    ADD COLUMN points_offline        boolean,
    ADD COLUMN gift_card_masked      text,
    ADD COLUMN gift_card_redemption  text,
    ADD CONSTRAINT sale_tenders_points_whole
        CHECK (num_nulls(points_customer, points_points, points_redemption, points_offline) IN (0, 4)),
    ADD CONSTRAINT sale_tenders_gift_card_whole CHECK (num_nulls(gift_card_masked, gift_card_redemption) IN (0, 2));

ALTER TABLE returns
    ADD COLUMN customer_id  text,
    ADD COLUMN refunds      jsonb NOT NULL DEFAULT '[]'::jsonb;
COMMENT ON COLUMN returns.refunds IS 'each refund: method, amount_minor and, for points or a gift card, its details';
CREATE INDEX returns_customer ON returns (tenant, customer_id) WHERE customer_id IS NOT NULL;
