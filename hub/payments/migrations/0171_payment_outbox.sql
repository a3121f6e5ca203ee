-- The payments outbox: every payment event the hub emits is written here in the transaction that changed the
-- intent, numbered per store under the store's head row (so positions commit in order), then published by
-- the relay (hub.payments.relay) and marked published; a store that missed some asks for those after the
-- last position it holds.
CREATE TABLE payment_outbox_heads (
    tenant    text NOT NULL,
    store     text NOT NULL,
    position  bigint NOT NULL,
    PRIMARY KEY (tenant, store)
);

CREATE TABLE payment_outbox (
    id            uuid PRIMARY KEY,
    tenant        text NOT NULL,
    store         text NOT NULL,
    position      bigint NOT NULL,
    type          text NOT NULL,
    body          jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz,
    UNIQUE (tenant, store, position)
);
CREATE INDEX payment_outbox_unpublished ON payment_outbox (created_at) WHERE published_at IS NULL;
