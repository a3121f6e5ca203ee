-- Stock per location and SKU: a ledger of movements, and the balances they add up to, both written in
-- one transaction (hub.inventory.ledger). A balance row is locked only in (location_id, sku) order.
-- SKUs are not a foreign key: a sale of a SKU the hub does not know still moves stock (flagged).
CREATE TABLE stock_balances (
    location_id     bigint NOT NULL REFERENCES locations,
    sku             text NOT NULL,
    tenant          text NOT NULL,
    on_hand         bigint NOT NULL DEFAULT 0,
    reserved        bigint NOT NULL DEFAULT 0,
    low_threshold   bigint CHECK (low_threshold >= 0),
    -- available (on_hand - reserved) < low_threshold; kept true to that at every change, so that an
    -- event is emitted only when it turns true (a crossing), and a rise back above re-arms it.
    low             boolean NOT NULL DEFAULT false,
    negative_since  timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (location_id, sku)
) WITH (fillfactor = 80);
-- Every sale updates balances: room on each page (fillfactor) and no index on an updated column (not even
-- a partial one on `low`) keep those updates HOT, writing no index entries.
CREATE INDEX stock_balances_tenant_sku ON stock_balances (tenant, sku);

-- One row per change; on_hand_change and reserved_change add up to the balances (a replay checks it).
-- A sale from a store with no floor location lands with location_id NULL (flag 'no_location'), in no balance.
-- Flags: unknown_sku (not in the catalog), no_location, negative (left on hand below zero: an offline sale).
CREATE TABLE stock_movements (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant           text NOT NULL,
    location_id      bigint REFERENCES locations,
    sku              text NOT NULL,
    kind             text NOT NULL CHECK (kind IN ('sale', 'return', 'adjustment', 'transfer_out', 'transfer_in',
                                                   'received', 'reserved', 'released', 'expired')),
    on_hand_change   bigint NOT NULL,
    reserved_change  bigint NOT NULL DEFAULT 0,
    reason           text,
    store            text,
    event_id         uuid,
    line_no          integer,
    reservation_id   bigint,
    transfer_id      uuid,
    flags            text[] NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL DEFAULT now(),
    CHECK (kind <> 'adjustment' OR reason IS NOT NULL)
);
-- A sale line moves stock once because the inbox, in the same transaction, lets an event through once: no
-- second unique index on (event_id, line_no), which would cost every sale a fifth of its ledger write.
-- The item history (per location and SKU) is the one secondary index every movement pays for.
CREATE INDEX stock_movements_location_sku ON stock_movements (location_id, sku, id);
CREATE INDEX stock_movements_review ON stock_movements (tenant, id) WHERE flags <> '{}';

CREATE TABLE stock_reservations (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant       text NOT NULL,
    location_id  bigint NOT NULL REFERENCES locations,
    sku          text NOT NULL,
    quantity     bigint NOT NULL CHECK (quantity > 0),
    reference    text,
    status       text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'released', 'expired')),
    expires_at   timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    ended_at     timestamptz
);
CREATE INDEX stock_reservations_due ON stock_reservations (expires_at) WHERE status = 'active';

-- One row per crossing below a threshold; `published_at` is set once it is on NATS (hub.inventory.alerts).
CREATE TABLE stock_low_events (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant        text NOT NULL,
    location_id   bigint NOT NULL REFERENCES locations,
    sku           text NOT NULL,
    available     bigint NOT NULL,
    threshold     bigint NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz
);
CREATE INDEX stock_low_events_unpublished ON stock_low_events (id) WHERE published_at IS NULL;
