-- Completed sales, their lines and tenders; every sale is an event the inbox has seen.
CREATE TABLE sales (
    event_id        uuid PRIMARY KEY REFERENCES inbox (event_id),
    tenant          text NOT NULL,
    store           text NOT NULL,
    seq             bigint NOT NULL,
    till            text NOT NULL,
    session         text NOT NULL,
    cashier         text NOT NULL,
    currency        char(3) NOT NULL,
    total_minor     bigint NOT NULL,
    tendered_minor  bigint NOT NULL,
    change_minor    bigint NOT NULL,
    completed_at    timestamptz NOT NULL
);
CREATE INDEX sales_store_time ON sales (tenant, store, completed_at);

CREATE TABLE sale_lines (
    event_id          uuid NOT NULL REFERENCES sales (event_id),
    line_no           int NOT NULL,
    sku               text NOT NULL,
    name              text NOT NULL,
    quantity          int NOT NULL CHECK (quantity > 0),
    unit_price_minor  bigint NOT NULL,
    amount_minor      bigint NOT NULL,
    PRIMARY KEY (event_id, line_no)
);

CREATE TABLE sale_tenders (
    event_id      uuid NOT NULL REFERENCES sales (event_id),
    tender_no     int NOT NULL,
    method        text NOT NULL,
    amount_minor  bigint NOT NULL,
    PRIMARY KEY (event_id, tender_no)
);
