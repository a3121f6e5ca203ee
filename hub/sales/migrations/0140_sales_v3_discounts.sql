-- sale.completed v3 (issue 9): what changed a sale's prices, kept as such (never as a price difference), the
-- drawer session the cash went to, each tender's id and a card tender's details. A v1/v2 sale has NULL in the
-- new columns (order_discount_minor and a line's order_discount_minor: 0), so totals read the same for all.
ALTER TABLE sales
    ADD COLUMN drawer_session         text,
    ADD COLUMN order_discount_kind    text CHECK (order_discount_kind IN ('percent', 'amount')),
    ADD COLUMN order_discount_value   bigint CHECK (order_discount_value > 0),
    ADD COLUMN order_discount_reason  text,
    ADD COLUMN order_discount_minor   bigint NOT NULL DEFAULT 0 CHECK (order_discount_minor >= 0),
    ADD CONSTRAINT sales_order_discount_whole
        CHECK (num_nulls(order_discount_kind, order_discount_value, order_discount_reason) IN (0, 3));

ALTER TABLE sale_lines
    ADD COLUMN line_id                text,
    ADD COLUMN attributes             jsonb,
    ADD COLUMN list_price_minor       bigint CHECK (list_price_minor >= 0),
    ADD COLUMN override_reason        text,
    ADD COLUMN override_approver      text,
    ADD COLUMN discount_kind          text CHECK (discount_kind IN ('percent', 'amount')),
    ADD COLUMN discount_value         bigint CHECK (discount_value > 0),
    ADD COLUMN discount_reason        text,
    ADD COLUMN discount_minor         bigint NOT NULL DEFAULT 0 CHECK (discount_minor >= 0),
    ADD COLUMN order_discount_minor   bigint NOT NULL DEFAULT 0 CHECK (order_discount_minor >= 0),
    ADD CONSTRAINT sale_lines_override_whole CHECK (num_nulls(override_reason, override_approver) IN (0, 2)),
    ADD CONSTRAINT sale_lines_discount_whole
        CHECK (num_nulls(discount_kind, discount_value, discount_reason) IN (0, 3));

ALTER TABLE sale_tenders
    ADD COLUMN tender_id              text,
    ADD COLUMN card_reference         text,
    ADD COLUMN card_scheme            text,
    ADD COLUMN card_masked            text,
    ADD COLUMN card_auth_code         text,
    ADD COLUMN card_terminal          text,
    ADD COLUMN card_signature         boolean,
    ADD CONSTRAINT sale_tenders_card_whole CHECK (num_nulls(card_reference, card_scheme, card_masked,
                                                            card_auth_code, card_terminal, card_signature) IN (0, 6));
