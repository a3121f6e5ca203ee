-- Lots: each credit of points (an earning, a refund, a positive adjustment) is a lot with an expiry; redemptions,
-- reversals and expiry take from the oldest lots first. sum(remaining) = greatest(balance, 0) for every account.
CREATE TABLE loyalty_lots (
    tenant      text NOT NULL,
    id          uuid NOT NULL,
    customer    uuid NOT NULL,
    points      bigint NOT NULL CHECK (points > 0),
    remaining   bigint NOT NULL CHECK (remaining >= 0 AND remaining <= points),
    earned_at   timestamptz NOT NULL,
    expires_at  timestamptz,
    order_id    uuid,
    PRIMARY KEY (tenant, id),
    FOREIGN KEY (tenant, customer) REFERENCES loyalty_accounts (tenant, customer)
);
CREATE INDEX loyalty_lots_open ON loyalty_lots (tenant, customer, earned_at, id) WHERE remaining > 0;
CREATE INDEX loyalty_lots_expiring ON loyalty_lots (expires_at) WHERE remaining > 0 AND expires_at IS NOT NULL;

-- What each line of a sale earned, so that returns reverse it pro rata (novapos.pricing.pro_rata, cumulative:
-- all the returns of a line reverse exactly what it earned).
CREATE TABLE loyalty_earnings (
    tenant     text NOT NULL,
    order_id   uuid NOT NULL,
    line       integer NOT NULL CHECK (line >= 1),
    customer   uuid NOT NULL,
    quantity   integer NOT NULL CHECK (quantity >= 1),
    points     bigint NOT NULL CHECK (points >= 0),
    returned   integer NOT NULL DEFAULT 0 CHECK (returned >= 0 AND returned <= quantity),
    PRIMARY KEY (tenant, order_id, line)
);

-- Spend that counts toward a tier: each sale (positive) and return (negative) of a customer, by time.
CREATE TABLE loyalty_spend (
    tenant       text NOT NULL,
    event_id     uuid NOT NULL,
    customer     uuid NOT NULL,
    spend_minor  bigint NOT NULL,
    at           timestamptz NOT NULL,
    PRIMARY KEY (tenant, event_id)
);
CREATE INDEX loyalty_spend_customer ON loyalty_spend (tenant, customer, at);
