-- Fleet health: the latest state of each store (one row per store, upserted by its reports) and a day of
-- what changed. `rank` orders the fleet page, alerts first (0: something needs a person, 1: all well); it is
-- kept with the row so that the page is an index range, whatever the fleet's size.
CREATE TABLE fleet_status (
    tenant            text NOT NULL,
    store             text NOT NULL,
    online            boolean NOT NULL DEFAULT false,
    rank              smallint NOT NULL DEFAULT 0 CHECK (rank IN (0, 1)),
    first_seen        timestamptz,
    last_seen         timestamptz,
    offline_since     timestamptz,
    version           text,
    outbox_depth      bigint NOT NULL DEFAULT 0,
    oldest_unsent_ms  bigint,
    devices           jsonb NOT NULL DEFAULT '[]',
    devices_down      integer NOT NULL DEFAULT 0,
    clock_skew_ms     bigint,
    open_tills        text[] NOT NULL DEFAULT '{}',
    last_sale_seq     bigint,
    last_sale_at      timestamptz,
    interval_s        integer,
    sampled_at        timestamptz,
    PRIMARY KEY (tenant, store),
    FOREIGN KEY (tenant, store) REFERENCES stores
);
CREATE INDEX fleet_status_page ON fleet_status (tenant, rank, store);
CREATE INDEX fleet_status_online ON fleet_status (last_seen) WHERE online;

-- What changed at a store, kept a day: came online, went offline, a device's state, the software version,
-- and a sample of the outbox every minute.
CREATE TABLE fleet_history (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant   text NOT NULL,
    store    text NOT NULL,
    at       timestamptz NOT NULL DEFAULT now(),
    kind     text NOT NULL CHECK (kind IN ('online', 'offline', 'device', 'version', 'sample')),
    details  jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX fleet_history_by_store ON fleet_history (tenant, store, id);
CREATE INDEX fleet_history_by_time ON fleet_history (at);
