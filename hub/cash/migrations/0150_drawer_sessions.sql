-- Drawer sessions of the stores' tills (drawer.opened), their moves (drawer.moved), their Z reports
-- (drawer.closed) and the sales and returns that belong to them; a sale applied after its session's Z report
-- was received in an earlier transaction is flagged late (it still lands).
CREATE TABLE drawer_sessions (
    tenant       text NOT NULL,
    store        text NOT NULL,
    session      text NOT NULL,
    event_id     uuid NOT NULL REFERENCES inbox (event_id),
    till         text NOT NULL,
    currency     char(3) NOT NULL,
    opened_by    text NOT NULL,
    opened_ms    bigint NOT NULL,
    float_minor  bigint NOT NULL,
    float_counts jsonb NOT NULL,
    PRIMARY KEY (tenant, session)
);
CREATE INDEX drawer_sessions_store_time ON drawer_sessions (tenant, store, opened_ms DESC, session DESC);
CREATE INDEX drawer_sessions_time ON drawer_sessions (tenant, opened_ms DESC, session DESC);

CREATE TABLE drawer_moves (
    event_id     uuid PRIMARY KEY REFERENCES inbox (event_id),
    tenant       text NOT NULL,
    store        text NOT NULL,
    session      text NOT NULL,
    seq          bigint NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('pay_in', 'pay_out', 'drop', 'no_sale')),
    amount_minor bigint NOT NULL,
    reason       text,
    actor        text NOT NULL,
    approver     text,
    moved_ms     bigint NOT NULL
);
CREATE INDEX drawer_moves_session ON drawer_moves (tenant, session, seq);

CREATE TABLE z_reports (
    tenant           text NOT NULL,
    session          text NOT NULL,
    event_id         uuid NOT NULL REFERENCES inbox (event_id),
    store            text NOT NULL,
    till             text NOT NULL,
    z_number         bigint NOT NULL,
    closed_by        text NOT NULL,
    closed_ms        bigint NOT NULL,
    counted_minor    bigint NOT NULL,
    expected_minor   bigint NOT NULL,
    difference_minor bigint NOT NULL,
    approver         text,
    counted          jsonb NOT NULL,
    z                jsonb NOT NULL,
    received_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, session)
);

CREATE TABLE drawer_sales (
    event_id    uuid PRIMARY KEY REFERENCES inbox (event_id),
    tenant      text NOT NULL,
    store       text NOT NULL,
    session     text NOT NULL,
    seq         bigint NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('sale', 'return')),
    total_minor bigint NOT NULL,
    late        boolean NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX drawer_sales_session ON drawer_sales (tenant, session, seq);
CREATE INDEX drawer_sales_late ON drawer_sales (tenant, session) WHERE late;
