-- Gift cards (hub.giftcards): a bearer balance in the tenant's currency, its ledger the truth and the card's
-- balance a cache written in the same transaction. The number is never stored: number_hash finds a card
-- (PBKDF2 of the number, salted with the tenant: a reader of this table cannot redeem a card), last4 shows it.
CREATE TABLE gift_cards (
    tenant         text NOT NULL REFERENCES tenants,
    id             uuid NOT NULL,
    number_hash    bytea NOT NULL,
    last4          text NOT NULL CHECK (last4 ~ '^[0-9]{4}$'),
    currency       char(3) NOT NULL,
    balance_minor  bigint NOT NULL CHECK (balance_minor >= 0),
    active         boolean NOT NULL DEFAULT true,
    blocked_reason text,
    expires_at     timestamptz,
    customer       uuid,
    issued_by      text NOT NULL,
    issued_at      timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, id),
    UNIQUE (tenant, number_hash)
);
COMMENT ON COLUMN gift_cards.customer IS 'the customer it was issued to, when named (a gift card needs no owner)';

CREATE TABLE gift_card_ledger (
    tenant         text NOT NULL,
    id             bigserial,
    card           uuid NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('issue', 'top_up', 'redeem', 'reverse', 'refund')),
    amount_minor   bigint NOT NULL,
    balance_minor  bigint NOT NULL CHECK (balance_minor >= 0),
    redemption     text,
    store          text,
    till           text,
    actor          text NOT NULL,
    reason         text,
    sale_event     uuid,
    at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, id),
    FOREIGN KEY (tenant, card) REFERENCES gift_cards (tenant, id)
);
COMMENT ON COLUMN gift_card_ledger.amount_minor IS 'signed: what the entry did to the balance (a redemption negative)';
COMMENT ON COLUMN gift_card_ledger.balance_minor IS 'the card''s balance right after the entry';
COMMENT ON COLUMN gift_card_ledger.sale_event IS 'the sale.completed (redeem) or return.completed (refund) event that confirmed it';
CREATE UNIQUE INDEX gift_card_ledger_redemption ON gift_card_ledger (tenant, redemption, kind) WHERE redemption IS NOT NULL;
CREATE INDEX gift_card_ledger_card ON gift_card_ledger (tenant, card, id);
