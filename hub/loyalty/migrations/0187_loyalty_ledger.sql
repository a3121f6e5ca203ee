-- The loyalty ledger (the truth): every change of a balance, signed, with a key unique in the tenant so that a
-- replayed event or request changes nothing twice (a redemption's id; earn:<order>; return:<return>:<line>...).
CREATE TABLE loyalty_ledger (
    tenant     text NOT NULL,
    id         uuid NOT NULL,
    customer   uuid NOT NULL,
    key        text NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('earn', 'redeem', 'redeem_reversed', 'earn_reversed', 'refund',
                                             'expire', 'adjust')),
    points     bigint NOT NULL CHECK (points <> 0),
    balance    bigint NOT NULL,
    order_id   uuid,
    store      text,
    actor      text NOT NULL,
    reason     text,
    at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, id),
    UNIQUE (tenant, key),
    FOREIGN KEY (tenant, customer) REFERENCES loyalty_accounts (tenant, customer)
);
COMMENT ON COLUMN loyalty_ledger.balance IS 'the account''s balance after this entry';
CREATE INDEX loyalty_ledger_customer ON loyalty_ledger (tenant, customer, at DESC, id DESC);

-- Redemptions of points as a tender: held when taken online (points_redeem), used when their sale arrives,
-- reversed by a void (points_reverse); an offline one is recorded used when its sale arrives. A reversal of a
-- redemption the hub never saw leaves a reversed row without points: a late redemption under that id is refused.
CREATE TABLE loyalty_redemptions (
    tenant      text NOT NULL,
    redemption  text NOT NULL,
    customer    uuid,
    points      bigint NOT NULL CHECK (points >= 0),
    state       text NOT NULL CHECK (state IN ('held', 'used', 'reversed')),
    offline     boolean NOT NULL DEFAULT false,
    store       text NOT NULL,
    till        text,
    order_id    uuid,
    actor       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, redemption)
);
CREATE INDEX loyalty_redemptions_store_offline ON loyalty_redemptions (tenant, store, created_at) WHERE offline;
