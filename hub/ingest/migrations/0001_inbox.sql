-- The idempotent inbox: one row per event id ever applied. Its primary key is the final guard
-- against double application, hours or days after JetStream's dedup window has passed.
CREATE TABLE inbox (
    event_id    uuid PRIMARY KEY,
    tenant      text NOT NULL,
    store       text NOT NULL,
    seq         bigint NOT NULL,
    type        text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX inbox_store_seq ON inbox (tenant, store, seq);

-- Events that could not be applied, with the reason a person can act on.
CREATE TABLE dead_letters (
    id          bigserial PRIMARY KEY,
    event_id    uuid,
    subject     text NOT NULL,
    reason      text NOT NULL,
    payload     bytea NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
