-- A customer's loyalty account: the balance is a cache of the ledger (written in the same transaction as every
-- ledger entry), the tier and rolling 12-month spend a cache of loyalty_spend. The balance may be negative: an
-- offline redemption of points the customer spent elsewhere meanwhile, recovered from future earnings.
CREATE TABLE loyalty_accounts (
    tenant           text NOT NULL,
    customer         uuid NOT NULL,
    balance          bigint NOT NULL DEFAULT 0,
    tier             text NOT NULL DEFAULT '',
    multiplier_ppm   integer NOT NULL DEFAULT 1000000,
    spend_12m_minor  bigint NOT NULL DEFAULT 0,
    tier_checked_at  timestamptz NOT NULL DEFAULT now(),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, customer),
    FOREIGN KEY (tenant, customer) REFERENCES customers (tenant, id)
);
CREATE INDEX loyalty_accounts_tier_checked ON loyalty_accounts (tier_checked_at);
