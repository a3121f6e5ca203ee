-- Which sale each card (and QR) tender paid for, as the store's sale.completed said (hub.payments.sales): the
-- link from a tender's intent to its order. A sale's event may be applied before its card's card.approved (one
-- ingest batch applies sale.completed first), so the claim waits here and the intent is linked when it arrives.
CREATE TABLE payment_tender_sales (
    tenant        text NOT NULL,
    tender_id     text NOT NULL,
    store         text NOT NULL,
    order_id      uuid NOT NULL,
    method        text NOT NULL,
    amount_minor  bigint NOT NULL CHECK (amount_minor > 0),
    currency      char(3) NOT NULL,
    linked_at     timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, tender_id)
);
COMMENT ON COLUMN payment_tender_sales.linked_at IS 'when the tender''s intent was linked to the order (NULL: no intent yet)';
CREATE INDEX payment_tender_sales_unlinked ON payment_tender_sales (created_at) WHERE linked_at IS NULL;
-- The capture service's work: intents of completed sales still authorized, offline approvals still to authorize.
CREATE INDEX payment_intents_to_capture ON payment_intents (updated_at) WHERE order_id IS NOT NULL
    AND state IN ('authorized', 'awaiting_payment_method');
