-- Per store and currency, kept current by the sale.completed applier: the console's overview reads these
-- few rows instead of aggregating every sale. Recent sales are read newest first through an index.
CREATE TABLE store_takings (
    tenant       text NOT NULL,
    store        text NOT NULL,
    currency     char(3) NOT NULL,
    sales        bigint NOT NULL,
    total_minor  bigint NOT NULL,
    last_sale    timestamptz NOT NULL,
    PRIMARY KEY (tenant, store, currency)
);
INSERT INTO store_takings (tenant, store, currency, sales, total_minor, last_sale)
SELECT tenant, store, currency, count(*), sum(total_minor), max(completed_at) FROM sales GROUP BY tenant, store, currency;
CREATE INDEX sales_completed ON sales (completed_at);

-- A sale whose time is implausible (the store's clock was wrong) is kept as sold, flagged for review.
ALTER TABLE sales ADD COLUMN clock_suspect boolean NOT NULL DEFAULT false;
