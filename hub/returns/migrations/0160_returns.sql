-- Returns and exchanges from the stores (return.completed v1), their items, and how many units of each sale line
-- have come back at the hub (authoritative across stores). A return beyond what is returnable is kept (the store
-- already paid out) and flagged for review.
CREATE TABLE returns (
    id                bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    event_id          uuid PRIMARY KEY REFERENCES inbox (event_id),
    tenant            text NOT NULL,
    store             text NOT NULL,
    seq               bigint NOT NULL,
    till              text NOT NULL,
    cashier           text NOT NULL,
    approver          text,
    reason            text,
    currency          char(3) NOT NULL,
    original_order    uuid,
    original_store    text,
    total_minor       bigint NOT NULL,
    refunded_minor    bigint NOT NULL,
    restocking_fee_minor bigint NOT NULL,
    refund_methods    text[] NOT NULL,
    review            text[] NOT NULL DEFAULT '{}',
    returned_at       timestamptz NOT NULL,
    received_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX returns_store_page ON returns (tenant, store, id DESC);
CREATE INDEX returns_of_order ON returns (original_order) WHERE original_order IS NOT NULL;

CREATE TABLE return_lines (
    event_id          uuid NOT NULL REFERENCES returns (event_id),
    line_no           int NOT NULL,
    kind              text NOT NULL CHECK (kind IN ('returned', 'new')),
    original_line     int,
    sku               text NOT NULL,
    name              text NOT NULL,
    quantity          int NOT NULL CHECK (quantity > 0),
    unit_price_minor  bigint NOT NULL,
    amount_minor      bigint NOT NULL,
    tax_class         text NOT NULL,
    tax_rate_ppm      int NOT NULL,
    tax_included      boolean NOT NULL,
    tax_minor         bigint NOT NULL,
    condition         text CHECK (condition IN ('resaleable', 'damaged')),
    restock           boolean,
    PRIMARY KEY (event_id, kind, line_no)
);

-- Units of a sale line returned so far, at any store of its tenant (an exchange's new lines are an order too: their
-- sale_event_id is the return's event id).
CREATE TABLE sale_line_returns (
    sale_event_id     uuid NOT NULL,
    line_no           int NOT NULL,
    returned          int NOT NULL CHECK (returned > 0),
    PRIMARY KEY (sale_event_id, line_no)
);
