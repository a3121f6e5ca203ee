-- Per store, kept current by the ingest transaction so that the console never scans the inbox:
-- missing = last_seq - seqs (numbers never seen), reused = events - seqs (numbers seen under several ids).
CREATE TABLE store_stats (
    tenant            text NOT NULL,
    store             text NOT NULL,
    events            bigint NOT NULL,   -- distinct event ids in the inbox
    seqs              bigint NOT NULL,   -- distinct sequence numbers among them
    last_seq          bigint NOT NULL,
    last_received_at  timestamptz NOT NULL,
    clock_skew_ms     bigint,            -- hub receive time minus the store's ts, for its latest event
    PRIMARY KEY (tenant, store)
);
INSERT INTO store_stats (tenant, store, events, seqs, last_seq, last_received_at)
SELECT tenant, store, count(*), count(DISTINCT seq), max(seq), max(received_at) FROM inbox GROUP BY tenant, store;
